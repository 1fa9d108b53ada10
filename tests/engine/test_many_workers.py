"""Forty worker processes on one Redis: the claims share the work out, and what each idle worker costs
Redis stays what it was with ten, so adding workers adds load in proportion and no more."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from tests.engine.test_flow_control import jobs_done_by_worker, worker_processes

pytestmark = pytest.mark.slow


async def commands_per_worker_s(redis: ArqRedis, workers: int, seconds: float = 3.0) -> float:
    """Commands the server ran per second per worker, over ``seconds`` of the workers idling."""

    async def calls() -> int:
        stats = await redis.info("commandstats")
        return sum(int(stat["calls"]) for stat in stats.values())

    before = await calls()
    await asyncio.sleep(seconds)
    return (await calls() - before) / seconds / workers


async def test_forty_workers_share_the_work_and_each_costs_redis_what_one_of_ten_does(
    http: httpx.AsyncClient, redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    for phase in ("ten", "forty"):
        (tmp_path / phase).mkdir()
    async with worker_processes(redis, redis_url, tmp_path / "ten", 10, worker_max_jobs="2"):
        await asyncio.sleep(1.0)  # past the start-up work
        with_ten = await commands_per_worker_s(redis, 10)
    await redis.delete(keys.WORKERS)

    async with worker_processes(
        redis, redis_url, tmp_path / "forty", 40, start_timeout_s=120, worker_max_jobs="2"
    ):
        await asyncio.sleep(1.0)
        with_forty = await commands_per_worker_s(redis, 40)
        response = await http.post(
            "/v1/jobs:batch", json={"jobs": [{"type": "diag.sleep", "params": {"seconds": 0.05}}] * 800}
        )
        assert response.status_code == 202, response.text
        done = await jobs_done_by_worker(http, total=800, timeout_s=120)

    assert len(done) == 40
    assert min(done) >= 1, done  # every worker got work
    assert max(done) <= 4 * statistics.mean(done), done  # and none took a lion's share
    assert with_forty <= 1.5 * with_ten, (with_ten, with_forty)
