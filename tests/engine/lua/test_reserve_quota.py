"""reserve_quota.lua: a batch's worth of a tenant's policy, quotas and storage budget, counted at once
before its jobs are written."""

from __future__ import annotations

from typing import Any

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import EnqueueCall, JobQueues, Quotas
from tests.engine.lua.steps import ended, job_call, submitted


def batch(count: int, **fields: Any) -> list[EnqueueCall]:
    """``count`` jobs of acme's, not written."""
    return [job_call(f"b{i}", **{"tenant": "acme", **fields}) for i in range(count)]


async def test_reserve_quota_allows_a_batch_within_the_quotas_and_counts_its_submits(
    queues: JobQueues, redis: ArqRedis
) -> None:
    assert await queues.reserve(batch(5), Quotas(max_open_jobs=5, submits_per_s=5)) is None
    counters = [key async for key in redis.scan_iter(match=f"{keys.TENANT_PREFIX}acme:submits:*")]
    assert [await redis.get(key) for key in counters] == [b"5"]


async def test_reserve_quota_refuses_a_batch_that_would_pass_the_most_open_jobs(queues: JobQueues) -> None:
    await submitted(queues, "open", tenant="acme")
    refusal = await queues.reserve(batch(2), Quotas(max_open_jobs=2, submits_per_s=100))
    assert refusal == ("over_open", "")


async def test_reserve_quota_refuses_a_batch_over_the_submits_per_second(queues: JobQueues) -> None:
    refusal = await queues.reserve(batch(6), Quotas(max_open_jobs=100, submits_per_s=5))
    assert refusal is not None
    assert refusal.outcome == "over_rate"
    assert 0 < int(refusal.detail) <= 1000


async def test_reserve_quota_reads_the_tenants_own_quotas_before_the_defaults(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await redis.hset(keys.tenant_quotas("acme"), mapping={"max_open_jobs": "50", "submits_per_s": "50"})
    assert await queues.reserve(batch(20), Quotas(max_open_jobs=1, submits_per_s=1)) is None


# -- the storage budget: jobs and bytes kept, ended jobs included ------------------------------------------

BUDGET = Quotas(max_open_jobs=100, submits_per_s=100, max_kept_jobs=3, max_kept_bytes=10_000)


async def test_reserve_quota_refuses_a_batch_past_the_jobs_a_tenant_may_keep_ended_ones_included(
    queues: JobQueues,
) -> None:
    await ended(queues, "done")
    assert await queues.reserve(batch(2), BUDGET) is None  # the default tenant's job is not acme's
    await submitted(queues, "a1", tenant="acme")
    await submitted(queues, "a2", tenant="acme")
    assert await queues.reserve(batch(2), BUDGET) == ("over_kept_jobs", "3")
    assert await queues.reserve(batch(1), BUDGET) is None


async def test_reserve_quota_refuses_a_batch_past_the_bytes_a_tenant_may_keep(queues: JobQueues) -> None:
    first = await submitted(queues, "a1", tenant="acme")
    room = BUDGET.max_kept_bytes - first.size
    padding = room - batch(1, params={"blob": ""})[0].size
    padding -= batch(1, params={"blob": "x" * padding})[0].size - room  # the length's own bytes
    exactly_the_room = batch(1, params={"blob": "x" * padding})
    assert exactly_the_room[0].size == room
    one_byte_more = batch(1, params={"blob": "x" * (padding + 1)})
    assert await queues.reserve(one_byte_more, BUDGET) == ("over_kept_bytes", "10000")
    assert await queues.reserve(exactly_the_room, BUDGET) is None


async def test_reserve_quota_refuses_a_batch_larger_than_the_whole_budget_as_such(queues: JobQueues) -> None:
    assert await queues.reserve(batch(1, params={"blob": "x" * 10_000}), BUDGET) == ("over_budget", "10000")


# -- the tenant's policy: its queues and its highest priority ----------------------------------------------


async def test_reserve_quota_refuses_a_batch_using_a_queue_the_tenant_may_not(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await redis.hset(keys.tenant_quotas("acme"), "queues", ",default,bulk,")
    assert await queues.reserve([*batch(2), *batch(1, queue="bulk")], BUDGET) is None
    refusal = await queues.reserve([*batch(1), *batch(1, queue="critical")], BUDGET)
    assert refusal == ("queue_not_allowed", "critical")


async def test_reserve_quota_refuses_a_batch_above_the_tenants_highest_priority(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await redis.hset(keys.tenant_quotas("acme"), "max_priority", "5")
    assert await queues.reserve(batch(2, priority=5), BUDGET) is None
    assert await queues.reserve([*batch(1), *batch(1, priority=6)], BUDGET) == ("priority_not_allowed", "5")
