"""The history of a job's attempts: when each started and ended, and how it failed.

Kept in a list beside the job (``jobsvc:attempts:<id>``), one JSON object per failed attempt. An attempt
whose worker died records nothing; the next attempt notices the gap and records it as lost.
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis

from jobs.engine import keys
from jobs.engine import lua as scripts

WORKER_LOST = {"type": "WorkerLost", "message": "its worker stopped while running it"}
MAX_MESSAGE_CHARS = 1000


def now_ms() -> int:
    return int(time.time() * 1000)


async def begin_attempt(redis: Redis, job_id: str, attempt: int, *, ttl_s: float) -> int:
    """Record the start of ``attempt`` (and any lost attempts before it); returns the start time (ms).

    A first attempt costs no round trip: the claim already recorded the start in the job's meta."""
    started = now_ms()
    if attempt <= 1:
        return started
    ttl = int(ttl_s)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.expire(keys.job_meta(job_id), ttl)
        pipe.llen(keys.job_attempts(job_id))
        _, recorded = await pipe.execute()
    if recorded < attempt - 1:
        lost = [json.dumps({"attempt": n, "error": WORKER_LOST}) for n in range(recorded + 1, attempt)]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.rpush(keys.job_attempts(job_id), *lost)
            pipe.expire(keys.job_attempts(job_id), ttl)
            await pipe.execute()
    return started


async def end_attempt(
    redis: Redis, job_id: str, attempt: int, started_ms: int, exc: BaseException, *, ttl_s: float
) -> None:
    """Record how ``attempt`` failed; the message also shows on the job while it waits for a retry."""
    error = {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE_CHARS]}
    record = {"attempt": attempt, "started_at": started_ms, "finished_at": now_ms(), "error": error}
    async with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(keys.job_attempts(job_id), json.dumps(record))
        pipe.expire(keys.job_attempts(job_id), int(ttl_s))
        last_error = f"{error['type']}: {error['message']}"
        pipe.eval(scripts.UPDATE_META, 1, keys.job_meta(job_id), "last_error", last_error)
        await pipe.execute()


async def read_attempts(redis: Redis, job_id: str) -> list[dict[str, Any]]:
    raw_attempts = await typing.cast(Awaitable[list[bytes]], redis.lrange(keys.job_attempts(job_id), 0, -1))
    return [json.loads(raw) for raw in raw_attempts]
