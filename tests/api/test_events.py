"""GET /v1/jobs/{id}/events: a job's status changes and progress as Server-Sent Events, for its tenant."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import auth
from tests.helpers import read_sse, submit


def parse_events(text: str) -> list[tuple[str, Any]]:
    """``[(event, data), …]`` from a text/event-stream body (comments and keep-alives left out)."""
    events: list[tuple[str, Any]] = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_the_stream_shows_each_status_and_the_progress_then_ends(
    client: httpx.AsyncClient, background_worker: Any
) -> None:
    job = await submit(client, "diag.sleep", {"seconds": 2.2})
    async with asyncio.timeout(30), client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = read_sse(response)
        events = [await anext(stream)]  # the job as the stream opens it, before any worker runs
        async with background_worker():
            events += [event async for event in stream]  # until the server ends it
    statuses = [event.data["status"] for event in events if event.event == "status"]
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    assert "in_progress" in statuses
    progress = [event.data for event in events if event.event == "progress"]
    assert {"id": job["id"], "current": 1, "total": 2, "message": None} in progress
    assert events[-1].data["result"] in ({"slept_s": 2.2, "tag": None}, {"slept_s": 2.2})


async def test_a_finished_job_streams_its_end_at_once(http: httpx.AsyncClient, run_jobs: Any) -> None:
    job = await submit(http, "diag.noop", {})
    await run_jobs()
    events = parse_events((await http.get(f"/v1/jobs/{job['id']}/events")).text)
    assert [(event, data["status"]) for event, data in events] == [("status", "succeeded")]


async def test_an_unknown_or_another_tenants_job_is_a_plain_404_not_a_stream(http: httpx.AsyncClient) -> None:
    job = await submit(http, "diag.noop", {})
    created = await http.post("/v1/admin/keys", json={"tenant": "globex", "scopes": ["read"]})
    other = auth(created.json()["key"])
    foreign = await http.get(f"/v1/jobs/{job['id']}/events", headers=other)
    unknown = await http.get("/v1/jobs/0123456789abcdef0123456789abcdef/events", headers=other)
    for response in (foreign, unknown):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert foreign.json() | {"detail": ""} == unknown.json() | {"detail": ""}
    no_key = await http.get(f"/v1/jobs/{job['id']}/events", headers={"Authorization": ""})
    assert no_key.status_code == 401
