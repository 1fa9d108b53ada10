"""Schedules: cron jobs run exactly once per tick across workers, never overlap, and are visible."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs import registry
from jobs.catalogue import diag
from jobs.engine.cron import arq_cron
from jobs.engine.runner import arq_function
from jobs.registry import job_types
from jobs.schedules import Schedule, parse_cron
from service.config import Settings
from tests.helpers import read_job


def cron_jobs_for(*schedules: Schedule) -> list[Any]:
    catalogue = job_types(diagnostics=True)
    return [arq_cron(s, arq_function(catalogue[s.job_type]).coroutine) for s in schedules]


def with_schedules(monkeypatch: pytest.MonkeyPatch, *schedules: Schedule) -> None:
    monkeypatch.setattr(registry, "SCHEDULES", schedules)


async def listed_jobs(http: httpx.AsyncClient, job_type: str) -> list[dict[str, Any]]:
    response = await http.get("/v1/jobs", params={"type": job_type, "limit": 500})
    assert response.status_code == 200
    return response.json()["jobs"]  # type: ignore[no-any-return]


def test_cron_expressions_map_onto_arq_fields() -> None:
    assert parse_cron("*/30 * * * *") == {
        "second": {0}, "minute": {0, 30}, "hour": None, "day": None, "month": None, "weekday": None,
    }  # fmt: skip
    assert parse_cron("0 2 * * 0-4")["weekday"] == {0, 1, 2, 3, 4}
    assert parse_cron("*/20 * * * * *")["second"] == {0, 20, 40}
    for bad in ("* * * *", "61 * * * *", "0 24 * * *", "*/0 * * * *", "a * * * *"):
        with pytest.raises(ValueError):  # noqa: PT011 - each case says why in its message
            parse_cron(bad)


async def test_three_workers_enqueue_each_tick_exactly_once(
    http: httpx.AsyncClient, redis: ArqRedis, make_worker_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_second = Schedule(
        name="every-second", job_type="diag.record", cron="* * * * * *", params={"label": "tick"}
    )
    with_schedules(monkeypatch, every_second)
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(make_worker_with(cron_jobs=cron_jobs_for(every_second)))
        await asyncio.sleep(4.5)
    jobs = await listed_jobs(http, "diag.record")
    ticks = sorted(int(job["id"].rsplit(":", 1)[1]) for job in jobs)
    assert len(ticks) >= 3
    assert [b - a for a, b in itertools.pairwise(ticks)] == [1000] * (len(ticks) - 1)
    assert all(job["schedule"] == "every-second" for job in jobs)
    ran = [job for job in jobs if job["status"] == "succeeded"]
    assert len(ran) >= len(jobs) - 1  # the last tick may still be on its way
    assert await redis.lrange(diag.DIAG_LOG, 0, -1) == [b"tick"] * len(ran)  # each ran once


async def test_a_run_that_outlasts_its_interval_is_not_overlapped(
    http: httpx.AsyncClient, make_worker_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Schedule(name="slow", job_type="diag.sleep", cron="* * * * * *", params={"seconds": 2.2})
    with_schedules(monkeypatch, slow)
    async with AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(make_worker_with(cron_jobs=cron_jobs_for(slow)))
        await asyncio.sleep(6)
        runs = sorted(await listed_jobs(http, "diag.sleep"), key=lambda job: job["created_at"])
        schedules = (await http.get("/v1/schedules")).json()["schedules"]
    assert 2 <= len(runs) <= 3
    for earlier, later in itertools.pairwise(runs):
        assert earlier["finished_at"] is not None
        assert later["started_at"] >= earlier["finished_at"]
    (state,) = schedules
    assert state["name"] == "slow"
    assert state["overlap"] is False
    assert state["skipped_ticks"] >= 2


async def test_schedules_list_the_seeds_with_next_and_last_runs(
    http: httpx.AsyncClient, make_worker_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = {s["name"]: s for s in (await http.get("/v1/schedules")).json()["schedules"]}
    assert set(listed) == {"cleanup", "nightly-report"}
    cleanup, nightly = listed["cleanup"], listed["nightly-report"]
    assert (cleanup["job_type"], cleanup["schedule"]) == ("maintenance.cleanup", "*/30 * * * *")
    assert (nightly["job_type"], nightly["schedule"]) == ("report.build", "0 2 * * *")
    next_cleanup = datetime.fromisoformat(cleanup["next_run"])
    next_nightly = datetime.fromisoformat(nightly["next_run"])
    assert next_cleanup.minute in (0, 30)
    assert next_cleanup.second == 0
    assert (next_nightly.hour, next_nightly.minute) == (2, 0)
    assert next_nightly.tzinfo is not None
    now = datetime.now(UTC)
    assert 0 < (next_cleanup - now).total_seconds() <= 30 * 60
    assert 0 < (next_nightly - now).total_seconds() <= 24 * 3600
    assert cleanup["last_run"] is None
    assert cleanup["last_status"] is None

    soon = Schedule(name="cleanup", job_type="maintenance.cleanup", cron="* * * * * *")
    with_schedules(monkeypatch, soon)
    async with make_worker_with(cron_jobs=cron_jobs_for(soon)):
        async with asyncio.timeout(10):
            while True:
                (state,) = (await http.get("/v1/schedules")).json()["schedules"]
                if state["last_status"] == "succeeded":
                    break
                await asyncio.sleep(0.1)
    assert state["last_run"] is not None
    job = await read_job(http, state["last_job_id"])
    assert job["type"] == "maintenance.cleanup"
    assert job["schedule"] == "cleanup"
    assert job["result"]["indexes_scanned"] >= 1


@pytest.fixture
def make_worker_with(background_worker: Any, settings: Settings) -> Any:
    """A background worker whose cron jobs are the given ones (schedules patched into the registry)."""

    def make(**overrides: Any) -> Any:
        return background_worker(**overrides)

    return make
