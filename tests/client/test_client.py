"""The Python client, sync and async, against the real app served by uvicorn, a real ARQ worker and real
Redis: each test runs once for each client."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from jobsvc_client import (
    ApiError,
    Conflict,
    Forbidden,
    JobsvcError,
    JobTimeout,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnexpectedAnswer,
    ValidationFailed,
)

from tests.client.conftest import BASE_URL, answering, open_client
from tests.conftest import ADMIN_KEY


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_submitted_job_is_read_back_succeeded_after_a_worker_ran_it(jobs: Any, run_jobs: Any) -> None:
    job = await jobs.submit("diag.sleep", {"seconds": 0})
    assert job.status == "queued"
    assert job.links.self == f"/v1/jobs/{job.id}"

    await run_jobs()

    done = await jobs.get(job.id)
    assert done.status == "succeeded"
    assert done.is_finished
    assert done.result == {"slept_s": 0.0}
    assert done.attempts == 1
    assert done.finished_at is not None


async def test_submit_sends_scheduling_options(jobs: Any) -> None:
    delayed = await jobs.submit("diag.noop", delay_seconds=30, priority=9, max_attempts=2)
    assert (delayed.status, delayed.priority, delayed.max_attempts) == ("deferred", 9, 2)

    run_at = datetime.now(UTC) + timedelta(minutes=5)
    scheduled = await jobs.submit("diag.noop", run_at=run_at)
    assert scheduled.status == "deferred"
    assert scheduled.scheduled_for is not None
    assert abs(scheduled.scheduled_for - run_at) < timedelta(seconds=1)

    with pytest.raises(ValueError, match="timezone-aware"):
        await jobs.submit("diag.noop", run_at=datetime.now())  # naive, on purpose


async def test_wait_returns_the_job_once_it_finished(jobs: Any, background_worker: Any) -> None:
    job = await jobs.submit("diag.sleep", {"seconds": 0.2})
    async with background_worker():
        done = await jobs.wait(job.id, timeout=10)
    assert done.status == "succeeded"
    assert done.result == {"slept_s": 0.2}


async def test_wait_raises_job_timeout_carrying_the_unfinished_job(jobs: Any) -> None:
    job = await jobs.submit("diag.noop")
    with pytest.raises(JobTimeout) as caught:
        await jobs.wait(job.id, timeout=0.2)
    assert caught.value.job.id == job.id
    assert caught.value.job.status == "queued"


async def test_cancel_queued_job_reports_cancelled_and_it_never_runs(jobs: Any, run_jobs: Any) -> None:
    job = await jobs.submit("diag.noop")
    assert (await jobs.cancel(job.id)).status == "cancelled"
    worker = await run_jobs()
    assert worker.jobs_complete == 0
    assert (await jobs.get(job.id)).status == "cancelled"


async def test_list_and_iter_jobs_page_newest_first_without_duplicates(jobs: Any) -> None:
    submitted = []
    for _ in range(5):
        submitted.append((await jobs.submit("diag.noop")).id)
        await asyncio.sleep(0.002)  # distinct creation milliseconds, so newest-first is submission order
    other = await jobs.submit("diag.sleep", {"seconds": 1})

    first = await jobs.list(type="diag.noop", limit=2)
    assert [j.id for j in first.jobs] == submitted[::-1][:2]
    assert first.next_cursor is not None

    seen = [job.id for job in await jobs.collect("iter_jobs", type="diag.noop", page_size=2)]
    assert seen == submitted[::-1]

    everything = [job.id for job in await jobs.collect("iter_jobs", status="queued", page_size=4)]
    assert everything == [other.id, *submitted[::-1]]


async def test_same_idempotency_key_and_body_replays_the_first_job(jobs: Any) -> None:
    first = await jobs.submit("diag.noop", idempotency_key="order-42")
    again = await jobs.submit("diag.noop", idempotency_key="order-42")
    assert again.id == first.id

    with pytest.raises(Conflict) as caught:
        await jobs.submit("diag.sleep", {"seconds": 1}, idempotency_key="order-42")
    assert caught.value.problem.title.startswith("Idempotency-Key")


async def test_job_types_lists_the_catalogue_with_schemas(jobs: Any) -> None:
    catalogue = {jt.name: jt for jt in (await jobs.job_types()).job_types}
    assert {"diag.noop", "diag.sleep"} <= catalogue.keys()
    assert "seconds" in catalogue["diag.sleep"].params_schema["properties"]


async def test_unknown_job_type_is_not_found(jobs: Any) -> None:
    with pytest.raises(NotFound) as caught:
        await jobs.submit("diag.nothing_here")
    assert caught.value.status == 404
    assert caught.value.problem.title == "Unknown job type"


async def test_params_that_fail_the_schema_point_at_the_field(jobs: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await jobs.submit("diag.sleep", {"seconds": -1})
    assert caught.value.status == 422
    assert [e.pointer for e in caught.value.errors] == ["/params/seconds"]


async def test_unknown_job_id_is_not_found(jobs: Any) -> None:
    with pytest.raises(NotFound) as caught:
        await jobs.get("no-such-job")
    assert caught.value.problem.title == "Job not found"
    with pytest.raises(NotFound):
        await jobs.cancel("no-such-job")


async def test_cancelling_a_finished_job_is_a_conflict(jobs: Any, run_jobs: Any) -> None:
    job = await jobs.submit("diag.noop")
    await run_jobs()
    with pytest.raises(Conflict) as caught:
        await jobs.cancel(job.id)
    assert caught.value.status == 409
    assert (await jobs.get(job.id)).status == "succeeded"


async def test_a_key_without_the_scope_is_forbidden_and_a_wrong_key_unauthorized(
    jobs: Any, kind: str, api_url: str
) -> None:
    reader = await jobs.create_key("default", ["read"])
    async with open_client(kind, api_url, api_key=reader.key) as read_only:
        assert (await read_only.list()).jobs == []
        with pytest.raises(Forbidden):
            await read_only.submit("diag.noop")
    async with open_client(kind, api_url, api_key="jobsvc_wrong") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.list()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ApiError),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (422, ValidationFailed),
        (429, RateLimited),
        (500, ApiError),
        (503, ServiceUnavailable),
    ],
)
async def test_each_error_status_raises_its_exception_with_the_problem(
    kind: str, status: int, error: type[ApiError]
) -> None:
    body = f'{{"type": "/problems/x", "title": "Title {status}", "status": {status}, "detail": "why"}}'
    transport = answering(status, body.encode(), "application/problem+json", {"Retry-After": "7"})
    async with open_client(kind, BASE_URL, api_key=ADMIN_KEY, transport=transport) as client:
        with pytest.raises(error) as caught:
            await client.get("any")
    assert type(caught.value) is error
    assert caught.value.status == status
    assert (caught.value.problem.title, caught.value.problem.detail) == (f"Title {status}", "why")
    assert caught.value.retry_after == 7.0


async def test_error_bodies_that_are_not_problems_still_map_by_status(kind: str) -> None:
    proxy = answering(502, b"upstream went away\n", "text/plain")
    async with open_client(kind, BASE_URL, transport=proxy) as client:
        with pytest.raises(ApiError) as caught:
            await client.job_types()
    assert caught.value.status == 502
    assert caught.value.problem.title == "Bad Gateway"
    assert caught.value.problem.detail == "upstream went away"
    assert caught.value.retry_after is None

    plain_fastapi = answering(422, b'{"detail": [{"loc": ["body"], "msg": "bad"}]}', "application/json")
    async with open_client(kind, BASE_URL, transport=plain_fastapi) as client:
        with pytest.raises(ValidationFailed) as invalid:
            await client.submit("diag.noop")
    assert invalid.value.errors == []
    assert '"msg": "bad"' in invalid.value.problem.detail


async def test_a_success_body_that_is_not_a_job_is_an_unexpected_answer(kind: str) -> None:
    html = answering(200, b"<html>a login page</html>", "text/html")
    async with open_client(kind, BASE_URL, transport=html) as client:
        with pytest.raises(UnexpectedAnswer, match="not a Job"):
            await client.get("any")


async def test_unreachable_service_is_a_transport_error(kind: str) -> None:
    async with open_client(kind, f"http://127.0.0.1:{closed_port()}", timeout=5) as client:
        with pytest.raises(TransportError) as caught:
            await client.job_types()
    assert isinstance(caught.value, JobsvcError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_api_key_is_sent_as_a_bearer_token(kind: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"job_types": []})

    async with open_client(kind, BASE_URL, api_key="k-123", transport=httpx.MockTransport(handler)) as client:
        await client.job_types()
    async with open_client(kind, BASE_URL, transport=httpx.MockTransport(handler)) as client:
        await client.job_types()
    assert seen == ["Bearer k-123", ""]


async def test_ids_are_quoted_into_one_path_segment(kind: str) -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(204)

    async with open_client(kind, BASE_URL, transport=httpx.MockTransport(handler)) as client:
        await client.delete_dead_letter("a/b?c")
    assert paths == ["/v1/dead-letters/a%2Fb%3Fc"]
