"""read_jobs.lua, through ``records.read_snapshots``: every job's records in one call, a waiting job's place
in its own queue, another tenant's job read as an unknown id, and many ids in calls of ``READ_CHUNK``."""

from __future__ import annotations

import pytest
from arq import ArqRedis
from arq.jobs import serialize_result

from jobs.engine import keys
from jobs.engine.codec import serialize
from jobs.engine.queue_ops import JobQueues, Quotas
from jobs.engine.records import READ_CHUNK, read_snapshots
from jobs.status import JobStatus
from tests.engine.lua.steps import claimed, job_call, now_ms, submitted


@pytest.fixture(autouse=True)
async def script_loaded(redis: ArqRedis) -> None:
    """The script in the server's cache: a first call finds it missing and loads it."""
    await read_snapshots(redis, ["warm-up"])


async def ended_with(queues: JobQueues, job_id: str, *, success: bool) -> None:
    """A job claimed and ended with ARQ's own result record: a result, or an error."""
    claim = await claimed(queues, job_id)
    record = serialize_result(
        "diag.noop", (), {}, 1, now_ms(), success, {} if success else {"type": "Boom", "message": "no"},
        now_ms(), now_ms(), f"{job_id}:diag.noop", keys.arq_queue(keys.DEFAULT_QUEUE), job_id,
        serializer=serialize,
    )  # fmt: skip
    assert record is not None
    outcome = "succeeded" if success else "failed"
    await queues.release(claim, ended=True, result=record, result_ttl_ms=60_000, outcome=outcome)


async def script_calls(redis: ArqRedis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats[name]["calls"]) for name in ("cmdstat_evalsha", "cmdstat_eval") if name in stats)


async def test_each_job_reads_as_its_records_say_in_one_call(queues: JobQueues, redis: ArqRedis) -> None:
    await ended_with(queues, "succeeded", success=True)
    await ended_with(queues, "failed", success=False)
    await claimed(queues, "running")
    await submitted(queues, "waiting")
    calls = await script_calls(redis)

    snapshots = await read_snapshots(redis, ["waiting", "running", "succeeded", "failed", "nobody"])

    assert await script_calls(redis) == calls + 1
    statuses = [snapshot.status if snapshot else None for snapshot in snapshots]
    assert statuses == [JobStatus.queued, JobStatus.in_progress, JobStatus.succeeded, JobStatus.failed, None]
    assert [snapshot.id for snapshot in snapshots if snapshot] == [
        "waiting",
        "running",
        "succeeded",
        "failed",
    ]


async def test_a_waiting_job_is_placed_by_its_score_in_its_own_queue(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """A deferred job is told from a queued one by its ARQ queue's score: read from the job's own queue."""
    later = now_ms() + 60_000
    await submitted(queues, "due")
    await submitted(queues, "later", run_at_ms=later)
    await submitted(queues, "later_elsewhere", run_at_ms=later, queue="critical")

    snapshots = await read_snapshots(redis, ["due", "later", "later_elsewhere"])

    assert [(snapshot.status, snapshot.queue) if snapshot else None for snapshot in snapshots] == [
        (JobStatus.queued, keys.DEFAULT_QUEUE),
        (JobStatus.deferred, keys.DEFAULT_QUEUE),
        (JobStatus.deferred, "critical"),
    ]


async def test_another_tenants_job_reads_as_an_unknown_id_with_the_same_commands(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "theirs", tenant="globex")
    await submitted(queues, "ours", tenant="acme")

    async def commands_of(job_id: str) -> dict[str, int]:
        before = await redis.info("commandstats")
        assert await read_snapshots(redis, [job_id], tenant="acme") == [None]
        after = await redis.info("commandstats")
        return {name: int(after[name]["calls"]) - int(before.get(name, {}).get("calls", 0)) for name in after}

    theirs, unknown = await commands_of("theirs"), await commands_of("nobody")
    theirs.pop("cmdstat_info", None), unknown.pop("cmdstat_info", None)
    assert theirs == unknown
    assert [
        snapshot.id if snapshot else None for snapshot in await read_snapshots(redis, ["ours"], tenant="acme")
    ] == ["ours"]


async def test_many_ids_are_read_in_calls_of_a_chunk_each_in_their_order(
    queues: JobQueues, redis: ArqRedis
) -> None:
    ids = [f"job{i:03d}" for i in range(2 * READ_CHUNK + 1)]
    calls = [job_call(job_id) for job_id in ids]
    for start in range(0, len(calls), 100):
        await queues.submit_many(
            calls[start : start + 100], quotas=Quotas(max_open_jobs=1000, submits_per_s=1000)
        )
    wanted = list(reversed(ids))
    before = await script_calls(redis)

    snapshots = await read_snapshots(redis, wanted)

    assert await script_calls(redis) == before + 3
    assert [snapshot.id if snapshot else None for snapshot in snapshots] == wanted
    assert {snapshot.status for snapshot in snapshots if snapshot} == {JobStatus.queued}
    assert await redis.zcard(keys.arq_queue(keys.DEFAULT_QUEUE)) == len(ids)
