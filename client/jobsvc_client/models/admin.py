"""API keys and tenants' quotas: the admin scope's business."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from jobsvc_client.models.jobs import Timestamp

Scope = Literal["submit", "read", "cancel", "admin", "operator"]
#: every scope a key may be given
SCOPES: tuple[Scope, ...] = get_args(Scope)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(description="Whose jobs the key submits and sees.")
    scopes: list[Scope]
    name: str = Field("", description="A note for people: who or what uses the key.")


class ApiKeyView(BaseModel):
    id: str
    tenant: str
    scopes: list[str]
    name: str
    created_at: Timestamp


class NewApiKey(ApiKeyView):
    key: str = Field(description="The key itself, in this answer only: the service keeps its hash.")
    webhook_secret: str | None = Field(
        None,
        description="The tenant's webhook signing secret (whsec_…), in the answer that gave the tenant its "
        "first key only.",
    )


class ApiKeyList(BaseModel):
    keys: list[ApiKeyView]


class TenantQuotas(BaseModel):
    tenant: str
    open_jobs: int = Field(description="Its jobs that wait or run now.")
    kept_jobs: int = Field(description="Its jobs kept in Redis: open ones, and ended ones until they expire.")
    kept_bytes: int = Field(description="Bytes of its job and result records kept in Redis.")
    max_open_jobs: int
    submits_per_s: int
    max_kept_jobs: int = Field(description="Its storage budget in jobs.")
    max_kept_bytes: int = Field(description="Its storage budget in bytes.")
    weight: int = Field(description="Its fair-share weight beside other tenants with ready jobs.")
    max_priority: int = Field(description="The highest priority it may submit at.")
    queues: list[str] | None = Field(description="The queues it may submit to; None: all.")


class QuotasUpdate(BaseModel):
    """New quotas for a tenant; one left out (None) goes back to the service's default."""

    model_config = ConfigDict(extra="forbid")

    max_open_jobs: int | None = None
    submits_per_s: int | None = None
    max_kept_jobs: int | None = None
    max_kept_bytes: int | None = None
    weight: int | None = None
    max_priority: int | None = None
    queues: list[str] | None = None


class TenantList(BaseModel):
    tenants: list[TenantQuotas]


class TenantDeletion(BaseModel):
    tenant: str
    deleted_jobs: int


class WebhookSecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int | None = Field(None, description="How long the replaced secret signs beside the new one.")


class WebhookSecret(BaseModel):
    tenant: str
    secret: str = Field(description="The new signing secret (whsec_…), in this answer only.")
    previous_valid_until: Timestamp | None


class AuditEntry(BaseModel):
    at: Timestamp
    key_id: str
    tenant: str
    action: str
    target: str
    details: dict[str, Any]


class AuditList(BaseModel):
    entries: list[AuditEntry]
