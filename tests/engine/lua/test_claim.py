"""claim.lua: ready jobs taken by priority, shared between queues by weight, within rate and concurrency
limits; due deferred jobs promoted, lapsed leases recovered, and the queues' next timer reported."""

from __future__ import annotations

import random

import pytest
from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import Claim, JobQueues
from tests.engine.lua.steps import LEASE_MS, claim_all, job_call, now_ms, submitted
from tests.helpers import lapse_lease, make_due

Q = keys.DEFAULT_QUEUE


async def test_claim_takes_a_ready_job_with_what_arqs_run_job_reads_first(
    queues: JobQueues, redis: ArqRedis
) -> None:
    call = await submitted(queues, "j1")
    [claim] = await claim_all(queues)
    assert (claim.job_id, claim.queue, claim.slot, claim.score) == ("j1", Q, "", call.written.due_ms)
    assert claim.start is not None
    assert (claim.start.record, claim.start.job_try, claim.start.aborted) == (call.args[1], 1, False)
    assert 0 < await redis.pttl(keys.arq_in_progress("j1")) <= LEASE_MS
    assert await redis.zscore(keys.running(Q), "j1") is not None
    assert await redis.hget(keys.job_meta("j1"), "started_at") is not None
    assert await redis.zcard(keys.ready(Q)) == 0


