"""``ctx["history"]``: what a job may read of its own tenant's jobs, by creation time."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from jobs.context import HistoryBatch, PastJob
from jobs.engine import keys
from jobs.engine.records import read_snapshots

#: ids read per round trip
BATCH = 500


class TenantHistory:
    """Reads one tenant's listing index and the jobs' records; never another tenant's."""

    def __init__(self, redis: Redis, tenant: str) -> None:
        self._redis = redis
        self._index = keys.index_all(tenant)

    async def count_created_between(self, start_ms: int, end_ms: int) -> int:
        return int(await self._redis.zcount(self._index, start_ms, end_ms))

    async def created_between(self, start_ms: int, end_ms: int) -> AsyncIterator[HistoryBatch]:
        async for job_ids in self._ids_created_between(start_ms, end_ms):
            jobs = [
                PastJob(
                    id=snapshot.id,
                    type=snapshot.type,
                    status=snapshot.status,
                    started_at=snapshot.started_at,
                    finished_at=snapshot.finished_at,
                )
                for snapshot in await read_snapshots(self._redis, job_ids)
                if snapshot is not None
            ]
            yield HistoryBatch(entries_read=len(job_ids), jobs=jobs)

    async def _ids_created_between(self, low_ms: int, high_ms: int) -> AsyncIterator[list[str]]:
        """Batches of ids, oldest first. Pages by score rather than by rank, so entries the cleanup removes
        meanwhile shift nothing; ``skip`` steps over the ids already read that share the last score."""
        low, skip = low_ms, 0
        while True:
            rows = await self._redis.zrangebyscore(
                self._index, low, high_ms, start=skip, num=BATCH, withscores=True
            )
            if not rows:
                return
            yield [member.decode() for member, _ in rows]
            if len(rows) < BATCH:
                return
            last = int(rows[-1][1])
            tied = sum(1 for _, score in rows if int(score) == last)
            skip = skip + tied if last == low else tied
            low = last
