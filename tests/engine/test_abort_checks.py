"""A busy worker looks for abort requests of the jobs it runs, and only those: however many other
requests wait in ARQ's abort set, a check costs Redis the same."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from tests.engine.test_reliability import running_sleep
from tests.helpers import wait_for_status


async def commands_seen(redis: ArqRedis, seconds: float) -> list[str]:
    """Every command the server ran during ``seconds`` (Redis MONITOR), as text."""
    seen: list[str] = []

    async def listen() -> None:
        async with redis.monitor() as monitor:
            async for command in monitor.listen():
                seen.append(str(command["command"]))

    task = asyncio.create_task(listen())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return seen


async def test_a_busy_worker_asks_only_about_its_own_jobs_however_many_aborts_wait(
    http: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    others = {f"somebody-elses-{n}": 1 for n in range(10_000)}
    await redis.zadd(keys.ABORT_SET, others)
    async with background_worker():
        job = await running_sleep(http, 30)
        seen = await commands_seen(redis, 0.5)
        assert (await http.delete(f"/v1/jobs/{job['id']}")).status_code == 202
        await wait_for_status(http, job["id"], "cancelled", timeout_s=10)

    on_the_abort_set = [command for command in seen if keys.ABORT_SET in command]
    assert any(command.startswith("ZMSCORE") for command in on_the_abort_set)  # it did check, ~10 times
    assert not [command for command in on_the_abort_set if command.startswith(("ZRANGE", "ZSCAN"))]
    assert await redis.zcard(keys.ABORT_SET) == len(others)  # the others' requests are not its business
