"""The event hub: one blocking reader per API process fans a tenant's stream out to every listener, in
order, exactly once across reconnects, and says so when a reconnect asks for events already trimmed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import ArqRedis

from jobs.engine import keys
from service.stores.event_hub import EventHub, JobEvent


@pytest.fixture
async def hub(redis: ArqRedis) -> AsyncIterator[EventHub]:
    events = EventHub(redis, redis.client())
    await events.start()
    try:
        yield events
    finally:
        await events.stop()


async def emit(redis: ArqRedis, tenant: str, job_id: str, status: str, **extra: Any) -> str:
    """An event as the scripts write it."""
    data = {
        "id": job_id,
        "event": "status",
        "status": status,
        "type": "diag.noop",
        "queue": "default",
        **extra,
    }
    entry_id = await redis.xadd(keys.events(tenant), {"d": json.dumps(data)})
    return entry_id.decode()


async def take(listener: Any, count: int, timeout_s: float = 5) -> list[JobEvent]:
    got: list[JobEvent] = []
    async with asyncio.timeout(timeout_s):
        async for event in listener:
            got.append(event)
            if len(got) == count:
                return got
    return got


async def test_a_listener_gets_its_tenants_events_in_order_and_no_other_tenants(
    hub: EventHub, redis: ArqRedis
) -> None:
    async with hub.subscribe("acme") as listener:
        await emit(redis, "globex", "g1", "queued")
        ids = [await emit(redis, "acme", f"a{n}", "queued") for n in range(3)]
        got = await take(listener, 3)
    assert [event.id for event in got] == ids
    assert [event.job_id for event in got] == ["a0", "a1", "a2"]


async def test_a_reconnect_after_an_id_gets_every_later_event_exactly_once(
    hub: EventHub, redis: ArqRedis
) -> None:
    ids = [await emit(redis, "acme", f"j{n}", "queued") for n in range(5)]
    async with hub.subscribe("acme", after=ids[1]) as listener:
        later = await emit(redis, "acme", "j5", "queued")
        got = await take(listener, 4)
        await emit(redis, "acme", "j6", "queued")
        got += await take(listener, 1)
    assert [event.id for event in got] == [*ids[2:], later, got[-1].id]
    assert len({event.id for event in got}) == len(got)


async def test_a_reconnect_past_what_was_trimmed_is_told_so_first(hub: EventHub, redis: ArqRedis) -> None:
    first = await emit(redis, "acme", "old", "queued")
    for n in range(20):
        await redis.xadd(keys.events("acme"), {"d": json.dumps({"id": f"n{n}"})}, maxlen=5, approximate=False)
    async with hub.subscribe("acme", after=first) as listener:
        got = await take(listener, 6)
    assert got[0].data == {"event": "trimmed", "after": first}
    assert [event.job_id for event in got[1:]] == [f"n{n}" for n in range(15, 20)]


async def test_a_reconnect_to_an_untrimmed_stream_is_not_told_of_a_trim(
    hub: EventHub, redis: ArqRedis
) -> None:
    first = await emit(redis, "acme", "a", "queued")
    await emit(redis, "acme", "b", "queued")
    async with hub.subscribe("acme", after=first) as listener:
        got = await take(listener, 1)
    assert [event.job_id for event in got] == ["b"]


async def test_one_jobs_listener_sees_only_that_jobs_events(hub: EventHub, redis: ArqRedis) -> None:
    async with hub.subscribe("acme", job_id="mine") as listener:
        await emit(redis, "acme", "other", "queued")
        await emit(redis, "acme", "mine", "in_progress")
        await emit(redis, "acme", "other", "succeeded")
        await emit(redis, "acme", "mine", "succeeded")
        got = await take(listener, 2)
    assert [(event.job_id, event.data["status"]) for event in got] == [
        ("mine", "in_progress"),
        ("mine", "succeeded"),
    ]


async def test_a_thousand_listeners_cost_redis_what_one_costs(hub: EventHub, redis: ArqRedis) -> None:
    """Reads of the streams do not grow with the listeners: one XREAD serves them all."""

    async def xreads() -> int:
        stats = await redis.info("commandstats")
        return int(stats.get("cmdstat_xread", {}).get("calls", 0))

    async def listen(tenant: str, ready: asyncio.Event, received: list[int]) -> None:
        async with hub.subscribe(tenant) as listener:
            ready.set()
            async for _ in listener:
                received.append(1)
                return

    async def run(listeners: int) -> tuple[int, int]:
        received: list[int] = []
        readies = [asyncio.Event() for _ in range(listeners)]
        tasks = [asyncio.create_task(listen("acme", readies[n], received)) for n in range(listeners)]
        await asyncio.gather(*(ready.wait() for ready in readies))
        before = await xreads()
        for n in range(20):
            await emit(redis, "acme", f"j{n}", "queued")
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        return await xreads() - before, len(received)

    one_reads, one_received = await run(1)
    many_reads, many_received = await run(1000)
    assert (one_received, many_received) == (1, 1000)
    assert many_reads <= one_reads + 2
