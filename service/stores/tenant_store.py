"""Tenants: their quotas, and deleting everything a tenant has (jobs, results, dead letters)."""

from __future__ import annotations

import builtins
import time
import typing
from dataclasses import dataclass

from redis.asyncio import Redis

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.queue_ops import Kept, Quotas, decode_purge_job, decode_read_kept

BATCH = 500
#: SCAN pattern of every tenant's Idempotency-Key records, derived from the one place keys are named
IDEMPOTENCY_PATTERN = keys.idempotency(keys.DEFAULT_TENANT, "").rpartition(":")[0] + ":*"


#: the quota fields an admin may set per tenant, as the tenant's quotas hash and over_quota.lua name them
QUOTA_FIELDS = ("max_open_jobs", "submits_per_s", "max_kept_jobs", "max_kept_bytes")
#: and its policy's, in the same hash: fair-share weight (fair_tag.lua), highest priority, queues
POLICY_FIELDS = ("weight", "max_priority", "queues")


@dataclass(frozen=True)
class TenantPolicy:
    """What a tenant may use: its share of the workers beside other tenants with ready work, the highest
    priority it may submit at, and the queues it may submit to (None: every queue)."""

    weight: int = 1
    max_priority: int = 9
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TenantView:
    name: str
    open_jobs: int
    kept: Kept
    quotas: Quotas
    policy: TenantPolicy


class TenantStore:
    def __init__(self, redis: Redis, *, defaults: Quotas) -> None:
        self.redis = redis
        self.defaults = defaults
        self._purge = redis.register_script(scripts.PURGE_JOB)
        self._forget_idempotency_key = redis.register_script(scripts.FORGET_IDEMPOTENCY_KEY)
        self._read_kept = redis.register_script(scripts.READ_KEPT)

    async def list(self) -> list[TenantView]:
        """Every tenant that has had jobs, read in one round trip after their names."""
        names = [raw.decode() for raw in await self.redis.zrange(keys.TENANTS, 0, -1)]
        return await self._read(names)

    async def get(self, tenant: str) -> TenantView:
        [view] = await self._read([tenant])
        return view

    async def _read(self, tenants: builtins.list[str]) -> builtins.list[TenantView]:
        if not tenants:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.get(keys.tenant_open_jobs(tenant))
                await self._read_kept(args=[tenant], client=pipe)
                pipe.hgetall(keys.tenant_quotas(tenant))
            replies = await pipe.execute()
        return [
            TenantView(
                name=tenant,
                open_jobs=int(open_jobs or 0),
                kept=decode_read_kept(kept),
                quotas=self._quotas(quotas),
                policy=_policy(quotas),
            )
            for tenant, (open_jobs, kept, quotas) in zip(
                tenants, zip(*[iter(replies)] * 3, strict=True), strict=True
            )
        ]

    async def set_quotas(self, tenant: str, changes: dict[str, int | builtins.list[str] | None]) -> None:
        """Set the tenant's own quotas and policy (QUOTA_FIELDS, POLICY_FIELDS); a None value goes back to
        the default, a field left out stays as it is."""
        key = keys.tenant_quotas(tenant)
        async with self.redis.pipeline(transaction=True) as pipe:
            for field, value in changes.items():
                if field not in QUOTA_FIELDS + POLICY_FIELDS:
                    raise ValueError(f"no quota {field!r}")
                if value is None:
                    pipe.hdel(key, field)
                elif isinstance(value, list):  # as over_quota.lua looks queues up: ",a,b,"
                    pipe.hset(key, field, "," + ",".join(value) + ",")
                else:
                    pipe.hset(key, field, str(value))
            pipe.zadd(keys.TENANTS, {tenant: int(time.time() * 1000)}, nx=True)
            await pipe.execute()

    async def delete_jobs(self, tenant: str) -> int:
        """Delete every job of ``tenant`` with its result, attempts, dead letter, Idempotency-Key and events;
        running ones are aborted and their end is never written. Returns how many jobs were deleted."""
        index = keys.index_all(tenant)
        deleted: set[str] = set()
        while True:
            job_ids = [raw.decode() for raw in await self.redis.zrange(index, 0, BATCH - 1)]
            if not job_ids:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    await self._purge(args=[job_id, tenant], client=pipe)
                replies = await pipe.execute()
            deleted.update(
                job_id for job_id, reply in zip(job_ids, replies, strict=True) if decode_purge_job(reply)
            )
            # (the index entries go with the index keys below; drop them now so the loop advances)
            await self.redis.zrem(index, *job_ids)
        # the tenant's other indexes are ``<index_all>:…``; a bare ``<index_all>*`` would also match the
        # indexes of every tenant whose name starts with this one's (acme: acme-eu, acmecorp)
        leftovers = [key async for key in self.redis.scan_iter(match=f"{index}:*", count=500)]
        # and so are its storage budget's expiry buckets: with its jobs gone, it keeps nothing
        kept = keys.tenant_kept(tenant)
        leftovers += [key async for key in self.redis.scan_iter(match=f"{kept}:*", count=500)]
        await self.redis.delete(
            *leftovers,
            index,
            kept,
            keys.dead_letters(tenant),
            keys.tenant_open_jobs(tenant),
            keys.events(tenant),
        )
        await self._forget_idempotency_keys(deleted)
        return len(deleted)

    async def _forget_idempotency_keys(self, job_ids: set[str]) -> None:
        """Drop the Idempotency-Keys that name deleted jobs, so the tenant may use them again (their names
        are hashes: only their values, ``<job id> <request hash>``, tell whose they are)."""
        if not job_ids:
            return
        batch: builtins.list[bytes] = []
        async for key in self.redis.scan_iter(match=IDEMPOTENCY_PATTERN, count=500):
            batch.append(typing.cast(bytes, key))
            if len(batch) >= BATCH:
                await self._forget_among(batch, job_ids)
                batch = []
        if batch:
            await self._forget_among(batch, job_ids)

    async def _forget_among(self, idempotency_keys: builtins.list[bytes], job_ids: set[str]) -> None:
        values = await self.redis.mget(idempotency_keys)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, value in zip(idempotency_keys, values, strict=True):
                if value is not None and value.decode().partition(" ")[0] in job_ids:
                    await self._forget_idempotency_key(keys=[key], args=[value], client=pipe)
            await pipe.execute()

    def _quotas(self, raw: dict[bytes, bytes]) -> Quotas:
        return Quotas(
            **{field: int(raw.get(field.encode()) or getattr(self.defaults, field)) for field in QUOTA_FIELDS}
        )


def _policy(raw: dict[bytes, bytes]) -> TenantPolicy:
    default = TenantPolicy()
    queues = raw.get(b"queues")
    return TenantPolicy(
        weight=int(raw.get(b"weight") or default.weight),
        max_priority=int(raw.get(b"max_priority") or default.max_priority),
        queues=tuple(name for name in queues.decode().split(",") if name) if queues else None,
    )
