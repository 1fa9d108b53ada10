"""/v1/admin: API keys and tenants (quotas, webhook secrets, deleting a tenant's data), and the audit log.

An ``admin`` key manages its own tenant only: its keys (never an operator's), its webhook secret, its
jobs, and its quotas, lowered only. An ``operator`` key (minted by the bootstrap admin key
alone) manages every tenant and reads the audit log. Every change is written to the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from jobs.engine.keys import TENANT_NAME
from jobs.engine.webhook_secrets import TenantWebhookSecrets
from jobs.queues import QUEUE_NAMES
from service.api.auth import OPERATOR, AdminKey, KeyRecord, KeyStore, OperatorKey, Principal
from service.api.errors import BODY_PROBLEMS, INVALID_PARAMETER, Forbidden, KeyNotFound, problems
from service.api.schemas import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyView,
    AuditEntry,
    AuditList,
    NewApiKey,
    TenantDeletion,
    TenantList,
    TenantQuotas,
    WebhookSecret,
    WebhookSecretRotation,
)
from service.config import Settings
from service.stores.audit_log import AuditLog
from service.stores.tenant_store import TenantPolicy, TenantStore, TenantView

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=problems({}))

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key's id (not the key).")]
Tenant = Annotated[str, Path(pattern=TENANT_NAME.pattern, description="The tenant's name.")]


def _keys(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.keys
    return store


def _tenants(request: Request) -> TenantStore:
    store: TenantStore = request.app.state.tenants
    return store


async def _audited(request: Request, caller: Principal, action: str, target: str, **details: Any) -> None:
    """Write ``caller``'s ``action`` on ``target`` to the audit log."""
    log: AuditLog = request.app.state.services.audit
    await log.record(
        key_id=caller.key_id, tenant=caller.tenant, action=action, target=target, details=details
    )


def _raises(now: TenantView, wanted: TenantQuotas.Update, settings: Settings) -> bool:
    """Whether ``wanted`` gives the tenant more than it has ``now`` (a field left out: the default)."""
    defaults, policy = settings.default_quotas, TenantPolicy()
    more_of = [
        (wanted.max_open_jobs or defaults.max_open_jobs) > now.quotas.max_open_jobs,
        (wanted.submits_per_s or defaults.submits_per_s) > now.quotas.submits_per_s,
        (wanted.max_kept_jobs or defaults.max_kept_jobs) > now.quotas.max_kept_jobs,
        (wanted.max_kept_bytes or defaults.max_kept_bytes) > now.quotas.max_kept_bytes,
        (wanted.weight or policy.weight) > now.policy.weight,
        (policy.max_priority if wanted.max_priority is None else wanted.max_priority)
        > now.policy.max_priority,
        now.policy.queues is not None and not set(wanted.queues or QUEUE_NAMES) <= set(now.policy.queues),
    ]
    return any(more_of)


def _own(caller: Principal, tenant: str) -> None:
    """Refuse (403) an admin acting on another tenant than its own; an operator acts on any."""
    if not caller.may_manage(tenant):
        raise Forbidden(
            f"An admin key manages its own tenant ({caller.tenant}) only; another tenant's needs an "
            "operator key.",
            scope=OPERATOR,
        )


def _webhook_secrets(request: Request) -> TenantWebhookSecrets:
    secrets: TenantWebhookSecrets = request.app.state.webhook_secrets
    return secrets


def _key_view(record: KeyRecord) -> ApiKeyView:
    return ApiKeyView(
        id=record.id,
        tenant=record.tenant,
        scopes=list(record.scopes),
        name=record.name,
        created_at=record.created_at,  # ms, converted by the model
    )


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=NewApiKey,
    responses=problems(BODY_PROBLEMS),
    summary="Create a key",
)
async def create_key(body: ApiKeyCreate, caller: AdminKey, request: Request) -> NewApiKey:
    """The key is in this answer only: only its hash is kept. The tenant's first key also brings the
    tenant's webhook signing secret, once."""
    _own(caller, body.tenant)
    if OPERATOR in body.scopes and not caller.is_bootstrap_admin:
        raise Forbidden(
            "Only the bootstrap admin key (JOBSVC_ADMIN_API_KEY) mints operator keys.", scope=OPERATOR
        )
    issued = await _keys(request).create(body.tenant, body.scopes, name=body.name)
    webhook_secret = await _webhook_secrets(request).create(body.tenant)
    await _audited(
        request, caller, "key.create", body.tenant, key_id=issued.record.id, scopes=list(issued.record.scopes)
    )
    return NewApiKey(**_key_view(issued.record).model_dump(), key=issued.key, webhook_secret=webhook_secret)


