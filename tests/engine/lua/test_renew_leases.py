"""renew_leases.lua: a worker's running jobs keep their locks, leases and concurrency slots."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, decode_renew_leases
from tests.engine.lua.steps import claim_all, now_ms, submitted
from tests.helpers import lapse_lease

Q = keys.DEFAULT_QUEUE
SLOT = f"{keys.LIMIT_PREFIX}diag.noop"


async def test_renew_leases_extends_the_lock_the_lease_and_the_slot(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    [claim] = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    await redis.pexpire(keys.arq_in_progress("j1"), 1_000)
    before = now_ms()
    await queues.renew(600_000, [claim])
    assert await redis.pttl(keys.arq_in_progress("j1")) > 500_000
    for running in (keys.running(Q), f"{SLOT}:running"):
        assert before + 600_000 <= (await redis.zscore(running, "j1") or 0) <= now_ms() + 600_000


async def test_renew_leases_puts_back_no_job_that_left_its_running_set(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    [claim] = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    await queues.renew(600_000, [claim])
    assert await redis.zscore(keys.running(Q), "j1") is None
    assert await redis.zscore(f"{SLOT}:running", "j1") is None
    assert not await redis.exists(keys.arq_in_progress("j1"))


async def test_renew_leases_names_a_lease_lost_to_another_claim_and_leaves_it_alone(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """A worker that stalled past its lease learns, at its next renewal, that the job is another's."""
    await submitted(queues, "j1")
    [stale] = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    await redis.delete(keys.arq_in_progress("j1"))  # the stalled worker's lease lapsed
    await lapse_lease(redis, "j1")
    [current] = await claim_all(queues, limits={"diag.noop": {"c": 1}})
    await redis.pexpire(keys.arq_in_progress("j1"), 1_000)
    assert await queues.renew(600_000, [stale]) == ["j1"]
    assert await redis.get(keys.arq_in_progress("j1")) == current.token.encode()
    assert await redis.pttl(keys.arq_in_progress("j1")) <= 1_000  # the new owner's lease, untouched
    assert await queues.renew(600_000, [current]) == []


async def test_renew_leases_names_a_lapsed_lease_nobody_holds(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    [claim] = await claim_all(queues)
    await redis.delete(keys.arq_in_progress("j1"))
    assert await queues.renew(600_000, [claim]) == ["j1"]
    assert not await redis.exists(keys.arq_in_progress("j1"))  # not taken back behind a claim's back


async def test_renew_leases_replies_a_list_with_or_without_jobs(redis: ArqRedis) -> None:
    assert decode_renew_leases(await redis.eval(lua.RENEW_LEASES, 0, 30_000)) == []
    assert decode_renew_leases(await redis.eval(lua.RENEW_LEASES, 0, 30_000, "nobody", Q, "", "7")) == [
        "nobody"
    ]
