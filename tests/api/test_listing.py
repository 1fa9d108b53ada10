"""GET /v1/jobs: newest first, filtered, paged by cursor, consistent with retention."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.housekeeping import prune_index
from tests.helpers import enqueue_cleanup


async def submit_many(
    http: httpx.AsyncClient, count: int, job_type: str = "diag.noop", **params: Any
) -> list[str]:
    """Submitted a few milliseconds apart: jobs created in the same millisecond are equally new, and
    list in id order among themselves."""
    ids = []
    for _ in range(count):
        response = await http.post("/v1/jobs", json={"type": job_type, "params": params})
        ids.append(response.json()["id"])
        await asyncio.sleep(0.002)
    return ids


async def collect(http: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/v1/jobs", params=params)).json()
        jobs.extend(page["jobs"])
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


async def test_list_is_newest_first_and_pages_without_gaps_or_repeats(http: httpx.AsyncClient) -> None:
    ids = await submit_many(http, 7)
    first = (await http.get("/v1/jobs", params={"limit": 3})).json()
    assert [job["id"] for job in first["jobs"]] == ids[::-1][:3]
    assert first["next_cursor"]

    everything = await collect(http, limit=3)
    assert [job["id"] for job in everything] == ids[::-1]


async def test_list_filters_by_type_and_status(http: httpx.AsyncClient, run_jobs: Any) -> None:
    sleeps = await submit_many(http, 2, "diag.sleep", seconds=0)
    noops = await submit_many(http, 3)
    await run_jobs()
    queued = await submit_many(http, 2)

    by_type = await collect(http, type="diag.sleep")
    assert {job["id"] for job in by_type} == set(sleeps)

    succeeded_noops = await collect(http, type="diag.noop", status="succeeded")
    assert {job["id"] for job in succeeded_noops} == set(noops)

    still_queued = await collect(http, status="queued", limit=1)
    assert [job["id"] for job in still_queued] == queued[::-1]

    assert await collect(http, queue="default", status="failed") == []


async def test_listing_skips_expired_jobs_and_cleanup_prunes_their_index_entries(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    kept, expired = await submit_many(http, 2)
    await run_jobs()
    await redis.delete(keys.arq_result(expired), keys.job_meta(expired))  # what retention does

    assert [job["id"] for job in await collect(http)] == [kept]

    assert await prune_index(redis, keys.index_all(keys.DEFAULT_TENANT)) == 1
    assert await redis.zrange(keys.index_all(keys.DEFAULT_TENANT), 0, -1) == [kept.encode()]


async def test_finished_records_expire_after_the_retention_period(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis, settings: Any
) -> None:
    (job_id,) = await submit_many(http, 1)
    await run_jobs()
    retention_ms = settings.result_retention_s * 1000
    assert 0 < await redis.pttl(keys.arq_result(job_id)) <= retention_ms
    assert await redis.pttl(keys.job_meta(job_id)) > 0


async def test_the_cleanup_job_prunes_expired_jobs_from_every_index(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    kept, expired = await submit_many(http, 2)
    await run_jobs()
    await redis.delete(keys.arq_result(expired), keys.job_meta(expired))

    cleanup = await enqueue_cleanup(redis)
    await run_jobs()

    done = (await http.get(f"/v1/jobs/{cleanup}")).json()
    assert done["status"] == "succeeded"
    # the job's entry in all, by type, by queue and by its end status
    assert done["result"]["index_entries_removed"] == 4
    for index in (
        keys.index_all(keys.DEFAULT_TENANT),
        keys.index_by_type(keys.DEFAULT_TENANT, "diag.noop"),
        keys.index_by_queue(keys.DEFAULT_TENANT, "default"),
        keys.index_by_status(keys.DEFAULT_TENANT, "succeeded"),
    ):
        assert expired.encode() not in await redis.zrange(index, 0, -1)
        assert kept.encode() in await redis.zrange(index, 0, -1)


async def commands_served(redis: ArqRedis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


async def test_listing_by_an_end_status_reads_only_the_jobs_that_ended_so(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    """By its own index (written as the job ends), not by a scan of every job: with 1,000 jobs waiting,
    the two that failed are one short page."""
    failed = []
    for _ in range(2):
        body = {"type": "diag.fail", "params": {"times": 1}, "max_attempts": 1}
        failed.append((await http.post("/v1/jobs", json=body)).json()["id"])
        await asyncio.sleep(0.002)
    await run_jobs()
    batch = {"jobs": [{"type": "diag.noop", "params": {}}] * 500}
    for _ in range(2):
        assert (await http.post("/v1/jobs:batch", json=batch)).status_code == 202
    before = await commands_served(redis)
    page = (await http.get("/v1/jobs", params={"status": "failed", "limit": 50})).json()
    spent = await commands_served(redis) - before
    assert [job["id"] for job in page["jobs"]] == failed[::-1]
    assert page["next_cursor"] is None
    assert spent < 50, spent  # a scan would read hundreds of the waiting jobs' records


async def test_listing_running_jobs_reads_the_running_sets_not_the_tenants_index(
    http: httpx.AsyncClient, background_worker: Any, redis: ArqRedis
) -> None:
    batch = {"jobs": [{"type": "diag.noop", "params": {}, "delay_seconds": 3600}] * 500}
    assert (await http.post("/v1/jobs:batch", json=batch)).status_code == 202
    async with background_worker():
        running = await http.post("/v1/jobs", json={"type": "diag.sleep", "params": {"seconds": 2}})
        job_id = running.json()["id"]
        for _ in range(100):
            if (await http.get(f"/v1/jobs/{job_id}")).json()["status"] == "in_progress":
                break
            await asyncio.sleep(0.05)
        before = await commands_served(redis)
        page = (await http.get("/v1/jobs", params={"status": "in_progress"})).json()
        spent = await commands_served(redis) - before
    assert [job["id"] for job in page["jobs"]] == [job_id]
    assert page["next_cursor"] is None
    assert spent < 80, spent
