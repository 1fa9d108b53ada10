"""API keys: who is calling, for which tenant, and allowed to do what.

A key reads ``jsk_<id>_<secret>``: the id names its record (``jobsvc:apikey:<id>``), the secret is 256
random bits shown once, at creation; only its SHA-256 is stored, and it is compared in constant time.
``JOBSVC_ADMIN_API_KEY`` is an admin key that lives in the settings instead (all scopes, tenant
``default``), to create the others. Every route under ``/v1`` declares the scope it needs:

- ``submit``: submit, batch, retry, replay dead letters
- ``read``: read, wait for and list jobs and dead letters, the job type catalogue
- ``cancel``: cancel jobs, delete and purge dead letters
- ``admin``: keys, tenants, queues, schedules and workers (they span tenants)

Missing or unknown key: 401 with ``WWW-Authenticate: Bearer``. A key without the scope: 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr
from redis.asyncio import Redis

from jobs.engine import keys
from service.api.errors import Forbidden, TooManyFailedAuthentications, Unauthorized

Scope = Literal["submit", "read", "cancel", "admin", "operator"]
SCOPES: tuple[Scope, ...] = ("submit", "read", "cancel", "admin", "operator")
#: what spans tenants (queues, workers, schedules, every tenant's keys and quotas, the audit log); only
#: the bootstrap admin key mints keys with it
OPERATOR: Scope = "operator"
TOKEN_PREFIX = "jsk"
ADMIN_KEY_ID = "admin"
#: the SHA-256 compared against when a key id is unknown, so that an unknown id costs the same work
_UNKNOWN = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class Principal:
    """The caller: the tenant its key belongs to and what the key may do."""

    key_id: str
    tenant: str
    scopes: frozenset[str]

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.scopes

    @property
    def is_bootstrap_admin(self) -> bool:
        """The key from JOBSVC_ADMIN_API_KEY, the one that may mint operators."""
        return self.key_id == ADMIN_KEY_ID

    def may_manage(self, tenant: str) -> bool:
        """An admin manages its own tenant; an operator every tenant."""
        return self.is_operator or tenant == self.tenant


@dataclass(frozen=True)
class KeyRecord:
    id: str
    tenant: str
    scopes: tuple[str, ...]
    created_at: int
    name: str


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``key`` is shown once and never stored."""

    record: KeyRecord
    key: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``jsk_<id>_<secret>`` -> (id, secret); None when it is not shaped like a key."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or len(key_id) != 16 or not secret or len(token) > 200:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


