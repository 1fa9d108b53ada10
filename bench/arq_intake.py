"""What taking in ARQ's own producers' jobs costs Redis: an idle worker's commands a second, and at depth
the commands and time to take in a job that the window finds and one that only a full pass finds.

    .venv/bin/python -m bench.arq_intake [--redis-url URL] [--depth 100000] [--idle-s 10]

Counts are the server's (``INFO commandstats``, calls inside scripts included), less this harness's own.
Without ``--redis-url`` it runs against an embedded Valkey in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import typing
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import msgpack
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, create_worker

import worker_settings
from bench.measure import HARNESS_COMMANDS, run_against_server
from jobs import registry
from jobs.catalogue import diag
from jobs.engine import arq_intake, keys
from jobs.engine.connection import open_pool, redis_settings_from_url
from jobs.engine.queue_ops import JobQueues, enqueue_call, new_job
from jobs.engine.runner import arq_function
from service.config import Settings


async def command_calls(redis: ArqRedis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name.removeprefix("cmdstat_") not in HARNESS_COMMANDS
    }


def spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name] > before.get(name, 0)}


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """A worker as ``arq worker_settings.WorkerSettings`` starts it, with production's waits."""
    job_types = registry.job_types(diagnostics=True)
    worker = create_worker(
        typing.cast(Any, worker_settings.WorkerSettings),  # a settings class, as ARQ's CLI takes it
        functions=[arq_function(jt) for jt in job_types.values()],
        redis_settings=redis_settings_from_url(settings.effective_redis_url),
        ctx={"settings": settings},
        poll_delay=settings.worker_poll_delay_s,
        handle_signals=False,
    )
    task = asyncio.create_task(worker.main())
    await asyncio.sleep(1.0)  # started, first claim made, idle
    try:
        yield worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


async def idle_cost(redis: ArqRedis, settings: Settings, seconds: float) -> dict[str, float]:
    async with running_worker(settings):
        before = await command_calls(redis)
        await asyncio.sleep(seconds)
        used = spent(before, await command_calls(redis))
    return {name: round(calls / seconds, 2) for name, calls in sorted(used.items())}


async def fill(redis: ArqRedis, depth: int) -> None:
    """``depth`` of jobsvc's own jobs, due in an hour, in the default queue."""
    queues = JobQueues(redis)
    job = new_job(
        diag.noop,
        diag.NoParams(),
        default_timeout_s=30,
        default_retention_s=3600,
        run_at_ms=int((time.time() + 3600) * 1000),
    )
    for start in range(0, depth, 5000):
        calls = [
            enqueue_call(job, f"deep-{n}", queued_expiry_ms=86_400_000) for n in range(start, start + 5000)
        ]
        await queues.submit_many(calls[: depth - start])


async def take_in_cost(redis: ArqRedis, producer: ArqRedis, **enqueue: Any) -> tuple[float, dict[str, int]]:
    """Seconds until a job from ARQ's client is jobsvc's, and the commands spent meanwhile."""
    before = await command_calls(redis)
    started = time.perf_counter()
    job = await producer.enqueue_job("diag.noop", **enqueue)
    assert job is not None
    while True:  # until the job is counted as jobsvc's own
        counted = redis.hexists(keys.job_meta(job.job_id), keys.ARQ_ENTRY_FIELD)
        if await typing.cast(Awaitable[bool], counted):
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    return round(elapsed, 3), spent(before, await command_calls(redis))


async def measure(url: str, depth: int, idle_s: float) -> None:
    settings = Settings(
        redis_url=url, diagnostics=True, tenant_submits_per_s=10**9, tenant_max_open_jobs=10**9
    )
    redis = await open_pool(url)
    producer = await create_pool(
        RedisSettings.from_dsn(url), job_serializer=msgpack.packb, job_deserializer=msgpack.unpackb
    )
    try:
        await redis.flushdb()
        print(
            f"idle, looking every {arq_intake.LOOK_EVERY_S} s (calls/s):",
            await idle_cost(redis, settings, idle_s),
        )
        look_every_s = arq_intake.LOOK_EVERY_S
        arq_intake.LOOK_EVERY_S = 3600.0  # as before the intake: blocking waits of 3 s
        try:
            print("idle, not looking (calls/s):", await idle_cost(redis, settings, idle_s))
        finally:
            arq_intake.LOOK_EVERY_S = look_every_s

        await redis.flushdb()
        await fill(redis, depth)
        print(f"depth: {await redis.zcard(keys.arq_queue('default'))} of jobsvc's jobs in arq:queue")
        async with running_worker(settings):
            print("a job due now (found by the window):", await take_in_cost(redis, producer))
            print(
                "a job due in two hours (found by a full pass):",
                await take_in_cost(redis, producer, _defer_by=7200),
            )
    finally:
        await producer.aclose(close_connection_pool=True)
        await redis.aclose(close_connection_pool=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url")
    parser.add_argument("--depth", type=int, default=100_000)
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    run_against_server(args.redis_url, lambda url: measure(url, args.depth, args.idle_s))


if __name__ == "__main__":
    main()
