"""Retry policies: which failures retry, with what backoff, and what a job shows while it waits."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from pydantic import BaseModel

from jobs import registry
from jobs.context import Ctx
from jobs.definition import RetryPolicy, job_type
from jobs.engine import keys
from jobs.engine.attempts import read_attempts
from jobs.engine.runner import arq_function
from jobs.errors import PermanentJobError
from tests.helpers import read_job, submit

FAST = RetryPolicy(base_s=0.01, cap_s=0.02)


class Nothing(BaseModel):
    pass


@job_type("test.slow_once", timeout_s=0.2, max_attempts=2, retry=FAST)
async def slow_once(ctx: Ctx, params: Nothing) -> Nothing:
    if ctx["job_try"] == 1:
        await asyncio.sleep(5)
    return Nothing()


@job_type("test.permanent", max_attempts=5, retry=FAST)
async def permanent(ctx: Ctx, params: Nothing) -> Nothing:
    raise PermanentJobError("the address does not exist")


@job_type("test.value_error", max_attempts=5, retry=FAST)
async def value_error(ctx: Ctx, params: Nothing) -> Nothing:
    raise ValueError("a bug")


@job_type("test.flaky_lookup", max_attempts=3, retry=FAST, retry_on=(KeyError,))
async def flaky_lookup(ctx: Ctx, params: Nothing) -> Nothing:
    if ctx["job_try"] < 3:
        raise KeyError("not replicated yet")
    return Nothing()


TEST_TYPES = {jt.name: jt for jt in (slow_once, permanent, value_error, flaky_lookup)}


@pytest.fixture
async def app(app: Any) -> Any:
    services = app.state.services
    app.state.services = dataclasses.replace(services, job_types={**services.job_types, **TEST_TYPES})
    return app


@pytest.fixture
def run_all(run_jobs: Any, settings: Any) -> Any:
    """A burst worker that also knows this module's job types; runs until nothing is due."""
    functions = [arq_function(jt) for jt in {**registry.job_types(diagnostics=True), **TEST_TYPES}.values()]

    async def run() -> None:
        await run_jobs(functions=functions)

    return run


async def history(redis: ArqRedis, job_id: str) -> list[tuple[int, str]]:
    return [(a["attempt"], a["error"]["type"]) for a in await read_attempts(redis, job_id)]


async def test_a_timeout_is_a_failed_attempt_and_is_retried(
    http: httpx.AsyncClient, run_all: Any, redis: ArqRedis
) -> None:
    job = await submit(http, "test.slow_once", {})
    await run_all()
    done = await read_job(http, job["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
    assert await history(redis, job["id"]) == [(1, "JobTimeoutError")]


async def test_a_permanent_error_fails_at_once_whatever_attempts_remain(
    http: httpx.AsyncClient, run_all: Any
) -> None:
    job = await submit(http, "test.permanent", {})
    await run_all()
    done = await read_job(http, job["id"])
    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"] == {"type": "PermanentJobError", "message": "the address does not exist"}


async def test_an_error_the_type_does_not_retry_fails_at_once(http: httpx.AsyncClient, run_all: Any) -> None:
    job = await submit(http, "test.value_error", {})
    await run_all()
    done = await read_job(http, job["id"])
    assert (done["status"], done["attempts"], done["error"]["type"]) == ("failed", 1, "ValueError")


async def test_a_type_chooses_which_errors_retry(
    http: httpx.AsyncClient, run_all: Any, redis: ArqRedis
) -> None:
    job = await submit(http, "test.flaky_lookup", {})
    await run_all()
    done = await read_job(http, job["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 3)
    assert await history(redis, job["id"]) == [(1, "KeyError"), (2, "KeyError")]


async def test_the_last_attempt_fails_the_job_for_good(
    http: httpx.AsyncClient, run_all: Any, redis: ArqRedis
) -> None:
    job = await submit(
        http, "diag.fail", {"times": 9}, max_attempts=3, backoff={"base_s": 0.01, "cap_s": 0.01}
    )
    await run_all()
    done = await read_job(http, job["id"])
    assert (done["status"], done["attempts"], done["error"]["type"]) == ("failed", 3, "RetryableJobError")
    assert [attempt for attempt, _ in await history(redis, job["id"])] == [1, 2, 3]


async def test_while_it_waits_for_a_retry_a_job_shows_its_attempts_last_error_and_when(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis, longest_backoff: None
) -> None:
    job = await submit(http, "diag.fail", {"times": 1}, backoff={"base_s": 30, "cap_s": 30})
    await run_jobs(max_burst_jobs=1)
    waiting = await read_job(http, job["id"])
    assert waiting["status"] == "deferred"
    assert waiting["attempts"] == 1
    assert waiting["error"]["type"] == "RetryableJobError"
    assert "failing attempt 1" in waiting["error"]["message"]
    assert waiting["scheduled_for"] is not None
    assert waiting["created_at"] < waiting["scheduled_for"]
    score = await redis.zscore(keys.arq_queue("default"), job["id"])
    assert score is not None


@pytest.mark.parametrize(
    "backoff",
    [{"base_s": 0, "cap_s": 1}, {"base_s": 5, "cap_s": 1}, {"base_s": 1, "cap_s": 100_000}, {"base_s": 1}],
)
async def test_a_backoff_outside_the_limits_is_refused(
    http: httpx.AsyncClient, redis: ArqRedis, backoff: dict[str, float]
) -> None:
    response = await http.post("/v1/jobs", json={"type": "diag.noop", "backoff": backoff})
    assert response.status_code == 422
    assert await redis.dbsize() == 0


async def test_an_attempt_lost_with_its_worker_is_recorded_by_the_next(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    job = await submit(http, "diag.noop", {})
    await redis.hincrby(keys.job_meta(job["id"]), "tries", 1)  # as if a worker had started it and died
    await run_jobs()
    done = await read_job(http, job["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert await history(redis, job["id"]) == [(1, "WorkerLost")]