class KeyStore:
    """Create, list, revoke and check API keys."""

    def __init__(
        self,
        redis: Redis,
        *,
        admin_key: SecretStr | None,
        failures_per_minute: int,
    ) -> None:
        self.redis = redis
        self._admin_digest = _digest(admin_key.get_secret_value()) if admin_key else None
        self.failures_per_minute = failures_per_minute

    async def create(self, tenant: str, scopes: Iterable[Scope], *, name: str = "") -> IssuedKey:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = KeyRecord(
            id=key_id,
            tenant=tenant,
            scopes=tuple(s for s in SCOPES if s in set(scopes)),
            created_at=int(time.time() * 1000),
            name=name,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.api_key(key_id),
                mapping={
                    "tenant": record.tenant,
                    "scopes": ",".join(record.scopes),
                    "created_at": record.created_at,
                    "name": record.name,
                    "secret_sha256": _digest(secret),
                },
            )
            pipe.zadd(keys.API_KEYS, {key_id: record.created_at})
            await pipe.execute()
        return IssuedKey(record=record, key=f"{TOKEN_PREFIX}_{key_id}_{secret}")

    async def list(self) -> list[KeyRecord]:
        ids = [raw.decode() for raw in await self.redis.zrange(keys.API_KEYS, 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(keys.api_key(key_id))
            rows: list[dict[bytes, bytes]] = await pipe.execute()
        return [_record(key_id, row) for key_id, row in zip(ids, rows, strict=True) if row]

    async def tenant_of(self, key_id: str) -> str | None:
        """The tenant a key belongs to, or None when there is no such key."""
        tenant = await cast(Awaitable[bytes | None], self.redis.hget(keys.api_key(key_id), "tenant"))
        return tenant.decode() if tenant is not None else None

    async def revoke(self, key_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.api_key(key_id))
            pipe.zrem(keys.API_KEYS, key_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def authenticate(self, token: str, client: str | None = None) -> Principal | None:
        """The principal a bearer token stands for, or None. Constant-time in the secret. With the
        ``client``'s address, failures are counted per address and minute, and past
        ``failures_per_minute`` of them every key from it is refused (TooManyFailedAuthentications) until
        the minute ends: guessing keys is slowed to that rate. The count is read in the key's round trip."""
        offered = _digest(token)
        if self._admin_digest is not None and hmac.compare_digest(offered, self._admin_digest):
            return Principal(key_id=ADMIN_KEY_ID, tenant=keys.DEFAULT_TENANT, scopes=frozenset(SCOPES))
        now = time.time()
        failures_key = keys.auth_failures(client, int(now // 60)) if client is not None else None
        parsed = parse_token(token)
        key_id, secret = parsed if parsed is not None else ("0" * 16, "")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.api_key(key_id))
            if failures_key is not None:
                pipe.get(failures_key)
            row, *failures = await pipe.execute()
        if failures and int(failures[0] or 0) >= self.failures_per_minute:
            raise TooManyFailedAuthentications(retry_after_s=60 - int(now % 60))
        stored = row.get(b"secret_sha256", b"").decode() or _UNKNOWN
        if parsed is None or not hmac.compare_digest(_digest(secret), stored) or not row:
            if failures_key is not None:
                await self._count_failure(failures_key)
            return None
        record = _record(key_id, row)
        return Principal(key_id=key_id, tenant=record.tenant, scopes=frozenset(record.scopes))

    async def _count_failure(self, failures_key: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(failures_key)
            pipe.expire(failures_key, 120)
            await pipe.execute()


def _record(key_id: str, row: dict[bytes, bytes]) -> KeyRecord:
    return KeyRecord(
        id=key_id,
        tenant=row.get(b"tenant", b"").decode(),
        scopes=tuple(s for s in row.get(b"scopes", b"").decode().split(",") if s),
        created_at=int(row.get(b"created_at", b"0")),
        name=row.get(b"name", b"").decode(),
    )


def client_address(request: Request) -> str:
    """Who sent the request, as the server saw it (behind a proxy: the proxy, unless uvicorn is told to
    trust its X-Forwarded-For with --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


class ScopedKey(SecurityBase):
    """The dependency that lets a request through when its ``Authorization: Bearer`` key has ``scope``; its
    Principal. It is the HTTP bearer scheme of the OpenAPI document itself (a ``SecurityBase``), so each
    request solves one dependency for its caller rather than the bearer's and a check's: FastAPI solves each
    declared dependency on every request, at about 80 Python calls (docs/BENCHMARKS.md)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.model = HTTPBearerModel(description="An API key: `Authorization: Bearer jsk_…`.")
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request) -> Principal:
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Send an API key: `Authorization: Bearer <key>`.")
        key_store: KeyStore = request.app.state.keys
        principal = await key_store.authenticate(token, client_address(request))
        if principal is None:
            raise Unauthorized("This API key is not valid (unknown, revoked or mistyped).")
        if self.scope not in principal.scopes:
            raise Forbidden(f"This API key lacks the `{self.scope}` scope.", scope=self.scope)
        return principal


SubmitKey = Annotated[Principal, Depends(ScopedKey("submit"))]
ReadKey = Annotated[Principal, Depends(ScopedKey("read"))]
CancelKey = Annotated[Principal, Depends(ScopedKey("cancel"))]
AdminKey = Annotated[Principal, Depends(ScopedKey("admin"))]
OperatorKey = Annotated[Principal, Depends(ScopedKey(OPERATOR))]
