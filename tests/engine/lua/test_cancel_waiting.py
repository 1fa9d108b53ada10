"""cancel_waiting.lua: a job that has not started is cancelled in place; every other answer writes nothing."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, decode_cancel_waiting
from tests.engine.lua.steps import claimed, job_call, now_ms, submitted

Q = keys.DEFAULT_QUEUE


async def cancel(queues: JobQueues, job_id: str) -> str:
    return await queues.cancel_waiting(job_id, message="not wanted", retention_ms=60_000)


async def test_cancel_waiting_takes_a_waiting_job_out_of_every_queue_with_its_result(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1", tenant="acme")
    await submitted(queues, "later", run_at_ms=now_ms() + 60_000)
    assert await cancel(queues, "j1") == "cancelled"
    assert await cancel(queues, "later") == "cancelled"
    for queue_set in (keys.arq_queue(Q), keys.ready(Q), keys.deferred(Q)):
        assert await redis.zcard(queue_set) == 0
    assert await redis.exists(keys.arq_result("j1"))
    assert await redis.zcard(keys.ABORT_SET) == 0  # nothing for the workers to read
    assert await redis.hget(keys.job_meta("j1"), "outcome") == b"cancelled"
    assert await redis.get(keys.tenant_open_jobs("acme")) == b"0"
    assert 0 < await redis.pttl(keys.arq_job("j1")) <= 60_000


async def test_cancel_waiting_leaves_dependents_to_be_settled(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "parent")
    await queues.submit(job_call("child", depends_on=("parent",)))
    assert await cancel(queues, "parent") == "cancelled"
    assert await redis.zscore(keys.SETTLING, "parent") is not None


async def test_cancel_waiting_answers_finished_for_a_job_with_a_result(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    await cancel(queues, "j1")
    result = await redis.get(keys.arq_result("j1"))
    assert await cancel(queues, "j1") == "finished"
    assert await redis.get(keys.arq_result("j1")) == result


async def test_cancel_waiting_answers_running_for_a_claimed_job(queues: JobQueues, redis: ArqRedis) -> None:
    await claimed(queues, "j1")
    assert await cancel(queues, "j1") == "running"
    assert not await redis.exists(keys.arq_result("j1"))
    assert await redis.zscore(keys.arq_queue(Q), "j1") is not None


async def test_cancel_waiting_answers_missing_for_a_job_in_no_queue(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    await redis.zrem(keys.arq_queue(Q), "j1")
    reply = await redis.eval(lua.CANCEL_WAITING, 0, "j1", b"record", 60_000)
    assert decode_cancel_waiting(reply) == "missing"
    assert not await redis.exists(keys.arq_result("j1"))
    assert await cancel(queues, "nobody") == "missing"  # no record: answered without the script
