"""/v1/admin: API keys and tenants (quotas, webhook secrets, and deleting a tenant's data). Admin scope
only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from jobs.engine.keys import TENANT_NAME
from jobs.engine.webhook_secrets import TenantWebhookSecrets
from service.api.auth import AdminKey, KeyRecord, KeyStore
from service.api.errors import BODY_PROBLEMS, INVALID_PARAMETER, KeyNotFound, problems
from service.api.schemas import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyView,
    NewApiKey,
    TenantDeletion,
    TenantList,
    TenantQuotas,
    WebhookSecret,
    WebhookSecretRotation,
)
from service.stores.tenant_store import TenantStore

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=problems({}))

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key's id (not the key).")]
Tenant = Annotated[str, Path(pattern=TENANT_NAME.pattern, description="The tenant's name.")]


def _keys(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.keys
    return store


def _tenants(request: Request) -> TenantStore:
    store: TenantStore = request.app.state.tenants
    return store


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
    issued = await _keys(request).create(body.tenant, body.scopes, name=body.name)
    webhook_secret = await _webhook_secrets(request).create(body.tenant)
    return NewApiKey(**_key_view(issued.record).model_dump(), key=issued.key, webhook_secret=webhook_secret)


@router.get("/keys", response_model=ApiKeyList, summary="List keys (never their secrets)")
async def list_keys(caller: AdminKey, request: Request) -> ApiKeyList:
    return ApiKeyList(keys=[_key_view(record) for record in await _keys(request).list()])


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems({404: "No API key with this id.", **INVALID_PARAMETER}),
    summary="Revoke a key",
)
async def revoke_key(key_id: KeyId, caller: AdminKey, request: Request) -> None:
    if not await _keys(request).revoke(key_id):
        raise KeyNotFound(f"No API key with id {key_id}.")


@router.get("/tenants", response_model=TenantList, summary="Tenants, their open jobs and quotas")
async def list_tenants(caller: AdminKey, request: Request) -> TenantList:
    return TenantList(tenants=[TenantQuotas.from_view(view) for view in await _tenants(request).list()])


@router.put(
    "/tenants/{tenant}/quotas",
    response_model=TenantQuotas,
    responses=problems({**BODY_PROBLEMS, **INVALID_PARAMETER}),
    summary="Set a tenant's quotas",
)
async def set_quotas(
    tenant: Tenant, body: TenantQuotas.Update, caller: AdminKey, request: Request
) -> TenantQuotas:
    """Fields left out (or null) go back to the defaults (JOBSVC_TENANT_MAX_OPEN_JOBS, …_SUBMITS_PER_S)."""
    store = _tenants(request)
    await store.set_quotas(tenant, max_open_jobs=body.max_open_jobs, submits_per_s=body.submits_per_s)
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
    settings = request.app.state.settings
    grace_s = settings.webhook_secret_grace_s if body.grace_s is None else body.grace_s
    rotation = await _webhook_secrets(request).rotate(tenant, grace_s=grace_s)
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
    return TenantDeletion(tenant=tenant, deleted_jobs=await _tenants(request).delete_jobs(tenant))
