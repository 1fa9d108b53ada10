"""settle_dependents.lua: the dependents of a job that ended, released when it succeeded, else returned to
be cancelled; the job leaves the settling set once none are left. A step at a time, however many."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues, Settlement
from tests.engine.lua.steps import claimed, job_call, submitted

Q = keys.DEFAULT_QUEUE


async def with_child(queues: JobQueues, *parents: str) -> None:
    assert (await queues.submit(job_call("child", depends_on=parents))).outcome == "created"


async def end(queues: JobQueues, job_id: str, outcome: str) -> None:
    claim = await claimed(queues, job_id)
    await with_child(queues, job_id)
    reply = await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome=outcome)
    assert reply == "settle"


async def test_settle_dependents_places_the_dependents_of_a_job_that_succeeded(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await end(queues, "parent", "succeeded")
    assert await queues.settle("parent") == Settlement(done=True, to_cancel=[])
    assert await redis.zrange(keys.ready(Q), 0, -1) == [b"child"]
    assert await redis.hget(keys.job_meta("child"), "waiting_for") is None
    assert not await redis.exists(keys.dependents("parent"))
    assert await redis.zscore(keys.SETTLING, "parent") is None


async def test_settle_dependents_keeps_a_dependent_waiting_for_another_parent(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "first")
    await submitted(queues, "second")
    await with_child(queues, "first", "second")
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert await queues.settle("first") == Settlement(done=True, to_cancel=[])
    assert await redis.hget(keys.job_meta("child"), "waiting_for") == b"1"
    assert await redis.zscore(keys.ready(Q), "child") is None


async def test_settle_dependents_returns_the_dependents_of_a_job_that_failed(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await end(queues, "parent", "failed")
    assert await queues.settle("parent") == Settlement(done=False, to_cancel=["child"])
    assert await redis.zscore(keys.SETTLING, "parent") is not None  # until they are cancelled
    assert await redis.zscore(keys.ready(Q), "child") is None


async def test_settle_dependents_lets_the_job_go_once_its_dependents_are_cancelled(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await end(queues, "parent", "failed")
    await redis.srem(keys.dependents("parent"), "child")
    assert await queues.settle("parent") == Settlement(done=True, to_cancel=[])
    assert await redis.zscore(keys.SETTLING, "parent") is None


async def test_settle_dependents_places_no_dependent_that_was_cancelled_meanwhile(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "parent")
    await with_child(queues, "parent")
    assert await queues.cancel_waiting("child", message="no", retention_ms=60_000) == "cancelled"
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert await queues.settle("parent") == Settlement(done=True, to_cancel=[])
    assert await redis.zcard(keys.ready(Q)) == 0


async def test_a_large_fan_out_is_settled_a_step_at_a_time(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "parent")
    children = [f"child-{n}" for n in range(25)]
    for child in children:
        assert (await queues.submit(job_call(child, depends_on=("parent",)))).outcome == "created"
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    steps = [await queues.settle("parent", step=10) for _ in range(3)]
    assert [step.done for step in steps] == [False, False, True]
    assert await redis.zcard(keys.ready(Q)) == 25
    assert await redis.zscore(keys.SETTLING, "parent") is None


async def test_the_dependents_to_cancel_come_a_step_at_a_time(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "parent")
    for n in range(25):
        assert (await queues.submit(job_call(f"child-{n}", depends_on=("parent",)))).outcome == "created"
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="failed")
    first = await queues.settle("parent", step=10)
    assert (first.done, len(first.to_cancel)) == (False, 10)
    assert await redis.scard(keys.dependents("parent")) == 25  # the caller takes them out once cancelled
