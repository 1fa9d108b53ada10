"""``/dashboard/events`` over a real connection: the session's tenant's events only, the fields a page
needs only, with their stream ids, resuming after a ``Last-Event-ID``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from tests.conftest import ADMIN_KEY
from tests.dashboard.test_dashboard_http import sign_in

pytestmark = pytest.mark.slow


async def add_event(redis: ArqRedis, tenant: str, **data: Any) -> str:
    entry_id = await redis.xadd(keys.events(tenant), {"d": json.dumps(data)})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def read_events(response: httpx.Response, count: int) -> AsyncIterator[dict[str, Any]]:
    """The first ``count`` events of a stream, each as ``{"id", "event", "data"}``."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            event[name] = json.loads(value.strip()) if name == "data" else value.strip()
        elif line == "" and "data" in event:
            yield event
            event = {}
            count -= 1
            if count == 0:
                return


@pytest.fixture
async def signed_in(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=5) as client:
        assert (await sign_in(client, ADMIN_KEY)).status_code == 303
        yield client


async def test_the_stream_relays_its_tenants_events_with_their_ids_and_nothing_more(
    signed_in: httpx.AsyncClient, redis: ArqRedis
) -> None:
    await add_event(redis, "acme", id="theirs", event="status", status="queued")
    first = await add_event(
        redis,
        "default",
        id="mine",
        type="diag.noop",
        queue="default",
        status="queued",
        event="status",
        at=1,
        internal="not for pages",
    )
    second = await add_event(
        redis, "default", id="mine", event="progress", progress={"current": 1, "total": 2}
    )

    async with signed_in.stream("GET", "/dashboard/events", params={"after": "0-0"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in read_events(response, 2)]

    assert events == [
        {
            "id": first,
            "event": "status",
            "data": {
                "id": "mine",
                "type": "diag.noop",
                "queue": "default",
                "status": "queued",
                "event": "status",
                "at": 1,
            },
        },
        {
            "id": second,
            "event": "progress",
            "data": {
                "id": "mine",
                "event": "progress",
                "progress": {"current": 1, "total": 2},
                "at": int(second.split("-")[0]),  # when the event carries none: its entry's time
            },
        },
    ]


async def test_a_reconnect_resumes_after_its_last_event_id(
    signed_in: httpx.AsyncClient, redis: ArqRedis
) -> None:
    seen = await add_event(redis, "default", id="a", event="status", status="queued")
    later = await add_event(redis, "default", id="a", event="status", status="succeeded")

    async with signed_in.stream(
        "GET", "/dashboard/events", params={"after": "0-0"}, headers={"Last-Event-ID": seen}
    ) as response:
        (event,) = [event async for event in read_events(response, 1)]

    assert event["id"] == later
    assert event["data"]["status"] == "succeeded"
