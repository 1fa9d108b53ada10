"""mark_replayed.lua: a dead job marked as run again, and out of the dead letters, before its replay is
enqueued; a second replay is refused."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, ReplayMark, decode_mark_replayed
from tests.engine.lua.steps import claimed

TENANT = "acme"


async def buried(queues: JobQueues, job_id: str) -> None:
    claim = await claimed(queues, job_id, tenant=TENANT)
    await queues.release(
        claim, ended=True, result=b"r", result_ttl_ms=600_000, outcome="failed", bury_for_ms=600_000
    )


async def mark(redis: ArqRedis, old_id: str, new_id: str) -> ReplayMark:
    reply = await redis.eval(
        lua.MARK_REPLAYED,
        3,
        keys.job_meta(old_id),
        keys.arq_result(old_id),
        keys.dead_letters(TENANT),
        old_id,
        new_id,
    )
    return decode_mark_replayed(reply)


async def test_mark_replayed_marks_a_dead_letter_and_takes_it_out(queues: JobQueues, redis: ArqRedis) -> None:
    await buried(queues, "old")
    score = await redis.zscore(keys.dead_letters(TENANT), "old")
    assert await mark(redis, "old", "new") == ("marked", str(int(score or 0)))
    assert await redis.hget(keys.job_meta("old"), "replayed_as") == b"new"
    assert await redis.zscore(keys.dead_letters(TENANT), "old") is None


async def test_mark_replayed_marks_an_ended_job_that_is_no_dead_letter(queues: JobQueues) -> None:
    claim = await claimed(queues, "old", tenant=TENANT)
    await queues.release(claim, ended=True, result=b"r", result_ttl_ms=600_000, outcome="cancelled")
    assert await mark(queues.redis, "old", "new") == ("marked", "")


async def test_mark_replayed_refuses_a_job_that_ran_again_already(queues: JobQueues, redis: ArqRedis) -> None:
    await buried(queues, "old")
    await mark(redis, "old", "first")
    assert await mark(redis, "old", "second") == ("replayed", "first")
    assert await redis.hget(keys.job_meta("old"), "replayed_as") == b"first"


async def test_mark_replayed_answers_gone_for_a_job_whose_result_expired(redis: ArqRedis) -> None:
    assert await mark(redis, "expired", "new") == ("gone", "")
    assert not await redis.exists(keys.job_meta("expired"))


async def test_mark_replayed_gives_a_meta_it_recreates_no_longer_life_than_the_result(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await buried(queues, "old")
    await redis.delete(keys.job_meta("old"))
    await mark(redis, "old", "new")
    meta_ttl, result_ttl = await redis.pttl(keys.job_meta("old")), await redis.pttl(keys.arq_result("old"))
    assert 0 < meta_ttl <= 600_000
    assert abs(meta_ttl - result_ttl) < 1_000  # the result's, read a moment apart
