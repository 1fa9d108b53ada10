"""find_foreign.lua: one bounded step of looking for the jobs ARQ's own producers put in a jobsvc queue,
in a window of due times or a pass of ZSCAN, one worker per queue at a time."""

from __future__ import annotations

from typing import Any

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.arq_intake import FindReply, decode_find_foreign
from jobs.engine.queue_ops import JobQueues
from tests.engine.lua.steps import now_ms, submitted

Q = keys.DEFAULT_QUEUE
LOCK_MS = 5_000
REACH_MS = 2_000


async def find(
    redis: ArqRedis, mode: str, *args: str | int, worker: str = "w1", step: int = 500
) -> FindReply | None:
    script = redis.register_script(scripts.FIND_FOREIGN)
    return decode_find_foreign(await script(args=[Q, worker, LOCK_MS, step, mode, *args]), Q)


async def window(
    redis: ArqRedis, *, offset: int = 0, worker: str = "w1", step: int = 500
) -> FindReply | None:
    return await find(redis, "window", "", "", REACH_MS, offset, worker=worker, step=step)


async def read(redis: ArqRedis, **options: Any) -> FindReply:
    """A window step that was not busy."""
    reply = await window(redis, **options)
    assert reply is not None, "busy"
    return reply


async def test_a_window_finds_arqs_own_entries_with_their_records_and_not_jobsvcs(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "mine")
    await redis.enqueue_job("diag.noop", _job_id="theirs")
    found = await read(redis)
    assert [job.job_id for job in found.found] == ["theirs"]
    theirs = found.found[0]
    assert theirs.record == await redis.get(keys.arq_job("theirs"))
    assert abs(theirs.due_ms - now_ms()) < 1_000
    assert 0 <= await redis.pttl(keys.arq_job("theirs")) <= theirs.ttl_ms  # the record's time left
    assert (found.difference, found.following, found.counted) == (1, "", 0)
    assert (found.highest or 0) - (found.lowest or 0) == 2 * REACH_MS


async def test_an_entry_whose_record_expired_is_found_with_none(redis: ArqRedis) -> None:
    await redis.enqueue_job("diag.noop", _job_id="theirs")
    await redis.delete(keys.arq_job("theirs"))
    found = await read(redis)
    assert [(job.job_id, job.record) for job in found.found] == [("theirs", b"")]


async def test_a_window_past_its_step_says_where_to_go_on_and_keeps_the_queue(redis: ArqRedis) -> None:
    for n in range(3):
        await redis.enqueue_job("diag.noop", _job_id=f"theirs-{n}")
    first = await read(redis, step=2)
    assert (len(first.found), first.following) == (2, "2")
    assert await window(redis, worker="w2") is None  # busy: the first worker holds the queue
    rest = await read(redis, offset=2, step=2)
    assert (len(rest.found), rest.following) == (1, "")
    assert await redis.exists(keys.intake_lock(Q)) == 0  # the last step gave the queue up


async def test_a_pass_of_zscan_finds_them_whatever_their_due_time(redis: ArqRedis) -> None:
    await redis.enqueue_job("diag.noop", _job_id="later", _defer_by=3_600)
    assert (await read(redis)).found == []  # an hour out of the window
    passed = await find(redis, "scan", "0")
    assert passed is not None
    assert [job.job_id for job in passed.found] == ["later"]
    assert (passed.following, passed.lowest, passed.highest) == ("", None, None)


async def test_an_entry_jobsvc_wrote_before_it_counted_its_own_is_counted_not_found(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "old")
    await redis.hdel(keys.job_meta("old"), keys.ARQ_ENTRY_FIELD)  # as an earlier version wrote it
    await redis.hincrby(keys.ARQ_OWNED, Q, -1)
    found = await read(redis)
    assert (found.found, found.counted, found.difference) == ([], 1, 0)
    assert await redis.hget(keys.job_meta("old"), keys.ARQ_ENTRY_FIELD) == Q.encode()


async def test_another_workers_look_at_the_queue_makes_it_busy(redis: ArqRedis) -> None:
    await redis.set(keys.intake_lock(Q), "w2", px=LOCK_MS)
    assert await window(redis) is None
    assert await redis.get(keys.intake_lock(Q)) == b"w2"
