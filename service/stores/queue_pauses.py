"""Pausing a queue (an incident control): its jobs keep being accepted and wait in line, no worker starts
one from it, running ones finish. Held in Redis (``keys.PAUSED_QUEUES``), so a pause outlives worker and
Redis restarts; the claim script reads it (``claim.lua``)."""

from __future__ import annotations

import time
import typing
from collections.abc import Awaitable

from redis.asyncio import Redis

from jobs.engine import keys


async def pause_queue(redis: Redis, queue: str) -> int:
    """Pause ``queue`` (again: no change); when it was paused, in epoch ms."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(keys.PAUSED_QUEUES, queue, str(int(time.time() * 1000)))
        pipe.hget(keys.PAUSED_QUEUES, queue)
        _, since = await pipe.execute()
    return int(since)


async def resume_queue(redis: Redis, queue: str) -> None:
    """Let workers start its jobs again, at once: an idle worker is woken when jobs wait."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(keys.PAUSED_QUEUES, queue)
        pipe.exists(keys.ready(queue))
        pipe.llen(keys.wake(queue))
        _, waiting, tokens = await pipe.execute()
    if waiting and not tokens:
        await typing.cast(Awaitable[int], redis.rpush(keys.wake(queue), "1"))


async def paused_queues(redis: Redis) -> dict[str, int]:
    """Each paused queue, with when it was paused (epoch ms)."""
    raw = await redis.hgetall(keys.PAUSED_QUEUES)  # type: ignore[misc]
    return {name.decode(): int(since) for name, since in raw.items()}
