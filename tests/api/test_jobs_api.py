"""Submitting, reading, waiting for and cancelling jobs through the API, run by a real ARQ worker."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from tests.helpers import submit, wait_for_status


async def test_submitted_job_runs_to_succeeded_with_its_result(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    job = await submit(http, "diag.sleep", {"seconds": 0})
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["links"] == {"self": f"/v1/jobs/{job['id']}"}

    await run_jobs()

    done = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded"
    assert done["result"] == {"slept_s": 0.0}
    assert done["params"] == {"seconds": 0.0, "tag": None}  # validated, defaults filled in
    assert done["attempts"] == 1
    assert done["error"] is None
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    assert done["created_at"].endswith("Z")


async def test_failing_job_reports_failed_with_the_error_as_data(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    job = await submit(http, "diag.fail", {"times": 5}, max_attempts=2)

    await run_jobs()

    done = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "failed"
    assert done["attempts"] == 2
    assert done["error"]["type"] == "RetryableJobError"
    assert "failing attempt 2" in done["error"]["message"]


async def test_job_retried_after_a_retryable_error_succeeds(http: httpx.AsyncClient, run_jobs: Any) -> None:
    job = await submit(http, "diag.fail", {"times": 2})

    for _ in range(3):
        await run_jobs()
        await asyncio.sleep(0.2)  # the backoff before each retry

    done = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded"
    assert done["result"] == {"attempts": 3}


async def test_wait_holds_until_the_job_finishes(http: httpx.AsyncClient, background_worker: Any) -> None:
    job = await submit(http, "diag.sleep", {"seconds": 0.3})
    async with background_worker():
        response = await http.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
    assert response.json()["status"] == "succeeded"


async def test_wait_returns_the_current_state_when_time_runs_out(http: httpx.AsyncClient) -> None:
    job = await submit(http, "diag.sleep", {"seconds": 1})
    response = await http.get(f"/v1/jobs/{job['id']}", params={"wait": 0.2})
    assert response.status_code == 200
    assert response.json()["status"] == "queued"


async def test_cancel_running_job_never_succeeds(http: httpx.AsyncClient, background_worker: Any) -> None:
    job = await submit(http, "diag.sleep", {"seconds": 30})
    async with background_worker():
        await wait_for_status(http, job["id"], "in_progress")
        response = await http.delete(f"/v1/jobs/{job['id']}")
        assert response.status_code == 202
        assert response.json()["status"] == "cancelled"
        await asyncio.sleep(0.3)
    final = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled"
    assert final["error"] == {"type": "CancelledError", "message": "cancelled while running"}
    assert final["result"] is None


async def test_cancel_deferred_job_never_starts(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    job = await submit(http, "diag.sleep", {"seconds": 0}, delay_seconds=0.3)
    assert job["status"] == "deferred"
    assert job["scheduled_for"] is not None

    response = await http.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"

    await asyncio.sleep(0.4)
    worker = await run_jobs()
    assert worker.jobs_complete == 0
    final = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled"
    assert final["started_at"] is None
    assert await redis.zcard(keys.arq_queue("default")) == 0


async def test_cancel_queued_job_never_starts(http: httpx.AsyncClient, run_jobs: Any) -> None:
    job = await submit(http, "diag.noop", {})
    assert (await http.delete(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
    worker = await run_jobs()
    assert worker.jobs_complete == 0
    assert (await http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"


async def test_cancelling_a_finished_job_is_a_conflict(http: httpx.AsyncClient, run_jobs: Any) -> None:
    job = await submit(http, "diag.noop", {})
    await run_jobs()
    response = await http.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert (await http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "succeeded"


async def test_same_idempotency_key_and_body_returns_the_first_job(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    body = {"type": "diag.noop", "params": {}}
    first = await http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    again = await http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert await redis.zcard(keys.arq_queue("default")) == 1


async def test_same_idempotency_key_with_another_body_is_a_conflict(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    headers = {"Idempotency-Key": "order-43"}
    await http.post("/v1/jobs", json={"type": "diag.sleep", "params": {"seconds": 1}}, headers=headers)
    response = await http.post(
        "/v1/jobs", json={"type": "diag.sleep", "params": {"seconds": 2}}, headers=headers
    )
    assert response.status_code == 409
    assert response.json()["title"].startswith("Idempotency-Key")
    assert await redis.zcard(keys.arq_queue("default")) == 1
