"""Small steps tests share: submitting and reading jobs over the API, and moving time forward."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from arq import ArqRedis
from arq.worker import Worker
from asgi_lifespan import LifespanManager

from jobs.engine import keys
from jobs.engine.housekeeping import CleanupParams, cleanup
from jobs.engine.queue_ops import JobQueues, enqueue_call, new_job
from jobs.engine.worker import JobsvcWorker


async def submit(
    http: httpx.AsyncClient, job_type: str, params: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """POST a job; assert it was accepted with its Location; return the job."""
    response = await http.post("/v1/jobs", json={"type": job_type, "params": params, **extra})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


async def read_job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_for_status(
    http: httpx.AsyncClient, job_id: str, status: str, timeout_s: float = 10
) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            job = await read_job(http, job_id)
            if job["status"] == status:
                return job
            await asyncio.sleep(0.02)


async def make_due(redis: ArqRedis, job_id: str, queue: str = "default") -> None:
    """Pull a deferred retry forward, so the test need not sleep through the backoff."""
    now_ms = int(time.time() * 1000)
    assert await redis.zscore(keys.arq_queue(queue), job_id) is not None, "the job is not in its queue"
    await redis.zadd(keys.arq_queue(queue), {job_id: now_ms}, xx=True)
    deferred_score = await redis.zscore(keys.deferred(queue), job_id)
    assert deferred_score is not None, "the job is not deferred"
    await redis.zadd(keys.deferred(queue), {job_id: now_ms * 10 + int(deferred_score) % 10})
    await redis.zadd(keys.TIMERS, {queue: now_ms}, lt=True)  # as the scripts do when a due time moves
    await redis.rpush(keys.wake(queue), "1")


async def lapse_lease(redis: ArqRedis, job_id: str, queue: str = "default") -> None:
    """Let a running job's lease end now, as the time passing would (its lock stays as it is)."""
    now_ms = int(time.time() * 1000)
    await redis.zadd(keys.running(queue), {job_id: now_ms - 1}, xx=True)
    await redis.zadd(keys.TIMERS, {queue: now_ms - 1}, lt=True)  # as the scripts keep it: never later


def assert_problem(response: httpx.Response, status: int, where: str = "") -> dict[str, Any]:
    """The response is a problem+json with ``status``, a title and a detail, and no stack trace."""
    assert response.status_code == status, f"{where} {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/problem+json", where
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status, where
    assert problem["title"], where
    assert isinstance(problem["detail"], str), where
    assert "Traceback" not in response.text, where
    return problem


async def dead_letter_ids(http: httpx.AsyncClient, **filters: Any) -> list[str]:
    response = await http.get("/v1/dead-letters", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    return [letter["id"] for letter in response.json()["dead_letters"]]


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client to ``app`` running through its real lifespan (the pool opened and closed)."""
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        settings = app.state.settings
        headers = {}
        if settings.admin_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.admin_api_key.get_secret_value()}"
        async with httpx.AsyncClient(
            transport=transport, base_url="http://jobsvc.test", headers=headers
        ) as http:
            yield http


async def until_registered(redis: ArqRedis, worker: Worker, timeout_s: float = 10) -> JobsvcWorker:
    """Until a started worker has become jobsvc's engine and recorded itself in the worker registry."""
    async with asyncio.timeout(timeout_s):
        while (
            not isinstance(worker, JobsvcWorker) or await redis.zscore(keys.WORKERS, worker.worker_id) is None
        ):
            await asyncio.sleep(0.005)
    return worker


async def enqueue_cleanup(redis: ArqRedis) -> str:
    """``maintenance.cleanup``, enqueued as its schedule does it (the API refuses internal types); its id."""
    job_id = uuid.uuid4().hex
    job = new_job(cleanup, CleanupParams(), default_timeout_s=300, default_retention_s=3600)
    reply = await JobQueues(redis).submit(enqueue_call(job, job_id, queued_expiry_ms=3_600_000))
    assert reply.outcome == "created", reply
    return job_id


async def key_for(admin: httpx.AsyncClient, tenant: str, scopes: list[str]) -> dict[str, Any]:
    """A new key of ``tenant`` with ``scopes``, minted by ``admin``: the answer (``key``,
    ``webhook_secret``…)."""
    created = await admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": scopes})
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


def client_with_key(app: Any, key: str) -> httpx.AsyncClient:
    """A client of ``app`` (in process) that sends ``key``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://jobsvc.test",
        headers={"Authorization": f"Bearer {key}"},
    )


@dataclass(frozen=True)
class Sse:
    id: str | None
    event: str
    data: dict[str, Any]


async def read_sse(response: httpx.Response) -> AsyncIterator[Sse]:
    """The events of a text/event-stream as they arrive (comments and keep-alives left out)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Sse(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
