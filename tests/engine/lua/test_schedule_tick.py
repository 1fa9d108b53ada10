"""schedule_tick.lua: a schedule's job for one tick, exactly once however many workers try."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues
from tests.engine.lua.steps import job_call, now_ms, submitted

TICK = 1_700_000_000_000


async def tick(queues: JobQueues, tick_ms: int, *, overlap: bool = False, job_id: str | None = None) -> str:
    call = job_call(job_id or f"nightly-{tick_ms}", run_at_ms=now_ms())
    return await queues.schedule_tick("nightly", tick_ms, overlap=overlap, call=call)


async def test_schedule_tick_creates_the_ticks_job_and_records_it(queues: JobQueues, redis: ArqRedis) -> None:
    assert await tick(queues, TICK) == "created"
    state = await redis.hgetall(keys.schedule_state("nightly"))
    assert state[b"tick"] == str(TICK).encode()
    assert state[b"job_id"] == f"nightly-{TICK}".encode()
    assert await redis.exists(keys.arq_job(f"nightly-{TICK}"))


async def test_schedule_tick_answers_taken_for_a_tick_enqueued_already_or_an_earlier_one(
    queues: JobQueues, redis: ArqRedis
) -> None:
    assert await tick(queues, TICK, overlap=True) == "created"
    assert await tick(queues, TICK, overlap=True) == "taken"
    assert await tick(queues, TICK - 60_000, overlap=True) == "taken"
    assert await redis.zcard(keys.arq_queue(keys.DEFAULT_QUEUE)) == 1


async def test_schedule_tick_skips_a_tick_while_the_previous_run_has_not_ended(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await tick(queues, TICK)
    assert await tick(queues, TICK + 60_000) == "skipped"
    state = await redis.hgetall(keys.schedule_state("nightly"))
    assert (state[b"skipped"], state[b"skipped_at"]) == (b"1", str(TICK + 60_000).encode())
    assert not await redis.exists(keys.arq_job(f"nightly-{TICK + 60_000}"))


async def test_schedule_tick_lets_a_schedule_that_may_overlap_run_beside_its_previous_run(
    queues: JobQueues,
) -> None:
    await tick(queues, TICK)
    assert await tick(queues, TICK + 60_000, overlap=True) == "created"


async def test_schedule_tick_answers_exists_when_the_ticks_job_id_is_taken(queues: JobQueues) -> None:
    await submitted(queues, "taken-id")
    assert await tick(queues, TICK, job_id="taken-id") == "exists"
