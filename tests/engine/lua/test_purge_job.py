"""purge_job.lua: one of a tenant's jobs deleted with every trace of it."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, decode_purge_job
from tests.engine.lua.steps import claimed, ended, job_call, submitted

Q = keys.DEFAULT_QUEUE


async def purge(redis: ArqRedis, job_id: str, tenant: str = "acme") -> bool:
    return decode_purge_job(await redis.eval(lua.PURGE_JOB, 0, job_id, tenant))


async def test_purge_job_deletes_a_waiting_job_and_every_trace_of_it(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1", tenant="acme")
    await queues.submit(job_call("child", tenant="acme", depends_on=("j1",)))
    await redis.rpush(keys.job_attempts("j1"), "{}")
    assert await purge(redis, "j1") is True
    assert not await redis.exists(
        keys.arq_job("j1"), keys.job_meta("j1"), keys.dependents("j1"), keys.job_attempts("j1")
    )
    for queue_set in (keys.arq_queue(Q), keys.ready(Q)):
        assert await redis.zscore(queue_set, "j1") is None


async def test_purge_job_deletes_an_ended_job(queues: JobQueues, redis: ArqRedis) -> None:
    await ended(queues, "j1")
    assert await purge(redis, "j1", keys.DEFAULT_TENANT) is True
    assert not await redis.exists(keys.arq_result("j1"), keys.job_meta("j1"))


async def test_purge_job_deletes_a_running_jobs_records_and_asks_it_to_abort(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await claimed(queues, "j1", tenant="acme")
    assert await purge(redis, "j1") is True
    assert not await redis.exists(keys.job_meta("j1"), keys.arq_job("j1"))  # so its end writes nothing
    assert await redis.zscore(keys.ABORT_SET, "j1") is not None
    assert await redis.zscore(keys.running(Q), "j1") is not None  # its worker still releases it


async def test_purge_job_answers_false_for_another_tenants_job_and_writes_nothing(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "theirs", tenant="globex")
    assert await purge(redis, "theirs") is False
    assert await redis.exists(keys.arq_job("theirs"), keys.job_meta("theirs")) == 2


async def test_purge_job_answers_false_for_an_unknown_job(redis: ArqRedis) -> None:
    assert await purge(redis, "nobody") is False
