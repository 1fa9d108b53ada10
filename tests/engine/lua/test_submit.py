"""submit.lua: one job, once per Idempotency-Key, within its tenant's quotas; every reply it lists."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues, Quotas
from tests.engine.lua.steps import claim_all, claimed, ended, job_call, now_ms, submitted

ROOMY = Quotas(max_open_jobs=100, submits_per_s=100)


async def test_submit_writes_a_due_job_ready_to_claim(queues: JobQueues, redis: ArqRedis) -> None:
    call = job_call("j1", tenant="acme")
    assert await queues.submit(call, quotas=ROOMY) == ("created", "0")
    assert await redis.get(keys.arq_job("j1")) == call.args[1]
    assert await redis.zscore(keys.arq_queue(keys.DEFAULT_QUEUE), "j1") == call.written.due_ms
    assert await redis.zrange(keys.ready(keys.DEFAULT_QUEUE), 0, -1) == [b"j1"]
    assert await redis.hget(keys.job_meta("j1"), "tenant") == b"acme"
    assert await redis.get(keys.tenant_open_jobs("acme")) == b"1"
    assert await redis.zrange(keys.index_all("acme"), 0, -1) == [b"j1"]
    assert await redis.lrange(keys.wake(keys.DEFAULT_QUEUE), 0, -1) == [b"1"]


async def test_submit_defers_a_job_due_later_and_lowers_its_queues_timer(
    queues: JobQueues, redis: ArqRedis
) -> None:
    due = now_ms() + 60_000
    assert (await queues.submit(job_call("later", run_at_ms=due))).outcome == "created"
    assert await redis.zcard(keys.ready(keys.DEFAULT_QUEUE)) == 0
    assert await redis.zscore(keys.deferred(keys.DEFAULT_QUEUE), "later") == due * 10 + 4
    assert await redis.zscore(keys.TIMERS, keys.DEFAULT_QUEUE) == due


async def test_submit_answers_created_with_the_parents_a_job_waits_for(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "parent")
    assert await queues.submit(job_call("child", depends_on=("parent",))) == ("created", "1")
    assert await redis.zrange(keys.ready(keys.DEFAULT_QUEUE), 0, -1) == [b"parent"]  # the child waits
    assert await redis.smembers(keys.dependents("parent")) == {b"child"}


async def test_submit_answers_duplicate_for_a_used_idempotency_key(
    queues: JobQueues, redis: ArqRedis
) -> None:
    first = await queues.submit(
        job_call("j1"), idempotency_key="k", idempotency_value="j1 hash", idempotency_ttl_ms=60_000
    )
    again = await queues.submit(
        job_call("j2"), idempotency_key="k", idempotency_value="j2 hash", idempotency_ttl_ms=60_000
    )
    assert (first, again) == (("created", "0"), ("duplicate", "j1 hash"))
    assert not await redis.exists(keys.arq_job("j2"))


async def test_submit_answers_exists_for_a_taken_id(queues: JobQueues) -> None:
    await submitted(queues, "j1")
    assert await queues.submit(job_call("j1")) == ("exists", "")


async def test_submit_refuses_a_parent_that_is_missing_or_another_tenants(queues: JobQueues) -> None:
    await submitted(queues, "theirs", tenant="globex")
    assert await queues.submit(job_call("a", depends_on=("nobody",))) == ("unknown_parent", "nobody")
    assert await queues.submit(job_call("b", depends_on=("theirs",))) == ("unknown_parent", "theirs")


async def test_submit_refuses_a_parent_that_failed_or_was_cancelled(queues: JobQueues) -> None:
    await ended(queues, "failed", outcome="failed")
    await submitted(queues, "cancelled")
    assert await queues.cancel_waiting("cancelled", message="no", retention_ms=60_000) == "cancelled"
    assert await queues.submit(job_call("a", depends_on=("failed",))) == ("parent_failed", "failed")
    assert await queues.submit(job_call("b", depends_on=("cancelled",))) == ("parent_cancelled", "cancelled")


async def test_submit_answers_over_open_when_the_tenant_has_its_most_open_jobs(
    queues: JobQueues, redis: ArqRedis
) -> None:
    quotas = Quotas(max_open_jobs=1, submits_per_s=100)
    assert (await queues.submit(job_call("j1"), quotas=quotas)).outcome == "created"
    assert await queues.submit(job_call("j2"), quotas=quotas) == ("over_open", "")
    assert not await redis.exists(keys.arq_job("j2"))


async def test_submit_answers_over_rate_with_the_ms_until_the_next_second(
    queues: JobQueues, redis: ArqRedis
) -> None:
    reply = await queues.submit(job_call("j1"), quotas=Quotas(max_open_jobs=100, submits_per_s=0))
    assert reply.outcome == "over_rate"
    assert 0 < int(reply.detail) <= 1000
    assert not await redis.exists(keys.arq_job("j1"))


async def test_submit_counts_against_the_tenants_own_quotas_over_the_defaults(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await redis.hset(keys.tenant_quotas("acme"), "max_open_jobs", "0")
    assert await queues.submit(job_call("j1", tenant="acme"), quotas=ROOMY) == ("over_open", "")
    assert (await queues.submit(job_call("j2"), quotas=ROOMY)).outcome == "created"  # another tenant
    assert [claim.job_id for claim in await claim_all(queues)] == ["j2"]


# -- running an ended job again (a dead-letter replay, a retry): ARGV[7] ----------------------------------

TENANT = "acme"


async def buried(queues: JobQueues, job_id: str) -> None:
    """``job_id`` run and failed for good: a dead letter of TENANT's."""
    claim = await claimed(queues, job_id, tenant=TENANT)
    await queues.release(
        claim, ended=True, result=b"r", result_ttl_ms=600_000, outcome="failed", bury_for_ms=600_000
    )


