"""unmark_replayed.lua: a replay that could not be enqueued is undone, so the old job can run again."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import decode_unmark_replayed

TENANT = "acme"


async def unmark(redis: ArqRedis, old_id: str, new_id: str, score: str) -> None:
    reply = await redis.eval(
        lua.UNMARK_REPLAYED, 2, keys.job_meta(old_id), keys.dead_letters(TENANT), old_id, new_id, score
    )
    decode_unmark_replayed(reply)


async def test_unmark_replayed_removes_the_mark_and_restores_the_dead_letter(redis: ArqRedis) -> None:
    await redis.hset(keys.job_meta("old"), "replayed_as", "new")
    await unmark(redis, "old", "new", "1700000000000")
    assert await redis.hget(keys.job_meta("old"), "replayed_as") is None
    assert await redis.zscore(keys.dead_letters(TENANT), "old") == 1_700_000_000_000


async def test_unmark_replayed_leaves_another_replays_mark(redis: ArqRedis) -> None:
    await redis.hset(keys.job_meta("old"), "replayed_as", "other")
    await unmark(redis, "old", "new", "")
    assert await redis.hget(keys.job_meta("old"), "replayed_as") == b"other"


async def test_unmark_replayed_makes_no_dead_letter_of_a_job_that_was_none(redis: ArqRedis) -> None:
    await redis.hset(keys.job_meta("old"), "replayed_as", "new")
    await unmark(redis, "old", "new", "")
    assert not await redis.exists(keys.dead_letters(TENANT))