@router.get("/keys", response_model=ApiKeyList, summary="List keys (never their secrets)")
async def list_keys(caller: AdminKey, request: Request) -> ApiKeyList:
    """An admin's own tenant's keys; every key for an operator."""
    records = [record for record in await _keys(request).list() if caller.may_manage(record.tenant)]
    return ApiKeyList(keys=[_key_view(record) for record in records])


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems({404: "No API key with this id.", **INVALID_PARAMETER}),
    summary="Revoke a key",
)
async def revoke_key(key_id: KeyId, caller: AdminKey, request: Request) -> None:
    """Another tenant's key is, to an admin, as unknown as a key that does not exist."""
    key_store = _keys(request)
    owner = await key_store.tenant_of(key_id)
    if owner is None or not caller.may_manage(owner) or not await key_store.revoke(key_id):
        raise KeyNotFound(f"No API key with id {key_id}.")
    await _audited(request, caller, "key.revoke", owner, key_id=key_id)


@router.get("/tenants", response_model=TenantList, summary="Tenants, their open and kept jobs and quotas")
async def list_tenants(caller: AdminKey, request: Request) -> TenantList:
    """An admin's own tenant; every tenant for an operator."""
    views = [view for view in await _tenants(request).list() if caller.may_manage(view.name)]
    return TenantList(tenants=[TenantQuotas.from_view(view) for view in views])


@router.get(
    "/tenants/{tenant}",
    response_model=TenantQuotas,
    responses=problems(INVALID_PARAMETER),
    summary="A tenant's open and kept jobs, quotas and storage budget",
)
async def get_tenant(tenant: Tenant, caller: AdminKey, request: Request) -> TenantQuotas:
    """An admin's own tenant; any tenant for an operator."""
    _own(caller, tenant)
    return TenantQuotas.from_view(await _tenants(request).get(tenant))


@router.put(
    "/tenants/{tenant}/quotas",
    response_model=TenantQuotas,
    responses=problems({**BODY_PROBLEMS, **INVALID_PARAMETER}),
    summary="Set a tenant's quotas and storage budget",
)
async def set_quotas(
    tenant: Tenant, body: TenantQuotas.Update, caller: AdminKey, request: Request
) -> TenantQuotas:
    """Fields left out (or null) go back to the defaults (JOBSVC_TENANT_MAX_OPEN_JOBS, …_SUBMITS_PER_S,
    …_MAX_KEPT_JOBS, …_MAX_KEPT_BYTES). An admin may lower its own tenant's quotas; raising one above
    what it is now (a reset to a higher default included) takes an operator, so an admin cannot undo an
    operator's limit."""
    _own(caller, tenant)
    store = _tenants(request)
    wanted = body.model_dump()
    if not caller.is_operator and _raises(await store.get(tenant), body, request.app.state.settings):
        raise Forbidden("Only an operator key raises a tenant's quotas.", scope=OPERATOR)
    await store.set_quotas(tenant, wanted)
    await _audited(request, caller, "tenant.quotas", tenant, **wanted)
    return TenantQuotas.from_view(await store.get(tenant))


@router.post(
    "/tenants/{tenant}/webhook-secrets",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookSecret,
    responses=problems({**BODY_PROBLEMS, **INVALID_PARAMETER}),
    summary="Rotate a tenant's webhook signing secret",
)
async def rotate_webhook_secret(
    tenant: Tenant, body: WebhookSecretRotation, caller: AdminKey, request: Request
) -> WebhookSecret:
    """A new secret, shown in this answer only; the one it replaces signs beside it (two signatures in
    ``webhook-signature``) until its grace period ends."""
    _own(caller, tenant)
    settings = request.app.state.settings
    grace_s = settings.webhook_secret_grace_s if body.grace_s is None else body.grace_s
    rotation = await _webhook_secrets(request).rotate(tenant, grace_s=grace_s)
    await _audited(request, caller, "tenant.webhook_secret.rotate", tenant, grace_s=grace_s)
    until = rotation.previous_valid_until_ms
    return WebhookSecret(
        tenant=tenant,
        secret=rotation.secret,
        previous_valid_until=datetime.fromtimestamp(until / 1000, UTC) if until is not None else None,
    )


@router.delete(
    "/tenants/{tenant}/jobs",
    response_model=TenantDeletion,
    responses=problems(INVALID_PARAMETER),
    summary="Delete a tenant's jobs",
)
async def delete_tenant_jobs(tenant: Tenant, caller: AdminKey, request: Request) -> TenantDeletion:
    """Every job of the tenant, its result, attempts and dead letter; running ones are aborted."""
    _own(caller, tenant)
    deleted = await _tenants(request).delete_jobs(tenant)
    await _audited(request, caller, "tenant.jobs.delete", tenant, deleted_jobs=deleted)
    return TenantDeletion(tenant=tenant, deleted_jobs=deleted)


@router.get(
    "/audit",
    response_model=AuditList,
    responses=problems(INVALID_PARAMETER),
    summary="The admins' and operators' actions, newest first",
)
async def read_audit_log(
    caller: OperatorKey, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> AuditList:
    """Who (the key's id and tenant) did what (``action``) to whom (``target``), and when."""
    log: AuditLog = request.app.state.services.audit
    entries = await log.newest(limit)
    return AuditList(
        entries=[
            AuditEntry(
                at=datetime.fromtimestamp(entry.at_ms / 1000, UTC),
                key_id=entry.key_id,
                tenant=entry.tenant,
                action=entry.action,
                target=entry.target,
                details=entry.details,
            )
            for entry in entries
        ]
    )
