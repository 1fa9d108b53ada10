"""Cancelling by filter (``POST /v1/jobs:cancel``), as Celery's purge, RQ's empty and BullMQ's drain do:
every unfinished job of the caller's tenant that matches, in bounded steps; and cancels that cost the
workers nothing: a job cancelled before it started leaves no abort request behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from service.stores.job_store import CANCEL_STEP
from tests.api.test_tenants import tenant_clients
from tests.engine.test_reliability import running_sleep
from tests.helpers import assert_problem, read_job, submit, wait_for_status


async def submit_many(http: httpx.AsyncClient, count: int, **fields: Any) -> list[str]:
    response = await http.post(
        "/v1/jobs:batch", json={"jobs": [{"type": "diag.noop", "params": {}, **fields}] * count}
    )
    assert response.status_code == 202, response.text
    return [job["id"] for job in response.json()["jobs"]]


async def cancel_matching(http: httpx.AsyncClient, **filters: Any) -> dict[str, int]:
    response = await http.post("/v1/jobs:cancel", json=filters)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def statuses(http: httpx.AsyncClient, job_ids: list[str]) -> set[str]:
    return {(await read_job(http, job_id))["status"] for job_id in job_ids}


async def test_every_waiting_job_that_matches_is_cancelled_in_steps_and_the_rest_untouched(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    deferred = [
        job_id for _ in range(2) for job_id in await submit_many(http, CANCEL_STEP, delay_seconds=3600)
    ]
    deferred += await submit_many(http, 7, delay_seconds=3600)  # more than two steps' worth
    queued = await submit_many(http, 5)
    other_type = await submit(http, "diag.sleep", {"seconds": 0}, delay_seconds=3600)

    assert await cancel_matching(http, type="diag.noop", status="deferred") == {
        "cancelled": 1007,
        "aborting": 0,
    }

    assert await statuses(http, deferred[:: CANCEL_STEP // 5]) == {"cancelled"}
    assert await statuses(http, queued) == {"queued"}
    assert (await read_job(http, other_type["id"]))["status"] == "deferred"
    assert await redis.zcard(keys.arq_queue("default")) == 6
    assert await redis.zcard(keys.ABORT_SET) == 0  # nothing for the workers to read
    assert await cancel_matching(http, type="diag.noop", status="deferred") == {"cancelled": 0, "aborting": 0}


async def test_created_before_and_queue_narrow_what_is_cancelled(http: httpx.AsyncClient) -> None:
    older = await submit_many(http, 3, queue="bulk")
    await asyncio.sleep(0.01)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    newer = await submit_many(http, 3, queue="bulk")
    elsewhere = await submit_many(http, 3)

    assert await cancel_matching(http, queue="bulk", created_before=cutoff.isoformat()) == {
        "cancelled": 3,
        "aborting": 0,
    }
    assert await statuses(http, older) == {"cancelled"}
    assert await statuses(http, newer) == {"queued"}
    assert await statuses(http, elsewhere) == {"queued"}


async def test_running_jobs_that_match_are_asked_to_stop_and_end_cancelled(
    http: httpx.AsyncClient, background_worker: Any
) -> None:
    async with background_worker():
        running = await running_sleep(http, 30)
        assert await cancel_matching(http, type="diag.sleep") == {"cancelled": 0, "aborting": 1}
        await wait_for_status(http, running["id"], "cancelled", timeout_s=10)


async def test_another_tenants_jobs_are_never_cancelled(app: Any, http: httpx.AsyncClient) -> None:
    async with tenant_clients(app, http, "acme", "globex") as (acme, globex):
        theirs = await submit_many(globex, 3)
        assert await cancel_matching(acme) == {"cancelled": 0, "aborting": 0}
        assert await statuses(globex, theirs) == {"queued"}


@pytest.mark.parametrize(
    "body",
    [
        {"status": "succeeded"},
        {"type": "Not A Type"},
        {"queue": "UPPER"},
        {"created_before": "2026-01-01T00:00:00"},  # no UTC offset: which instant is meant?
        {"everything": True},
    ],
)
async def test_a_filter_that_makes_no_sense_is_a_422_that_cancels_nothing(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    waiting = await submit_many(http, 2)
    assert_problem(await http.post("/v1/jobs:cancel", json=body), 422)
    assert await statuses(http, waiting) == {"queued"}
