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
    assert done["result"]["index_entries_removed"] == 3  # the job's entry in all, by type, by queue
    for index in (
        keys.index_all(keys.DEFAULT_TENANT),
        keys.index_by_type(keys.DEFAULT_TENANT, "diag.noop"),
        keys.index_by_queue(keys.DEFAULT_TENANT, "default"),
    ):
        assert expired.encode() not in await redis.zrange(index, 0, -1)
        assert kept.encode() in await redis.zrange(index, 0, -1)
