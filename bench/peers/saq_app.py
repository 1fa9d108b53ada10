"""SAQ on Redis: three job functions, the worker settings read from the environment, and the client side.

    BENCH_REDIS_URL=redis://… saq bench.peers.saq_app.settings

SAQ's defaults but concurrency 100 (``BENCH_CONCURRENCY``); it dequeues with a blocking BLMOVE.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saq import Queue

from bench.measure import CountingRedis
from bench.peers.base import BIN, SLEEP_S, Kind, System


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep(ctx: dict[str, Any], *, seconds: float) -> None:
    await asyncio.sleep(seconds)


async def stamp(ctx: dict[str, Any]) -> float:
    return time.time()


settings: dict[str, Any] = {
    "queue": Queue.from_url(os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379")),
    "functions": [noop, sleep, stamp],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "100")),
}

ARGS: dict[Kind, dict[str, Any]] = {"noop": {}, "sleep": {"seconds": SLEEP_S}, "stamp": {}}


class SaqSystem(System):
    name = "saq"
    concurrency = 100
    describe = "SAQ: concurrency 100, other settings default (blocking dequeue)"

    def __init__(self) -> None:
        self._queue: Queue | None = None

    def worker_args(self) -> list[str | Path]:
        return [BIN / "saq", "bench.peers.saq_app.settings"]

    def worker_env(self, redis_url: str) -> dict[str, str]:
        return {"BENCH_REDIS_URL": redis_url, "BENCH_CONCURRENCY": str(self.concurrency)}

    async def connect(self, redis_url: str) -> None:
        self._queue = Queue.from_url(redis_url)
        await self._queue.connect()

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.disconnect()
        self._queue = None

    async def enqueue(self, kind: Kind) -> str:
        assert self._queue is not None
        job = await self._queue.enqueue(kind, **ARGS[kind])
        assert job is not None
        return str(job.key)

    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        # SAQ keeps every queued or running job in this sorted set
        return await redis.number("ZCARD", "saq:default:incomplete")

    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        assert self._queue is not None
        found: dict[str, float] = {}
        for key in ids:
            job = await self._queue.job(key)
            if job is not None and job.result is not None:
                found[key] = float(job.result)
        return found
