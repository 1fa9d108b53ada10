"""settle_dependents.lua: the dependents of a job that ended, released when it succeeded, else returned to
be cancelled; the job leaves the settling set once none are left."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues
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
    assert await queues.settle("parent") == []
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
    assert await queues.settle("first") == []
    assert await redis.hget(keys.job_meta("child"), "waiting_for") == b"1"
    assert await redis.zscore(keys.ready(Q), "child") is None


async def test_settle_dependents_returns_the_dependents_of_a_job_that_failed(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await end(queues, "parent", "failed")
    assert await queues.settle("parent") == ["child"]
    assert await redis.zscore(keys.SETTLING, "parent") is not None  # until they are cancelled
    assert await redis.zscore(keys.ready(Q), "child") is None


async def test_settle_dependents_lets_the_job_go_once_its_dependents_are_cancelled(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await end(queues, "parent", "failed")
    await redis.srem(keys.dependents("parent"), "child")
    assert await queues.settle("parent") == []
    assert await redis.zscore(keys.SETTLING, "parent") is None


async def test_settle_dependents_places_no_dependent_that_was_cancelled_meanwhile(
    queues: JobQueues, redis: ArqRedis
) -> None:
    claim = await claimed(queues, "parent")
    await with_child(queues, "parent")
    assert await queues.cancel_waiting("child", message="no", retention_ms=60_000) == "cancelled"
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=60_000, outcome="succeeded")
    assert await queues.settle("parent") == []
    assert await redis.zcard(keys.ready(Q)) == 0
