"""Dashboard sessions: an API key checked once at sign-in becomes a random session id in a cookie.

The cookie holds 256 random bits and nothing else; Redis holds what it stands for under the SHA-256 of
that id (``keys.dashboard_session``), so someone who can read Redis cannot ride a session: the tenant, the
key's scopes and id, a CSRF token for the forms, and the moment it ends. A session lasts
``JOBSVC_DASHBOARD_SESSION_TTL_S`` from sign-in, ends at sign-out, and ends at once when its API key is
revoked (each read checks the key still exists).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import typing
from collections.abc import Awaitable
from dataclasses import dataclass

from redis.asyncio import Redis

from jobs.engine import keys
from service.api.auth import ADMIN_KEY_ID, OPERATOR, Principal

#: the session cookie: HttpOnly, SameSite=Strict, only sent to /dashboard, Secure over https
SESSION_COOKIE = "jobsvc_session"
#: the sign-in form's CSRF token before any session exists (double submit: cookie and hidden field)
SIGN_IN_COOKIE = "jobsvc_sign_in"
COOKIE_PATH = "/dashboard"
#: the hidden form field, or the request header, that carries a session's CSRF token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: the scope that shows what spans tenants (queues, workers, schedules), as under /v1
CLUSTER_SCOPE = OPERATOR


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def tokens_match(offered: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(offered) and hmac.compare_digest(str(offered).encode(), expected.encode())


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class DashboardSession:
    """Who is signed in: the key's tenant and scopes, the forms' CSRF token, when it ends (epoch ms)."""

    principal: Principal
    csrf_token: str
    expires_at_ms: int

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    def can(self, scope: str) -> bool:
        return scope in self.principal.scopes

    @property
    def sees_cluster(self) -> bool:
        return self.can(CLUSTER_SCOPE)

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.expires_at_ms / 1000 - time.time())


class SessionStore:
    """Open, read and close dashboard sessions in Redis."""

    def __init__(self, redis: Redis, *, ttl_s: int, admin_key_configured: bool) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._admin_key_configured = admin_key_configured

    async def open(self, principal: Principal) -> tuple[str, DashboardSession]:
        """A new session for ``principal``; returns the id for the cookie and the session."""
        session_id = new_token()
        session = DashboardSession(
            principal=principal,
            csrf_token=new_token(),
            expires_at_ms=int((time.time() + self.ttl_s) * 1000),
        )
        key = keys.dashboard_session(_digest(session_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "tenant": principal.tenant,
                    "scopes": ",".join(sorted(principal.scopes)),
                    "key_id": principal.key_id,
                    "csrf": session.csrf_token,
                    "expires_at": session.expires_at_ms,
                },
            )
            pipe.pexpireat(key, session.expires_at_ms)
            await pipe.execute()
        return session_id, session

    async def read(self, session_id: str | None) -> DashboardSession | None:
        """The live session behind a cookie, or None (unknown, expired, or its key was revoked)."""
        if not session_id or len(session_id) > 100:
            return None
        row = await typing.cast(
            Awaitable[dict[bytes, bytes]], self.redis.hgetall(keys.dashboard_session(_digest(session_id)))
        )
        if not row:
            return None
        key_id = row.get(b"key_id", b"").decode()
        expires_at = int(row.get(b"expires_at", b"0"))
        if expires_at <= time.time() * 1000 or not await self._key_still_valid(key_id):
            return None
        return DashboardSession(
            principal=Principal(
                key_id=key_id,
                tenant=row.get(b"tenant", b"").decode(),
                scopes=frozenset(s for s in row.get(b"scopes", b"").decode().split(",") if s),
            ),
            csrf_token=row.get(b"csrf", b"").decode(),
            expires_at_ms=expires_at,
        )

    async def close(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 100:
            await self.redis.delete(keys.dashboard_session(_digest(session_id)))

    async def _key_still_valid(self, key_id: str) -> bool:
        if key_id == ADMIN_KEY_ID:
            return self._admin_key_configured
        return bool(await self.redis.exists(keys.api_key(key_id)))
