"""arq_differences.lua: how many entries of each ARQ queue jobsvc did not write (ARQ's own producers'
jobs), read by every worker's look: ZCARD minus jobsvc's count, with the server's time."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.arq_intake import decode_arq_differences
from jobs.engine.queue_ops import JobQueues
from tests.engine.lua.steps import now_ms, submitted

QUEUES = ["critical", keys.DEFAULT_QUEUE, "bulk"]


async def differences(redis: ArqRedis) -> tuple[int, dict[str, int]]:
    script = redis.register_script(scripts.ARQ_DIFFERENCES)
    return decode_arq_differences(await script(args=QUEUES), QUEUES)


async def test_empty_queues_differ_by_nothing_and_the_reply_carries_the_servers_time(redis: ArqRedis) -> None:
    before = now_ms()
    at, found = await differences(redis)
    assert before - 1000 <= at <= now_ms() + 1000
    assert found == {"critical": 0, keys.DEFAULT_QUEUE: 0, "bulk": 0}


async def test_jobsvcs_own_jobs_are_no_difference(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    await submitted(queues, "j2", queue="bulk")
    assert (await differences(redis))[1] == {"critical": 0, keys.DEFAULT_QUEUE: 0, "bulk": 0}


async def test_each_entry_of_arqs_own_client_is_one_in_its_queue(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "mine")
    await redis.enqueue_job("diag.noop", _job_id="theirs")
    await redis.enqueue_job("diag.noop", _job_id="theirs-too", _queue_name=keys.arq_queue("critical"))
    assert (await differences(redis))[1] == {"critical": 1, keys.DEFAULT_QUEUE: 1, "bulk": 0}