async def test_a_job_run_again_is_written_with_the_old_one_marked_and_out_of_the_dead_letters_in_one_step(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await buried(queues, "old")
    assert await redis.zscore(keys.dead_letters(TENANT), "old") is not None
    assert await queues.submit(job_call("new", tenant=TENANT), runs_again="old") == ("created", "0")
    assert await redis.hget(keys.job_meta("old"), "replayed_as") == b"new"
    assert await redis.zscore(keys.dead_letters(TENANT), "old") is None
    assert await redis.zscore(keys.dead_letters_in_queue(keys.DEFAULT_QUEUE), "old") is None
    assert await redis.exists(keys.arq_job("new"))


async def test_a_job_that_ran_again_already_is_refused_and_nothing_is_written(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await buried(queues, "old")
    await queues.submit(job_call("first", tenant=TENANT), runs_again="old")
    assert await queues.submit(job_call("second", tenant=TENANT), runs_again="old") == ("replayed", "first")
    assert await redis.hget(keys.job_meta("old"), "replayed_as") == b"first"
    assert not await redis.exists(keys.arq_job("second"), keys.job_meta("second"))


async def test_a_job_whose_result_expired_cannot_run_again(queues: JobQueues, redis: ArqRedis) -> None:
    assert await queues.submit(job_call("new", tenant=TENANT), runs_again="expired") == ("gone", "")
    assert not await redis.exists(keys.job_meta("expired"), keys.arq_job("new"))


async def test_a_run_again_refused_for_its_quota_leaves_the_old_job_a_dead_letter(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await buried(queues, "old")
    await submitted(queues, "open", tenant=TENANT)
    full = Quotas(max_open_jobs=1, submits_per_s=100)
    assert (await queues.submit(job_call("new", tenant=TENANT), quotas=full, runs_again="old")).outcome == (
        "over_open"
    )
    assert await redis.hget(keys.job_meta("old"), "replayed_as") is None
    assert await redis.zscore(keys.dead_letters(TENANT), "old") is not None


async def test_a_meta_recreated_by_the_mark_lives_no_longer_than_the_old_result(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await buried(queues, "old")
    await redis.delete(keys.job_meta("old"))
    await queues.submit(job_call("new", tenant=TENANT), runs_again="old")
    meta_ttl, result_ttl = await redis.pttl(keys.job_meta("old")), await redis.pttl(keys.arq_result("old"))
    assert 0 < meta_ttl <= 600_000
    assert abs(meta_ttl - result_ttl) < 1_000  # the result's, read a moment apart


async def test_a_submit_within_its_quotas_reads_the_servers_clock_once(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """The quotas' rate second, the storage budget's expired buckets and the job's creation share one
    reading of the clock."""
    await redis.config_resetstat()
    assert await queues.submit(job_call("j1"), quotas=ROOMY) == ("created", "0")
    assert (await redis.info("commandstats"))["cmdstat_time"]["calls"] == 1
