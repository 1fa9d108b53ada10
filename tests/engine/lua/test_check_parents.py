"""check_parents.lua: whether jobs of a tenant may depend on these parents, without writing anything."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine.queue_ops import JobQueues
from tests.engine.lua.steps import claimed, ended, submitted


async def test_check_parents_accepts_the_tenants_waiting_running_and_succeeded_jobs_and_writes_nothing(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await ended(queues, "succeeded")
    await claimed(queues, "running")
    await submitted(queues, "waiting")
    written = await redis.dbsize()
    assert await queues.check_parents("default", [["succeeded", "running", "waiting"], []]) == [
        ("ok", ""),
        ("ok", ""),
    ]
    assert await redis.dbsize() == written


async def test_check_parents_refuses_a_missing_parent_or_another_tenants(queues: JobQueues) -> None:
    await submitted(queues, "theirs", tenant="globex")
    verdicts = await queues.check_parents("acme", [["nobody"], ["theirs"]])
    assert verdicts == [("unknown_parent", "nobody"), ("unknown_parent", "theirs")]


async def test_check_parents_refuses_a_parent_that_failed_or_was_cancelled(queues: JobQueues) -> None:
    await ended(queues, "failed", outcome="failed")
    await submitted(queues, "cancelled")
    await queues.cancel_waiting("cancelled", message="no", retention_ms=60_000)
    verdicts = await queues.check_parents("default", [["failed"], ["cancelled"]])
    assert verdicts == [("parent_failed", "failed"), ("parent_cancelled", "cancelled")]
