"""Who did what to whom: every admin and operator action (keys minted and revoked, quotas set, webhook
secrets rotated, a tenant's jobs deleted, queues paused and resumed), in a bounded Redis stream that
operators read (``GET /v1/admin/audit``). Entries name the key that acted, never a secret."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobs.engine import keys

#: entries kept, about (the stream is trimmed as it grows)
RETAINED = 100_000


@dataclass(frozen=True)
class AuditEntry:
    at_ms: int
    key_id: str
    tenant: str
    action: str
    target: str
    details: dict[str, Any]


class AuditLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def record(
        self, *, key_id: str, tenant: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> None:
        """Write one entry; its stream id says when (ms first)."""
        fields: dict[str | bytes, str | bytes] = {
            "key_id": key_id,
            "tenant": tenant,
            "action": action,
            "target": target,
            "details": json.dumps(details or {}, separators=(",", ":")),
        }
        await self.redis.xadd(keys.AUDIT_LOG, fields, maxlen=RETAINED, approximate=True)  # type: ignore[arg-type]

    async def newest(self, limit: int) -> list[AuditEntry]:
        """The ``limit`` newest entries, newest first."""
        rows = await self.redis.xrevrange(keys.AUDIT_LOG, count=limit)
        return [_entry(entry_id, fields) for entry_id, fields in rows]


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> AuditEntry:
    text = {name.decode(): value.decode() for name, value in fields.items()}
    return AuditEntry(
        at_ms=int(entry_id.decode().partition("-")[0]),
        key_id=text.get("key_id", ""),
        tenant=text.get("tenant", ""),
        action=text.get("action", ""),
        target=text.get("target", ""),
        details=json.loads(text.get("details") or "{}"),
    )
