"""GET /v1/queues, delays that can be cancelled until they start, and the submit's queue and time checks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from tests.helpers import read_job, submit, wait_for_status


async def queue_view(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await http.get("/v1/queues")
    assert response.status_code == 200
    return next(q for q in response.json()["queues"] if q["name"] == name)


async def test_queues_show_depth_deferred_running_recent_outcomes_and_oldest_age(
    http: httpx.AsyncClient, background_worker: Any, run_jobs: Any
) -> None:
    assert [q["name"] for q in (await http.get("/v1/queues")).json()["queues"]] == [
        "critical",
        "default",
        "bulk",
    ]
    empty = await queue_view(http, "default")
    assert (empty["queued"], empty["deferred"], empty["in_progress"], empty["oldest_waiting_s"]) == (
        0,
        0,
        0,
        None,
    )

    await submit(http, "diag.noop", {})
    await submit(http, "diag.fail", {"times": 5}, max_attempts=1)
    await run_jobs()
    for _ in range(3):
        await submit(http, "diag.noop", {})
    await submit(http, "diag.noop", {}, delay_seconds=60)
    await asyncio.sleep(0.3)
    waiting = await queue_view(http, "default")
    assert (waiting["queued"], waiting["deferred"], waiting["in_progress"]) == (3, 1, 0)
    assert (waiting["succeeded_last_hour"], waiting["failed_last_hour"]) == (1, 1)
    assert 0.3 <= waiting["oldest_waiting_s"] < 5

    sleeper = await submit(http, "diag.sleep", {"seconds": 30}, queue="bulk")
    async with background_worker():
        await wait_for_status(http, sleeper["id"], "in_progress")
        bulk = await queue_view(http, "bulk")
        assert (bulk["queued"], bulk["in_progress"]) == (0, 1)
        assert bulk["oldest_waiting_s"] is None  # the only job there is running
        assert (await http.delete(f"/v1/jobs/{sleeper['id']}")).status_code == 202
    assert (await queue_view(http, "bulk"))["cancelled_last_hour"] == 1


async def test_a_delayed_job_can_be_cancelled_until_it_starts_and_never_runs(
    http: httpx.AsyncClient, background_worker: Any, redis: ArqRedis
) -> None:
    delayed = await submit(http, "diag.record", {"label": "delayed"}, delay_seconds=1)
    assert delayed["status"] == "deferred"
    async with background_worker():
        assert (await http.delete(f"/v1/jobs/{delayed['id']}")).status_code == 202
        await asyncio.sleep(1.5)
    assert (await read_job(http, delayed["id"]))["status"] == "cancelled"
    assert await redis.lrange("jobsvc:diag:log", 0, -1) == []
    assert (await queue_view(http, "default"))["deferred"] == 0


async def test_a_delayed_job_starts_when_due_not_before(
    http: httpx.AsyncClient, background_worker: Any
) -> None:
    async with background_worker():
        delayed = await submit(http, "diag.record", {"label": "delayed"}, delay_seconds=0.8)
        done = await wait_for_status(http, delayed["id"], "succeeded")
    assert done["started_at"] >= done["scheduled_for"]
    started = datetime.fromisoformat(done["started_at"])
    assert started - datetime.fromisoformat(done["scheduled_for"]) < timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"queue": "nope"}, "/queue"),
        ({"queue": "Not-A-Queue!"}, "/queue"),
        ({"run_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}, "/run_at"),
        ({"run_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()}, "/run_at"),
        ({"delay_seconds": 400 * 86_400}, "/delay_seconds"),
        ({"priority": 10}, "/priority"),
        ({"priority": -1}, "/priority"),
    ],
)
async def test_a_bad_queue_priority_or_time_is_refused_and_nothing_is_written(
    http: httpx.AsyncClient, redis: ArqRedis, extra: dict[str, Any], pointer: str
) -> None:
    response = await http.post("/v1/jobs", json={"type": "diag.noop", **extra})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert pointer in [error["pointer"] for error in response.json()["errors"]]
    assert await redis.dbsize() == 0


async def test_a_job_can_be_sent_to_another_queue_and_is_listed_there(http: httpx.AsyncClient) -> None:
    job = await submit(http, "diag.noop", {}, queue="critical", priority=9)
    assert (job["queue"], job["priority"]) == ("critical", 9)
    listed = (await http.get("/v1/jobs", params={"queue": "critical"})).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert (await queue_view(http, "critical"))["queued"] == 1
