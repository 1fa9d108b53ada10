"""Celery with the Redis broker and result backend: three tasks and the client side.

    BENCH_REDIS_URL=redis://… celery -A bench.peers.celery_app worker --pool threads --concurrency 100

Celery's defaults but the thread pool with 100 threads (its default prefork pool runs one job per process,
as many as cores). Its client is synchronous, so the suite calls it in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery import Celery

from bench.measure import CountingRedis
from bench.peers.base import BIN, SLEEP_S, Kind, System

QUEUE = "celery"


_URL = os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379")
#: the workers' app stores every result in Redis (``celery-task-meta-<id>``)
app = Celery("bench", broker=_URL, backend=_URL)


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="sleep")
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@app.task(name="stamp")
def stamp() -> float:
    return time.time()


ARGS: dict[Kind, dict[str, Any]] = {"noop": {}, "sleep": {"seconds": SLEEP_S}, "stamp": {}}


class CelerySystem(System):
    name = "celery"
    concurrency = 100
    describe = "Celery Redis broker + backend: --pool threads --concurrency 100"

    def worker_args(self) -> list[str | Path]:
        args: list[str | Path] = [BIN / "celery", "-A", "bench.peers.celery_app", "worker"]
        return [*args, "--pool", "threads", "--concurrency", str(self.concurrency), "--loglevel", "WARNING"]

    async def connect(self, redis_url: str) -> None:
        # No result backend on the sending side: with one, every send SUBSCRIBEs to the task's result
        # channel on a connection nobody reads, and after ~1,000 sends the client hung. Results are read
        # from their keys instead.
        self._client = Celery("bench", broker=redis_url)
        self._results = CountingRedis.from_url(redis_url)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
        await self._results.aclose()

    def _send(self, kind: Kind) -> str:
        return str(self._client.send_task(kind, kwargs=ARGS[kind], queue=QUEUE).id)

    async def enqueue(self, kind: Kind) -> str:
        return await asyncio.to_thread(self._send, kind)

    async def enqueue_many(self, kind: Kind, count: int) -> list[str]:
        return await asyncio.to_thread(lambda: [self._send(kind) for _ in range(count)])

    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        # waiting in the list, or delivered to a worker and not acknowledged yet
        waiting = await redis.number("LLEN", QUEUE) + await redis.number("HLEN", "unacked")
        if waiting:
            return waiting
        # acknowledged (Celery acknowledges before running): finished once its result is stored
        return len(ids) - await redis.number("EXISTS", *[f"celery-task-meta-{task_id}" for task_id in ids])

    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        for task_id in ids:
            stored = await self._results.get(f"celery-task-meta-{task_id}")
            if stored is not None:
                meta = json.loads(stored)
                if meta["status"] == "SUCCESS":
                    found[task_id] = float(meta["result"])
        return found
