"""submit_many.lua: a batch's jobs, enqueued one after the other with a reply each, its quotas reserved
first in the same script when it fits one."""

from __future__ import annotations

import pytest
from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import SUBMIT_MANY_CHUNK, JobQueues, QuotaRefused, Quotas
from tests.engine.lua.steps import ended, job_call, submitted


async def test_submit_many_writes_every_job_in_order_with_a_reply_each(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "parent")
    calls = [job_call("a"), job_call("b", depends_on=("parent",)), job_call("c")]
    assert await queues.submit_many(calls) == [("created", "0"), ("created", "1"), ("created", "0")]
    assert await redis.zrange(keys.ready(keys.DEFAULT_QUEUE), 0, -1) == [b"parent", b"a", b"c"]


async def test_submit_many_answers_exists_for_a_taken_id_and_writes_the_others(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "taken")
    replies = await queues.submit_many([job_call("taken"), job_call("fresh")])
    assert replies == [("exists", ""), ("created", "0")]
    assert await redis.exists(keys.arq_job("fresh"))


async def test_submit_many_refuses_a_job_whose_parent_is_unknown_failed_or_cancelled(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await ended(queues, "failed", outcome="failed")
    await submitted(queues, "cancelled")
    await queues.cancel_waiting("cancelled", message="no", retention_ms=60_000)
    replies = await queues.submit_many(
        [
            job_call("a", depends_on=("nobody",)),
            job_call("b", depends_on=("failed",)),
            job_call("c", depends_on=("cancelled",)),
        ]
    )
    assert replies == [
        ("unknown_parent", "nobody"),
        ("parent_failed", "failed"),
        ("parent_cancelled", "cancelled"),
    ]
    assert not await redis.exists(keys.arq_job("a"), keys.arq_job("b"), keys.arq_job("c"))


async def test_submit_many_answers_every_job_of_a_batch_longer_than_a_chunk(queues: JobQueues) -> None:
    calls = [job_call(f"j{i}") for i in range(SUBMIT_MANY_CHUNK + 50)]
    replies = await queues.submit_many(calls)
    assert [reply.outcome for reply in replies] == ["created"] * len(calls)


async def test_submit_many_counts_what_it_created_once_per_counter(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """The submitted counters and jobsvc's count of its own ARQ entries add up the created jobs only
    (a taken id adds nothing), each written once at the batch's end."""
    await submitted(queues, "taken")
    calls = [job_call("taken"), *(job_call(f"n{i}") for i in range(3)), job_call("f", type="diag.fail")]
    await queues.submit_many(calls)
    counters = await redis.hgetall(keys.METRICS)
    assert counters == {b"s|diag.noop|default": b"4", b"s|diag.fail|default": b"1"}
    assert await redis.hget(keys.ARQ_OWNED, keys.DEFAULT_QUEUE) == b"5"
    assert await redis.hget(keys.job_meta("f"), keys.ARQ_ENTRY_FIELD) == keys.DEFAULT_QUEUE.encode()


async def test_submit_many_reserves_the_quotas_of_a_batch_that_fits_one_script_and_writes_it(
    queues: JobQueues, redis: ArqRedis
) -> None:
    calls = [job_call(f"j{n}", tenant="acme") for n in range(3)]
    replies = await queues.submit_many(calls, quotas=Quotas(max_open_jobs=3, submits_per_s=3))
    assert replies == [("created", "0")] * 3
    assert await redis.get(keys.tenant_open_jobs("acme")) == b"3"
    counters = [key async for key in redis.scan_iter(match=f"{keys.TENANT_PREFIX}acme:submits:*")]
    assert [await redis.get(key) for key in counters] == [b"3"]


@pytest.mark.parametrize("size", [3, SUBMIT_MANY_CHUNK + 1], ids=["one script", "several scripts"])
async def test_submit_many_refused_by_the_quotas_writes_nothing_of_the_batch(
    queues: JobQueues, redis: ArqRedis, size: int
) -> None:
    await submitted(queues, "open", tenant="acme")
    calls = [job_call(f"j{n}", tenant="acme") for n in range(size)]
    with pytest.raises(QuotaRefused) as refused:
        await queues.submit_many(calls, quotas=Quotas(max_open_jobs=size, submits_per_s=10_000))
    assert refused.value.refusal == ("over_open", "")
    assert not await redis.exists(keys.arq_job("j0"), keys.arq_job(f"j{size - 1}"))
    assert await redis.get(keys.tenant_open_jobs("acme")) == b"1"


async def test_a_batch_places_its_jobs_in_the_fair_turns_they_would_take_one_by_one(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """A batch reads each tenant's weight and clock once and writes them once: the turns come out as
    if its jobs had been submitted one at a time (here into a twin queue)."""
    await redis.hset(keys.tenant_quotas("globex"), "weight", 4)
    order = [("acme", 5), ("globex", 5), ("acme", 5), ("acme", 9), ("globex", 5), ("acme", 5)]
    await queues.submit_many(
        [job_call(f"b{i}", tenant=tenant, priority=p, queue="batch") for i, (tenant, p) in enumerate(order)]
    )
    for i, (tenant, p) in enumerate(order):
        await submitted(queues, f"s{i}", tenant=tenant, priority=p, queue="single")
    batch = await redis.zrange(keys.ready("batch"), 0, -1, withscores=True)
    single = await redis.zrange(keys.ready("single"), 0, -1, withscores=True)
    assert [(job_id[1:], score) for job_id, score in batch] == [
        (job_id[1:], score) for job_id, score in single
    ]
    assert await redis.hgetall(keys.fair_share("batch")) == await redis.hgetall(keys.fair_share("single"))
    assert await redis.llen(keys.wake("batch")) == 1


async def test_a_batch_adds_to_each_sorted_set_once_however_many_jobs_it_holds(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """ARQ's queue, the ready set and the three listing indexes get one ZADD each, with every job of the
    batch in it (the tenant joins the tenants' list with one more)."""
    await redis.config_resetstat()
    await queues.submit_many([job_call(f"j{i}") for i in range(100)])
    stats = await redis.info("commandstats")
    assert stats["cmdstat_zadd"]["calls"] == 6
    assert await redis.zcard(keys.ready(keys.DEFAULT_QUEUE)) == 100
    assert await redis.zcard(keys.arq_queue(keys.DEFAULT_QUEUE)) == 100
    assert await redis.zcard(keys.index_all(keys.DEFAULT_TENANT)) == 100
    assert await redis.get(keys.tenant_open_jobs(keys.DEFAULT_TENANT)) == b"100"
