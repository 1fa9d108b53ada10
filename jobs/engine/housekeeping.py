"""Cron coroutines that keep Redis tidy.

Job records, results and idempotency keys carry their own TTLs, so Redis expires them by itself; what
does not expire is membership of the listing indexes (sorted sets) and ARQ's abort set. The cleanup
removes index entries whose job has expired, so listings and the index agree with retention, and ends the
jobs ARQ's own producers put in ARQ queues jobsvc does not have, which no worker would ever run.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from jobs.context import Ctx
from jobs.definition import job_type
from jobs.engine import keys
from jobs.engine.arq_intake import refuse_in_unknown_queues

PRUNE_BATCH = 500
#: abort requests older than this were either handled or concern jobs no worker holds
ABORT_MAX_AGE_MS = 10 * 60 * 1000


class CleanupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CleanupResult(BaseModel):
    indexes_scanned: int
    index_entries_removed: int
    abort_entries_removed: int
    unknown_queue_jobs_refused: int


async def prune_index(redis: Redis, index_key: str, *, max_entries: int = 100_000) -> int:
    """Remove, oldest first, index entries whose job has no record left. Returns how many."""
    removed = 0
    start = 0
    while start < max_entries:
        job_ids = [m.decode() for m in await redis.zrange(index_key, start, start + PRUNE_BATCH - 1)]
        if not job_ids:
            break
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(keys.job_meta(job_id), keys.arq_job(job_id), keys.arq_result(job_id))
            alive = await pipe.execute()
        gone = [job_id for job_id, count in zip(job_ids, alive, strict=True) if not count]
        if gone:
            await redis.zrem(index_key, *gone)
            removed += len(gone)
        start += len(job_ids) - len(gone)
    return removed


@job_type(
    "maintenance.cleanup",
    description="Prunes listing indexes and abort requests that outlived their jobs; refuses the jobs ARQ's "
    "own producers put in ARQ queues jobsvc does not have.",
    internal=True,  # it reads the whole keyspace, every tenant's: the schedule runs it, nobody submits it
)
async def cleanup(ctx: Ctx, params: CleanupParams) -> CleanupResult:
    redis = ctx["redis"]
    scanned = removed = 0
    async for index_key in redis.scan_iter(match=keys.INDEX_PATTERN, count=200, _type="zset"):
        scanned += 1
        removed += await prune_index(redis, index_key.decode())
    cutoff = int(time.time() * 1000) - ABORT_MAX_AGE_MS
    aborts = await redis.zremrangebyscore(keys.ABORT_SET, "-inf", cutoff)
    refused = await refuse_in_unknown_queues(redis, result_retention_s=ctx["config"].result_retention_s)
    return CleanupResult(
        indexes_scanned=scanned,
        index_entries_removed=removed,
        abort_entries_removed=aborts,
        unknown_queue_jobs_refused=refused,
    )
