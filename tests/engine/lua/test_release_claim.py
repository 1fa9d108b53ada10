"""release_claim.lua: an attempt ends, its claim released, and the job either ends or waits again."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, decode_purge_job
from tests.engine.lua.steps import claim_all, claimed, job_call, now_ms, submitted
from tests.helpers import lapse_lease

Q = keys.DEFAULT_QUEUE


async def test_release_claim_ends_a_job_with_its_result_and_outcome(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "j1", tenant="acme")
    reply = await queues.release(
        claim, ended=True, result=b"result", result_ttl_ms=60_000, outcome="succeeded"
    )
    assert reply == "ended"
    assert await redis.get(keys.arq_result("j1")) == b"result"
    assert 0 < await redis.pttl(keys.arq_result("j1")) <= 60_000
    assert 0 < await redis.pttl(keys.job_meta("j1")) <= 60_000
    assert await redis.hget(keys.job_meta("j1"), "outcome") == b"succeeded"
    assert not await redis.exists(keys.arq_job("j1"), keys.arq_retry("j1"), keys.arq_in_progress("j1"))
    assert await redis.get(keys.tenant_open_jobs("acme")) == b"0"
    for queue_set in (keys.arq_queue(Q), keys.ready(Q), keys.deferred(Q), keys.running(Q)):
        assert await redis.zscore(queue_set, "j1") is None
    stats = await redis.hgetall(keys.queue_stats(Q, now_ms() // 60_000))
    assert stats == {b"succeeded": b"1"}
    assert await redis.hget(keys.ARQ_OWNED, Q) == b"0"  # jobsvc's entries in ARQ's queue: none left


async def test_release_claim_keeps_a_result_without_ttl_forever(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1")
    await queues.release(claim, ended=True, result=b"result", result_ttl_ms=0, outcome="succeeded")
    assert await redis.pttl(keys.arq_result("j1")) == -1
    assert await redis.pttl(keys.job_meta("j1")) == -1


async def test_release_claim_answers_settle_when_dependents_wait(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "parent")
    await queues.submit(job_call("child", depends_on=("parent",)))
    reply = await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert reply == "settle"
    assert await redis.zscore(keys.SETTLING, "parent") is not None


async def test_release_claim_records_an_outcome_once(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1")
    await submitted(queues, "other")  # keeps the tenant's open count above zero
    replies = [
        await queues.release(attempt, ended=True, result=b"r", result_ttl_ms=60_000, outcome="failed")
        for attempt in (claim, replace(claim, token=""))  # the second: an end ARQ ran without a claim
    ]
    assert replies == ["ended", "ended_earlier"]  # the worker tallies the first end only
    assert await redis.get(keys.tenant_open_jobs(keys.DEFAULT_TENANT)) == b"1"
    assert await redis.hgetall(keys.queue_stats(Q, now_ms() // 60_000)) == {b"failed": b"1"}
    assert await redis.hget(keys.ARQ_OWNED, Q) == b"1"  # the other job's entry: counted out once


async def test_release_claim_leaves_the_counters_to_the_worker(queues: JobQueues, redis: ArqRedis) -> None:
    """Ends and retries of a worker's attempts are in its tally (jobs.engine.metrics.Tally), not here."""
    retried = await claimed(queues, "retried")
    assert await queues.release(retried, ended=False, delay_ms=0) == "again"
    ended = (await claim_all(queues))[0]
    await queues.release(ended, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    counters = await redis.hgetall(keys.METRICS)
    assert [name for name in counters if not name.startswith(b"s|")] == []


async def test_release_claim_puts_a_retry_back_in_line_after_its_delay(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "j1")
    due = await redis.zscore(keys.arq_queue(Q), "j1")
    assert due is not None
    assert await queues.release(claim, ended=False, delay_ms=60_000) == "again"
    assert await redis.zscore(keys.arq_queue(Q), "j1") == due + 60_000
    assert await redis.zscore(keys.deferred(Q), "j1") == (due + 60_000) * 10 + 4
    assert not await redis.exists(keys.arq_in_progress("j1"))
    assert await redis.hget(keys.job_meta("j1"), "tries") == b"1"  # the attempt counts
    assert await redis.zscore(keys.running(Q), "j1") is None


async def test_release_claim_gives_a_handed_back_attempt_back(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1")
    assert await queues.release(claim, ended=False, handed_back=True) == "again"
    assert await redis.hget(keys.job_meta("j1"), "tries") == b"0"
    assert [again.job_id for again in await claim_all(queues)] == ["j1"]


async def test_release_claim_keeps_the_lock_for_as_long_as_asked(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1")
    await queues.release(
        claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded", keep_lock_ms=5_000
    )
    assert 0 < await redis.pttl(keys.arq_in_progress("j1")) <= 5_000


async def test_release_claim_buries_a_job_that_failed_for_good(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1", tenant="acme")
    await redis.rpush(keys.job_attempts("j1"), "{}")
    await queues.release(
        claim, ended=True, result=b"r", result_ttl_ms=0, outcome="failed", bury_for_ms=120_000
    )
    assert await redis.zscore(keys.dead_letters("acme"), "j1") is not None
    for key in (keys.arq_result("j1"), keys.job_meta("j1"), keys.job_attempts("j1")):
        assert 60_000 < await redis.pttl(key) <= 120_000


async def test_release_claim_answers_gone_for_a_job_deleted_while_it_ran(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "j1")
    assert decode_purge_job(await redis.eval(lua.PURGE_JOB, 0, "j1", keys.DEFAULT_TENANT))
    reply = await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert reply == "gone"
    assert not await redis.exists(keys.arq_result("j1"), keys.job_meta("j1"), keys.arq_in_progress("j1"))
    assert await redis.zscore(keys.running(Q), "j1") is None


async def test_a_gone_release_sent_again_answers_gone_over_an_earlier_attempts_memory(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """The job's meta remembers its first attempt's release; the second attempt's answer, 'gone' (the job
    left ARQ's queue meanwhile), is remembered apart: its resend answers 'gone' again and gives the
    attempt back once, not twice."""
    first = await claimed(queues, "j1")
    assert await queues.release(first, ended=False, handed_back=True) == "again"
    [second] = await claim_all(queues)
    await redis.zrem(keys.arq_queue(Q), "j1")
    assert await queues.release(second, ended=False, handed_back=True) == "gone"
    tries = await redis.hget(keys.job_meta("j1"), "tries")
    assert await queues.release(second, ended=False, handed_back=True) == "gone"
    assert await redis.hget(keys.job_meta("j1"), "tries") == tries


async def test_release_claim_answers_gone_for_a_retry_that_left_arqs_queue(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "j1")
    await redis.zrem(keys.arq_queue(Q), "j1")
    assert await queues.release(claim, ended=False, delay_ms=1_000) == "gone"
    assert await redis.zscore(keys.ready(Q), "j1") is None
    assert await redis.zscore(keys.deferred(Q), "j1") is None


async def test_release_claim_frees_the_slot_for_the_first_parked_job(
    queues: JobQueues, redis: ArqRedis
) -> None:
    limits = {"diag.noop": {"c": 1}}
    await submitted(queues, "first")
    await submitted(queues, "second")
    [claim] = await claim_all(queues, limits=limits)
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert await redis.zrange(keys.ready(Q), 0, -1) == [b"second"]
    assert [again.job_id for again in await claim_all(queues, limits=limits)] == ["second"]


async def test_release_claim_of_an_attempt_whose_job_another_claim_holds_changes_nothing(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """A worker paused past its lease comes back and ends its stale attempt: the job, its concurrency slot,
    its outcome and the dead letters stay the current owner's."""
    limits = {"diag.noop": {"c": 1}}
    await submitted(queues, "j1")
    [stale] = await claim_all(queues, limits=limits)
    await redis.delete(keys.arq_in_progress("j1"))  # the paused worker's lease lapsed
    await lapse_lease(redis, "j1")
    [current] = await claim_all(queues, limits=limits)
    assert current.token != stale.token
    slot_before = await redis.zrange(f"{current.slot}:running", 0, -1)
    for ended in (True, False):
        reply = await queues.release(
            stale, ended=ended, result=b"stale", result_ttl_ms=60_000, outcome="failed", bury_for_ms=60_000
        )
        assert reply == "stale"
    assert await redis.get(keys.arq_in_progress("j1")) == current.token.encode()
    assert await redis.zscore(keys.running(Q), "j1") is not None
    assert await redis.zrange(f"{current.slot}:running", 0, -1) == slot_before == [b"j1"]
    assert await redis.get(keys.arq_result("j1")) is None
    assert await redis.hget(keys.job_meta("j1"), "outcome") is None
    assert await redis.zcard(keys.DEAD_LETTERS_PREFIX + keys.DEFAULT_TENANT) == 0
    assert await queues.release(
        current, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded"
    ) == ("ended")


async def test_release_claim_of_a_lapsed_lease_nobody_took_over_is_still_its_attempts(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "j1")
    await redis.delete(keys.arq_in_progress("j1"))  # late, but no other claim holds the job
    assert await queues.release(
        claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded"
    ) == ("ended")
    assert await redis.get(keys.arq_result("j1")) == b"r"


async def test_release_claim_of_a_lapsed_lease_takes_the_job_out_of_line_where_a_claim_put_it_back(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "j1")
    await redis.delete(keys.arq_in_progress("j1"))
    await lapse_lease(redis, "j1")
    assert await claim_all(queues, free=0) == []  # finds the lapse and puts the job back in line
    assert await redis.zscore(keys.ready(Q), "j1") is not None
    assert await queues.release(
        claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded"
    ) == ("ended")
    assert await redis.zcard(keys.ready(Q)) == 0
    assert await claim_all(queues) == []


async def test_release_claim_of_a_lapsed_lease_whose_slot_was_given_up_changes_nothing(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """The lease lapsed and a claim gave the limit's slot to another job: ending this attempt now would
    count it as running beside that one. The job runs again instead."""
    limits = {"diag.noop": {"c": 1}}
    await submitted(queues, "j1")
    [lapsed] = await claim_all(queues, limits=limits)
    await redis.delete(keys.arq_in_progress("j1"))  # no renewal reached Redis (a pause, an outage)
    await redis.zadd(f"{lapsed.slot}:running", {"j1": now_ms() - 1})  # its slot's lease too
    await submitted(queues, "j2")
    [other] = await claim_all(queues, limits=limits)
    assert other.job_id == "j2"  # in the slot the lapsed lease gave up
    reply = await queues.release(
        lapsed, ended=True, result=b"late", result_ttl_ms=60_000, outcome="succeeded"
    )
    assert reply == "stale"
    assert await redis.get(keys.arq_result("j1")) is None
    assert await redis.zscore(keys.arq_queue(Q), "j1") is not None  # it waits to run again
    assert await redis.zrange(f"{lapsed.slot}:running", 0, -1) == [b"j2"]


async def test_a_release_sent_twice_answers_as_the_first_and_changes_nothing_more(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """redis-py sends a command again when its connection dropped before the reply came."""
    handed_back = await claimed(queues, "back")
    once = await queues.release(handed_back, ended=False, delay_ms=5_000, handed_back=True)
    due = await redis.zscore(keys.arq_queue(Q), "back")
    events = await redis.xlen(keys.events(keys.DEFAULT_TENANT))
    twice = await queues.release(handed_back, ended=False, delay_ms=5_000, handed_back=True)
    assert once == twice == "again"
    assert await redis.zscore(keys.arq_queue(Q), "back") == due  # not pushed back a second time
    assert await redis.hget(keys.job_meta("back"), "tries") == b"0"  # the attempt given back once
    assert await redis.xlen(keys.events(keys.DEFAULT_TENANT)) == events

    await submitted(queues, "limited")
    [slotted] = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    assert slotted.slot  # which the first delivery frees
    limited_ends = [
        await queues.release(slotted, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
        for _ in range(2)
    ]
    assert limited_ends == ["ended", "ended"]  # not "stale": the resend is this release's, not a lapse

    parent = await claimed(queues, "parent")
    await queues.submit(job_call("child", depends_on=("parent",)))
    ends = [
        await queues.release(parent, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
        for _ in range(2)
    ]
    assert ends == ["settle", "settle"]  # the worker hears what the first one did, and settles the child


async def test_a_release_that_ends_a_job_is_remembered_in_its_meta_by_the_outcomes_own_write(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """The end's lease token and reply go into the job's meta with its outcome, in one ``HSET``: no key
    and no write of their own; a resend finds them there and answers as the first release did."""
    claim = await claimed(queues, "j1")
    done = dict(ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert await queues.release(claim, **done) == "ended"
    assert await redis.hget(keys.job_meta("j1"), keys.RELEASED_FIELD) == f"{claim.token} ended".encode()
    assert [key async for key in redis.scan_iter(match=keys.RELEASES_REMEMBERED_PREFIX + "*")] == []
    assert await queues.release(claim, **done) == "ended"  # as the first answered, not "ended_earlier"


async def test_the_release_of_a_job_deleted_while_it_ran_is_remembered_into_the_next_stretch(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """With no meta to keep it, a release is remembered in one hash a stretch of ``RESEND_MEMORY_MS``: a
    resend in the stretch after the release's still finds it; one later than that no longer does (and,
    its concurrency slot given up, is taken for a lapsed lease's)."""
    while now_ms() % keys.RESEND_MEMORY_MS > keys.RESEND_MEMORY_MS - 1_000:
        await asyncio.sleep(0.05)  # the steps below all fall in one stretch
    stretch = now_ms() // keys.RESEND_MEMORY_MS
    await submitted(queues, "j1")
    [claim] = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    assert decode_purge_job(await redis.eval(lua.PURGE_JOB, 0, "j1", keys.DEFAULT_TENANT))
    done = dict(ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert await queues.release(claim, **done) == "gone"
    kept = keys.releases_remembered(stretch)
    remembered = [key async for key in redis.scan_iter(match=keys.RELEASES_REMEMBERED_PREFIX + "*")]
    assert remembered == [kept.encode()]
    assert await redis.pttl(kept) > keys.RESEND_MEMORY_MS  # to the end of the next stretch

    await redis.rename(kept, keys.releases_remembered(stretch - 1))  # as if a stretch had passed
    assert await queues.release(claim, **done) == "gone"  # as the first answered
    await redis.rename(keys.releases_remembered(stretch - 1), keys.releases_remembered(stretch - 2))
    assert await queues.release(claim, **done) == "stale"  # forgotten
