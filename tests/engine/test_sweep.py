"""Every accepted job ends: one that waited past its queued expiry, in a queue no worker serves, is ended
as expired by whichever worker sweeps, its quota given back and its place in every queue given up."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues
from jobs.engine.sweep import SWEEP_STEP, sweep_expired
from service.config import Settings
from tests.conftest import worker_running
from tests.helpers import dead_letter_ids, make_due, submit, until_registered, wait_for_status


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Workers serve only ``default``; a tenant may have one open job; jobs expire a minute after due."""
    return settings.model_copy(
        update={"queues": "default", "tenant_max_open_jobs": 1, "queued_job_expiry_s": 60}
    )


async def test_a_job_nobody_serves_ends_expired_and_gives_its_quota_back(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    stranded = await submit(http, "diag.noop", {}, queue="bulk")
    full = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
    assert full.status_code == 429  # the stranded job holds the tenant's one open job
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    await redis.zadd(keys.arq_queue("bulk"), {stranded["id"]: an_hour_ago}, xx=True)

    async with worker_running(settings):
        ended = await wait_for_status(http, stranded["id"], "failed", timeout_s=10)
        assert ended["error"]["type"] == "JobExpired"
        assert "bulk" in ended["error"]["message"]
        assert stranded["id"] in await dead_letter_ids(http)
        for queue_key in (keys.arq_queue("bulk"), keys.ready("bulk"), keys.deferred("bulk")):
            assert await redis.zcard(queue_key) == 0
        again = await submit(http, "diag.noop", {})  # the quota is back
        await wait_for_status(http, again["id"], "succeeded", timeout_s=10)


async def test_a_job_that_is_not_yet_past_its_expiry_is_left_waiting(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    waiting = await submit(http, "diag.noop", {}, queue="bulk")
    async with worker_running(settings) as (worker, _):
        await until_registered(redis, worker)
        await asyncio.sleep(3 * settings.worker_heartbeat_s)  # time for a few sweeps
    assert (await http.get(f"/v1/jobs/{waiting['id']}")).json()["status"] == "queued"


async def test_a_dependent_waits_as_long_as_its_parent_and_its_expiry_counts_from_the_parents_end(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    raised = await http.put(f"/v1/admin/tenants/{keys.DEFAULT_TENANT}/quotas", json={"max_open_jobs": 10})
    assert raised.status_code == 200, raised.text
    parent = await submit(http, "diag.noop", {}, delay_seconds=3 * 3600)  # due long after any expiry
    child = await submit(http, "diag.noop", {}, depends_on=[parent["id"]])
    assert await redis.pttl(keys.arq_job(child["id"])) > await redis.pttl(keys.arq_job(parent["id"]))
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    await redis.zadd(keys.arq_queue("default"), {child["id"]: an_hour_ago}, xx=True)  # "waiting" an hour

    async with worker_running(settings) as (worker, _):
        await until_registered(redis, worker)
        await asyncio.sleep(3 * settings.worker_heartbeat_s)  # a few sweeps
        assert (await http.get(f"/v1/jobs/{child['id']}")).json()["status"] == "queued"  # not expired
        await make_due(redis, parent["id"])
        await wait_for_status(http, child["id"], "succeeded", timeout_s=10)


async def test_more_waiting_dependents_than_a_step_holds_never_hide_an_expired_job_behind_them(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    raised = await http.put(f"/v1/admin/tenants/{keys.DEFAULT_TENANT}/quotas", json={"max_open_jobs": 1000})
    assert raised.status_code == 200, raised.text
    parent = await submit(http, "diag.noop", {}, delay_seconds=3 * 3600)
    batch = [{"type": "diag.noop", "depends_on": [parent["id"]]}] * (SWEEP_STEP + 100)
    children = (await http.post("/v1/jobs:batch", json={"jobs": batch})).json()["jobs"]
    stranded = await submit(http, "diag.noop", {})
    now = int(time.time() * 1000)
    old = {child["id"]: now - 7_200_000 for child in children}  # overdue, ahead of the stranded job
    await redis.zadd(keys.arq_queue("default"), {**old, stranded["id"]: now - 3_600_000}, xx=True)

    passed_over: dict[str, int] = {}
    for _ in range(2):  # the first step meets only dependents, which wait for their parent
        await sweep_expired(
            JobQueues(redis),
            ["default"],
            queued_expiry_ms=60_000,
            now_ms=now,
            result_ttl_ms=60_000,
            dead_letter_ms=60_000,
            passed_over=passed_over,
        )
    assert (await http.get(f"/v1/jobs/{stranded['id']}")).json()["status"] == "failed"
    assert (await http.get(f"/v1/jobs/{children[0]['id']}")).json()["status"] == "queued"
