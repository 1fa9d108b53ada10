"""GET /v1/events and GET /v1/jobs/{id}/events against a real server: pushed events, each with an id
and naming its job; a reconnect with Last-Event-ID sees every event exactly once; ?wait= wakes on the
job's end event."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from tests.conftest import auth
from tests.helpers import Sse, read_sse, submit


async def collect(
    client: httpx.AsyncClient,
    path: str,
    *,
    until: Any,
    headers: dict[str, str] | None = None,
    limit: int = 100,
) -> list[Sse]:
    """Events of ``path`` until ``until(event)`` holds for one (included) or ``limit`` arrived."""
    got: list[Sse] = []
    async with asyncio.timeout(20), client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in read_sse(response):
            got.append(event)
            if until(event) or len(got) >= limit:
                break
    return got


def ended(job_id: str) -> Any:
    return lambda event: event.data.get("id") == job_id and event.data.get("status") == "succeeded"


async def test_the_tenant_stream_pushes_each_status_and_progress_with_an_id_naming_the_job(
    client: httpx.AsyncClient, background_worker: Any
) -> None:
    async with background_worker():
        listening = asyncio.create_task(
            collect(client, "/v1/events", until=lambda e: e.data.get("status") == "succeeded")
        )
        await asyncio.sleep(0.3)
        job = await submit(client, "diag.sleep", {"seconds": 1.2})
        events = await listening
    mine = [event for event in events if event.data.get("id") == job["id"]]
    assert [e.data["status"] for e in mine if e.event == "status"] == ["queued", "in_progress", "succeeded"]
    progress = [e.data for e in mine if e.event == "progress"]
    assert progress
    assert all(p["id"] == job["id"] for p in progress)
    assert all(e.id for e in events)
    assert all(e.data["type"] == "diag.sleep" and e.data["queue"] == "default" for e in mine)


async def test_a_reconnect_with_last_event_id_sees_every_event_exactly_once(
    client: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    start = (await redis.xadd(keys.events("default"), {"d": json.dumps({"event": "marker"})})).decode()
    jobs = [await submit(client, "diag.noop", {}) for _ in range(5)]
    first = await collect(
        client, "/v1/events", headers={"Last-Event-ID": start}, until=lambda e: False, limit=3
    )
    async with background_worker():
        rest = await collect(
            client, "/v1/events", headers={"Last-Event-ID": str(first[-1].id)}, until=ended(jobs[-1]["id"])
        )
    seen = [event.id for event in first + rest]
    written = [
        entry_id.decode() for entry_id, _ in await redis.xrange(keys.events("default"), min=f"({start}")
    ]
    assert seen == written[: len(seen)]
    assert len(set(seen)) == len(seen)
    for job in jobs:
        statuses = [e.data["status"] for e in first + rest if e.data.get("id") == job["id"]]
        assert statuses == ["queued", "in_progress", "succeeded"]


async def test_a_reconnect_after_the_stream_was_trimmed_is_told_so(
    client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    gone = (await redis.xadd(keys.events("default"), {"d": json.dumps({"event": "marker"})})).decode()
    for n in range(10):
        await redis.xadd(
            keys.events("default"), {"d": json.dumps({"id": f"x{n}"})}, maxlen=3, approximate=False
        )
    events = await collect(
        client, "/v1/events", headers={"Last-Event-ID": gone}, until=lambda e: False, limit=4
    )
    assert events[0].event == "trimmed"
    assert [e.data["id"] for e in events[1:]] == ["x7", "x8", "x9"]


async def test_filters_keep_only_the_events_asked_for(client: httpx.AsyncClient, run_jobs: Any) -> None:
    start = "0"
    await submit(client, "diag.noop", {})
    sleeper = await submit(client, "diag.sleep", {"seconds": 0}, queue="bulk")
    await run_jobs()
    by_type = await collect(
        client, "/v1/events?type=diag.sleep", headers={"Last-Event-ID": start}, until=ended(sleeper["id"])
    )
    assert {e.data["id"] for e in by_type} == {sleeper["id"]}
    by_status = await collect(
        client,
        "/v1/events?status=succeeded&queue=bulk",
        headers={"Last-Event-ID": start},
        until=ended(sleeper["id"]),
    )
    assert [(e.data["id"], e.data["status"]) for e in by_status] == [(sleeper["id"], "succeeded")]


async def test_a_tenant_sees_only_its_own_events(client: httpx.AsyncClient, run_jobs: Any) -> None:
    created = await client.post("/v1/admin/keys", json={"tenant": "globex", "scopes": ["read", "submit"]})
    globex = auth(created.json()["key"])
    ours = await submit(client, "diag.noop", {})
    theirs = (await client.post("/v1/jobs", json={"type": "diag.noop", "params": {}}, headers=globex)).json()
    await run_jobs()
    seen = await collect(
        client, "/v1/events", headers={**globex, "Last-Event-ID": "0"}, until=ended(theirs["id"])
    )
    assert {e.data["id"] for e in seen} == {theirs["id"]}
    assert ours["id"] not in {e.data["id"] for e in seen}


async def test_a_malformed_last_event_id_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_one_jobs_stream_resumes_after_its_last_event(
    client: httpx.AsyncClient, background_worker: Any
) -> None:
    job = await submit(client, "diag.sleep", {"seconds": 1.2})
    path = f"/v1/jobs/{job['id']}/events"
    opening = await collect(client, path, until=lambda e: True)
    assert (opening[0].event, opening[0].data["status"]) == ("status", "queued")
    assert opening[0].id
    async with background_worker():
        rest = await collect(
            client, path, headers={"Last-Event-ID": str(opening[0].id)}, until=ended(job["id"])
        )
    assert [e.data["status"] for e in rest if e.event == "status"] == ["in_progress", "succeeded"]
    assert (
        rest[-1].data["result"] == {"slept_s": 1.2, "tag": None} or rest[-1].data["result"]["slept_s"] == 1.2
    )
    assert all(e.data["id"] == job["id"] for e in rest)


async def test_wait_returns_as_the_job_ends_not_at_a_poll(
    client: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    job = await submit(client, "diag.sleep", {"seconds": 0.5})
    gets_before = int((await redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0))
    async with background_worker():
        started = time.monotonic()
        answer = await client.get(f"/v1/jobs/{job['id']}?wait=30")
        took = time.monotonic() - started
    assert answer.json()["status"] == "succeeded"
    assert took < 3
    gets = int((await redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)) - gets_before
    assert gets < 20  # the waiter read the job twice, not several times a second
