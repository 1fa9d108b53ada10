"""Vanilla ARQ 0.28: three job functions, a WorkerSettings read from the environment, and the client side.

    BENCH_REDIS_URL=redis://… arq bench.peers.arq_vanilla.WorkerSettings

``arq-default`` runs ARQ's defaults (max_jobs 10, poll_delay 0.5 s); ``arq-tuned`` sets poll_delay 0.01 s
and max_jobs 200 through ``BENCH_ARQ_POLL_DELAY`` and ``BENCH_ARQ_MAX_JOBS``. Pickle, as ARQ defaults to.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

from bench.measure import CountingRedis
from bench.peers.base import BIN, SLEEP_S, Kind, System, uvicorn_workers

QUEUE = "arq:queue"


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep(ctx: dict[str, Any], seconds: float) -> None:
    await asyncio.sleep(seconds)


async def stamp(ctx: dict[str, Any]) -> float:
    return time.time()


def redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379"))


class WorkerSettings:
    functions: ClassVar = [noop, sleep, stamp]
    redis_settings = redis_settings()
    # ARQ's own defaults unless the environment says otherwise
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.5"))


ARGS: dict[Kind, dict[str, Any]] = {"noop": {}, "sleep": {"seconds": SLEEP_S}, "stamp": {}}
#: enqueue_job calls in flight at once when filling a backlog (each is a WATCH/MULTI/EXEC of its own)


class ArqDefault(System):
    name = "arq-default"
    describe = "ARQ 0.28 defaults: max_jobs 10, poll_delay 0.5 s"
    concurrency: int | None = None
    poll_delay_s: float | None = None

    def __init__(self) -> None:
        self._pool: ArqRedis | None = None

    def worker_args(self) -> list[str | Path]:
        return [BIN / "arq", "bench.peers.arq_vanilla.WorkerSettings"]

    def worker_env(self, redis_url: str) -> dict[str, str]:
        env = {"BENCH_REDIS_URL": redis_url}
        if self.concurrency is not None:
            env["BENCH_ARQ_MAX_JOBS"] = str(self.concurrency)
        if self.poll_delay_s is not None:
            env["BENCH_ARQ_POLL_DELAY"] = str(self.poll_delay_s)
        return env

    def api_args(self, port: int, processes: int = 1) -> list[str | Path] | None:
        return [
            BIN / "uvicorn", "bench.peers.arq_api:app", "--port", str(port), "--no-access-log",
            *uvicorn_workers(processes),
        ]  # fmt: skip

    def rest_job(self, kind: Kind) -> dict[str, object]:
        return {"function": kind, "params": ARGS[kind]}

    async def connect(self, redis_url: str) -> None:
        self._pool = await create_pool(RedisSettings.from_dsn(redis_url))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose(close_connection_pool=True)
        self._pool = None

    async def enqueue(self, kind: Kind) -> str:
        assert self._pool is not None
        job = await self._pool.enqueue_job(kind, **ARGS[kind])
        assert job is not None
        return job.job_id

    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        # ARQ removes a job from its queue in the transaction that writes its result
        return await redis.number("ZCARD", QUEUE)

    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        assert self._pool is not None
        found: dict[str, float] = {}
        for job_id in ids:
            info = await Job(job_id, self._pool).result_info()
            if info is not None and info.success:
                found[job_id] = float(info.result)
        return found


class ArqTuned(ArqDefault):
    name = "arq-tuned"
    describe = "ARQ 0.28 tuned: max_jobs 200, poll_delay 0.01 s"
    concurrency = 200
    poll_delay_s = 0.01

    def api_args(self, port: int, processes: int = 1) -> list[str | Path] | None:
        return None  # the API is arq-default's: worker settings do not change it