async def test_claim_counts_the_attempt_in_the_jobs_meta_and_writes_no_arq_counter(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """ARQ's run_job gets the attempt from the claim, so it needs no key of its own: one write fewer per
    start, and no new key to make."""
    await submitted(queues, "j1")
    [first] = await claim_all(queues)
    assert await redis.hget(keys.job_meta("j1"), "tries") == b"1"
    assert not await redis.exists(keys.arq_retry("j1"))
    await redis.delete(keys.arq_in_progress("j1"))  # its worker died
    await lapse_lease(redis, "j1")
    [again] = await claim_all(queues)
    assert (first.start and first.start.job_try, again.start and again.start.job_try) == (1, 2)
    assert await redis.hget(keys.job_meta("j1"), "tries") == b"2"


@pytest.mark.parametrize(
    ("started_before", "attempt"),
    [(True, 3), (False, 1)],
    ids=["started by an earlier version", "never started"],
)
async def test_claim_goes_on_from_arqs_counter_only_for_a_job_an_earlier_version_started(
    queues: JobQueues, redis: ArqRedis, started_before: bool, attempt: int
) -> None:
    """A job started twice by an earlier version (ARQ's ``arq:retry`` counter at 2, ``started_at`` and no
    ``tries`` in its meta) is on its third attempt when a worker of this version claims it. A job never
    started has no count anywhere: its first claim reads no other key (the stray counter planted for it
    shows it was not read)."""
    await submitted(queues, "j1")
    await redis.set(keys.arq_retry("j1"), 2)
    if started_before:  # as that version's claim left it
        await redis.hset(keys.job_meta("j1"), "started_at", now_ms() - 60_000)
    [claim] = await claim_all(queues)
    assert claim.start is not None
    assert claim.start.job_try == attempt
    assert await redis.hget(keys.job_meta("j1"), "tries") == str(attempt).encode()


async def test_claim_reports_the_type_and_queue_wait_for_the_workers_metrics(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    await redis.zadd(keys.arq_queue(Q), {"j1": now_ms() - 1_500}, xx=True)  # due 1.5 s ago
    [claim] = await claim_all(queues)
    assert claim.job_type == "diag.noop"
    assert 1_500 <= claim.waited_ms < 1_500 + 1_000
    assert await redis.get(keys.arq_in_progress("j1")) == claim.token.encode()  # the lock holds its token
    assert await redis.hgetall(keys.METRICS) == {b"s|diag.noop|default": b"1"}  # the wait is the worker's


async def test_claim_takes_higher_priorities_first_then_first_come(queues: JobQueues) -> None:
    for job_id, priority in (("low", 1), ("high-1", 9), ("mid", 5), ("high-2", 9)):
        await submitted(queues, job_id, priority=priority)
    assert [claim.job_id for claim in await claim_all(queues)] == ["high-1", "high-2", "mid", "low"]


async def test_claim_takes_no_more_than_the_free_slots(queues: JobQueues) -> None:
    for i in range(3):
        await submitted(queues, f"j{i}")
    assert len(await claim_all(queues, free=2)) == 2


async def test_claim_promotes_a_deferred_job_that_fell_due(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "later", run_at_ms=now_ms() + 60_000)
    assert await claim_all(queues) == []
    await make_due(redis, "later")
    assert [claim.job_id for claim in await claim_all(queues)] == ["later"]


async def test_claim_reports_when_its_queues_next_need_a_look(queues: JobQueues, redis: ArqRedis) -> None:
    credits: dict[str, int] = {}
    assert await queues.claim(lease_ms=LEASE_MS, free=1, limits="{}", queues=[(Q, 1)], credits=credits) == (
        [],
        None,
    )
    due = now_ms() + 60_000
    await submitted(queues, "later", run_at_ms=due)
    claims, next_due = await queues.claim(
        lease_ms=LEASE_MS, free=1, limits="{}", queues=[(Q, 1)], credits=credits
    )
    assert (claims, next_due) == ([], due)
    assert await redis.zscore(keys.TIMERS, Q) == due


async def test_claim_reports_a_running_jobs_lease_end_as_its_queues_next_look(queues: JobQueues) -> None:
    await submitted(queues, "j1")
    before = now_ms()
    claims, next_due = await queues.claim(lease_ms=LEASE_MS, free=2, limits="{}", queues=[(Q, 1)], credits={})
    assert [claim.job_id for claim in claims] == ["j1"]
    assert next_due is not None
    assert before + LEASE_MS <= next_due <= now_ms() + LEASE_MS


async def test_claim_recovers_a_job_whose_lease_lapsed_as_its_next_attempt(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    [first] = await claim_all(queues)
    await redis.delete(keys.arq_in_progress("j1"))  # its worker died: the lock lapsed
    await lapse_lease(redis, "j1")
    [again] = await claim_all(queues)
    assert again.job_id == "j1"
    assert again.start is not None
    assert again.start.job_try == 2
    assert again.token != first.token  # the first attempt's renewals and release are fenced off


async def test_claim_keeps_tracking_a_job_whose_lock_outlives_its_lease(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    await claim_all(queues)
    await lapse_lease(redis, "j1")  # lease lapsed, but its lock is still held
    assert await claim_all(queues) == []
    assert (await redis.zscore(keys.running(Q), "j1") or 0) > now_ms()


async def test_claim_leaves_a_ready_job_whose_lock_someone_holds(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    await redis.set(keys.arq_in_progress("j1"), "1", px=60_000)
    assert await claim_all(queues) == []
    assert await redis.zscore(keys.running(Q), "j1") is not None  # tracked, so a lapse brings it back
    assert await redis.get(keys.arq_in_progress("j1")) == b"1"  # its holder's lock, untouched
    assert await redis.hget(keys.job_meta("j1"), "tries") is None  # no attempt spent


async def test_claim_drops_a_ready_job_that_left_arqs_queue(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "gone")
    await redis.zrem(keys.arq_queue(Q), "gone")
    assert await claim_all(queues) == []
    assert await redis.zcard(keys.ready(Q)) == 0


async def test_claim_skips_a_job_over_its_concurrency_limit(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "first", limit_key="acme")
    await submitted(queues, "second", limit_key="acme")
    await submitted(queues, "other", limit_key="globex")
    claims = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    assert {claim.job_id: claim.slot for claim in claims} == {
        "first": f"{keys.LIMIT_PREFIX}diag.noop:acme",
        "other": f"{keys.LIMIT_PREFIX}diag.noop:globex",
    }
    assert await redis.lrange(f"{keys.LIMIT_PREFIX}diag.noop:acme:parked", 0, -1) == [b"second"]
    assert await redis.hget(keys.job_meta("second"), "tries") is None  # no attempt spent
    assert await redis.exists(keys.arq_in_progress("second")) == 0  # parked, it holds no lock


async def test_claim_defers_a_job_over_its_rate_limit_until_the_rate_allows(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "first")
    await submitted(queues, "second")
    before = now_ms()
    claims = await claim_all(queues, limits={"diag.noop": {"r": 1, "p": 60_000}})
    assert [claim.job_id for claim in claims] == ["first"]
    due = await redis.zscore(keys.arq_queue(Q), "second")
    assert due is not None
    assert before + 60_000 <= due <= now_ms() + 60_000
    assert await redis.zscore(keys.deferred(Q), "second") == due * 10 + 4
    assert await redis.hget(keys.job_meta("second"), "tries") is None  # no attempt spent
    assert await redis.exists(keys.arq_in_progress("second")) == 0  # deferred, it holds no lock


async def test_claim_shares_the_free_slots_between_queues_by_weight(queues: JobQueues) -> None:
    for i in range(8):
        await submitted(queues, f"a{i}", queue="a")
        await submitted(queues, f"b{i}", queue="b")
    credits: dict[str, int] = {}
    claims = await claim_all(queues, free=8, queue_weights=(("a", 3), ("b", 1)), credits=credits)
    assert sorted(claim.queue for claim in claims) == ["a"] * 6 + ["b"] * 2
    assert set(credits) == {"a", "b"}
    assert sum(credits.values()) == 0  # smooth round-robin: what one queue is owed, the others owe


async def test_claim_gives_the_turns_of_a_queue_without_work_to_the_others(queues: JobQueues) -> None:
    for i in range(4):
        await submitted(queues, f"b{i}", queue="b")
    claims = await claim_all(queues, free=4, queue_weights=(("a", 3), ("b", 1)))
    assert [claim.queue for claim in claims] == ["b"] * 4


async def test_claim_reports_an_abort_that_waited_for_the_job(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    await redis.zadd(keys.ABORT_SET, {"j1": now_ms()})
    [claim] = await claim_all(queues)
    assert claim.start is not None
    assert claim.start.aborted is True
    assert await redis.zscore(keys.ABORT_SET, "j1") is None


async def test_a_claim_of_many_jobs_reports_each_ones_abort_and_leases_them_all(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """The claim writes its jobs' leases and takes their abort marks once for all of them: each job
    still gets its own answer and its own lease."""
    for job_id in ("j1", "j2", "j3"):
        await submitted(queues, job_id)
    await redis.zadd(keys.ABORT_SET, {"j2": now_ms(), "other": now_ms()})
    before = now_ms()
    claims = await claim_all(queues, free=3)
    assert {claim.job_id: claim.start.aborted for claim in claims if claim.start} == {
        "j1": False,
        "j2": True,
        "j3": False,
    }
    assert await redis.zrange(keys.ABORT_SET, 0, -1) == [b"other"]  # only the claimed jobs' marks go
    for job_id in ("j1", "j2", "j3"):
        lease_end = await redis.zscore(keys.running(Q), job_id)
        assert lease_end is not None
        assert before + LEASE_MS <= lease_end <= now_ms() + LEASE_MS


async def test_claim_reports_a_job_record_that_is_gone_as_empty(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    await redis.delete(keys.arq_job("j1"))
    [claim] = await claim_all(queues)
    assert claim.start is not None
    assert claim.start.record == b""


async def test_claim_holds_a_job_of_a_type_without_limits_to_none(queues: JobQueues) -> None:
    await submitted(queues, "j1")
    claims = await claim_all(queues, limits={"other.type": {"c": 0}})
    assert [claim.slot for claim in claims] == [""]


async def test_claim_takes_nothing_from_a_paused_queue_and_wakes_no_worker_for_it(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "waits", queue="bulk")
    await submitted(queues, "runs")
    await redis.hset(keys.PAUSED_QUEUES, "bulk", now_ms())
    both = (("bulk", 1), (Q, 1))
    assert [claim.job_id for claim in await claim_all(queues, queue_weights=both)] == ["runs"]
    assert await redis.zrange(keys.ready("bulk"), 0, -1) == [b"waits"]  # still in line
    await redis.delete(keys.wake("bulk"))
    assert await claim_all(queues, queue_weights=both) == []
    assert not await redis.exists(keys.wake("bulk"))  # no busy loop of wake-ups for a paused queue
    await redis.hdel(keys.PAUSED_QUEUES, "bulk")
    assert [claim.job_id for claim in await claim_all(queues, queue_weights=both)] == ["waits"]


async def test_a_claim_sent_twice_answers_with_the_same_jobs_and_takes_no_more(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """redis-py sends a command again when its connection dropped before the reply came: the jobs the
    first delivery took would otherwise wait for their leases to lapse, each charged a lost attempt."""
    for job_id in ("j1", "j2", "j3"):
        await submitted(queues, job_id)

    async def claim(request_id: str) -> list[tuple[str, str, int]]:
        claims, _ = await queues.claim(
            lease_ms=LEASE_MS, free=2, limits="{}", queues=[(Q, 1)], credits={}, request_id=request_id
        )
        assert all(claim.start is not None for claim in claims)
        return [(c.job_id, c.token, c.start.job_try if c.start else 0) for c in claims]

    first = await claim("worker-a:7")
    assert [job_id for job_id, _, _ in first] == ["j1", "j2"]
    assert await claim("worker-a:7") == first  # the same jobs, tokens and attempts
    assert await redis.hget(keys.job_meta("j1"), "tries") == b"1"  # the attempt counted once
    # remembered in one key a worker, which its next claim overwrites
    remembered = [key async for key in redis.scan_iter(match=keys.CLAIMS_REMEMBERED_PREFIX + "*")]
    assert remembered == [keys.claims_remembered("worker-a").encode()]
    assert [job_id for job_id, _, _ in await claim("worker-a:8")] == ["j3"]  # a new request takes more
    await submitted(queues, "j4")
    assert [job_id for job_id, _, _ in await claim("worker-b:8")] == ["j4"]  # another worker's is its own


async def test_no_two_claims_of_a_job_share_a_lease_token(queues: JobQueues, redis: ArqRedis) -> None:
    """Even the same request sent again after its reply was forgotten takes the job with a new token,
    so that the first claim's late release changes nothing."""
    await submitted(queues, "j1")

    async def claim(request_id: str) -> Claim:
        claims, _ = await queues.claim(
            lease_ms=LEASE_MS, free=1, limits="{}", queues=[(Q, 1)], credits={}, request_id=request_id
        )
        assert [c.job_id for c in claims] == ["j1"]
        return claims[0]

    first = await claim("worker-a:7")
    # lapsed, and the claim's reply forgotten
    await redis.delete(keys.arq_in_progress("j1"), keys.claims_remembered("worker-a"))
    await lapse_lease(redis, "j1")
    again = await claim("worker-a:7")
    assert again.token != first.token
    assert (
        await queues.release(first, ended=True, result=b"r", result_ttl_ms=60_000, outcome="failed")
        == "stale"
    )


async def first_due_or_lease_end(redis: ArqRedis, queue: str) -> int | None:
    first = await redis.zrange(keys.deferred(queue), 0, 0, withscores=True)
    lease = await redis.zrange(keys.running(queue), 0, 0, withscores=True)
    ends = [int(first[0][1]) // 10] if first else []
    ends += [int(lease[0][1])] if lease else []
    return min(ends) if ends else None


async def test_a_queues_timer_never_comes_later_than_its_first_due_job_or_lease_end(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """A claim looks for due and lapsed jobs only in the queues whose timer has come, so every script that
    defers a job or starts a lease must leave the timer no later than that: checked after each step of
    a mixed run of submits, claims, retries with a delay, hand-backs, ends and lapses (first without
    deferred jobs, whose due times would hide a lease end behind them)."""
    rng = random.Random(13)
    running: list[Claim] = []
    at_once = ["submit", "claim", "hand_back", "end", "lapse"]
    for step in range(200):
        action = rng.choice(at_once if step < 60 else [*at_once, "submit_later", "retry"])
        if action == "submit":
            await submitted(queues, f"j{step}")
        elif action == "submit_later":
            await submitted(queues, f"j{step}", run_at_ms=now_ms() + rng.randint(1, 5_000))
        elif action == "claim":
            running += await claim_all(queues, free=rng.randint(1, 3))
        elif running and action in ("retry", "hand_back", "end"):
            claim = running.pop(rng.randrange(len(running)))
            delay = rng.randint(0, 5_000) if action == "retry" else 0
            await queues.release(
                claim, ended=action == "end", delay_ms=delay, handed_back=action == "hand_back"
            )
        elif running and action == "lapse":
            claim = running.pop(rng.randrange(len(running)))
            await redis.delete(keys.arq_in_progress(claim.job_id))
            await lapse_lease(redis, claim.job_id)
        expected = await first_due_or_lease_end(redis, Q)
        timer = await redis.zscore(keys.TIMERS, Q)
        if expected is not None:
            assert timer is not None, (step, action)
            assert timer <= expected, (step, action)


# -- fair share between tenants: turns by weight, whatever the backlogs ------------------------------------


async def backlog(queues: JobQueues, tenant: str, count: int, prefix: str = "") -> None:
    await queues.submit_many([job_call(f"{prefix or tenant}-{i}", tenant=tenant) for i in range(count)])


async def test_a_claim_counts_the_jobs_it_takes_out_of_their_tenants_ready_jobs(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """A tenant with no ready job starts at the queue's virtual time (fair_tag.lua): each claim counts the
    jobs it took out of their tenants' ready counts, never below zero (jobs placed before they were
    counted leave too)."""
    await backlog(queues, "acme", 3)
    await backlog(queues, "globex", 2)
    await claim_all(queues, free=4)
    counts = await redis.hmget(keys.fair_share(Q), ["n|acme|5", "n|globex|5"])
    assert sorted(int(count) for count in counts) == [0, 1]
    await redis.hset(keys.fair_share(Q), mapping={"n|acme|5": 0, "n|globex|5": 0})  # counted short
    await claim_all(queues)
    assert await redis.hmget(keys.fair_share(Q), ["n|acme|5", "n|globex|5"]) == [b"0", b"0"]


async def test_claim_takes_a_new_job_of_one_tenant_ahead_of_another_tenants_flood(queues: JobQueues) -> None:
    await backlog(queues, "acme", 1000)
    assert [claim.job_id for claim in await claim_all(queues, free=5)] == [f"acme-{i}" for i in range(5)]
    await submitted(queues, "globex-late", tenant="globex")
    taken = [claim.job_id for claim in await claim_all(queues, free=3)]
    assert "globex-late" in taken[:2], taken  # behind one of acme's jobs at most, not its 995


async def test_claim_gives_tenants_turns_in_proportion_to_their_weights(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await redis.hset(keys.tenant_quotas("globex"), "weight", "3")
    await backlog(queues, "acme", 100)
    await backlog(queues, "globex", 100)
    taken = [claim.job_id for claim in await claim_all(queues, free=40)]
    assert sum(job_id.startswith("globex") for job_id in taken) == 30
    assert [job_id for job_id in taken if job_id.startswith("acme")] == [f"acme-{i}" for i in range(10)]


async def test_a_tenant_that_was_idle_saves_up_no_turns(queues: JobQueues) -> None:
    await backlog(queues, "globex", 50, prefix="early")
    await claim_all(queues, free=50)  # globex alone: the queue's virtual time moves on with it
    await backlog(queues, "acme", 20)
    await backlog(queues, "globex", 20)
    taken = [claim.job_id for claim in await claim_all(queues, free=20)]
    assert sum(job_id.startswith("acme") for job_id in taken) == 10


async def test_fair_turns_hold_within_a_priority_and_priorities_still_come_first(queues: JobQueues) -> None:
    await backlog(queues, "acme", 10)
    await submitted(queues, "urgent", tenant="globex", priority=9)
    await submitted(queues, "normal", tenant="globex")
    taken = [claim.job_id for claim in await claim_all(queues, free=3)]
    assert taken[0] == "urgent"
    assert "normal" in taken[1:3]


async def test_a_tenant_whose_backlog_was_cancelled_takes_its_turn_at_once_again(queues: JobQueues) -> None:
    """Its fair-share clock ran far ahead with its backlog; with none of its jobs ready any more, a new
    one starts from the queue's virtual time, not behind everyone else's floods."""
    await backlog(queues, "acme", 300)
    await backlog(queues, "globex", 300)
    await claim_all(queues, free=10)
    outcomes = await queues.cancel_waiting_many(
        [(f"acme-{i}", 60_000) for i in range(300)], message="cancelled before it started"
    )
    assert outcomes.count("cancelled") >= 290
    await submitted(queues, "acme-again", tenant="acme")
    taken = [claim.job_id for claim in await claim_all(queues, free=3)]
    assert "acme-again" in taken[:2], taken
