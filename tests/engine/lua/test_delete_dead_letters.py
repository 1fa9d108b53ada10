"""delete_dead_letters.lua: dead letters deleted with their records, only those still dead letters."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import decode_delete_dead_letters

TENANT = "acme"


def records(job_id: str) -> list[str]:
    return [keys.arq_result(job_id), keys.job_meta(job_id), keys.job_attempts(job_id)]


async def dead_letter(redis: ArqRedis, job_id: str) -> None:
    await redis.zadd(keys.dead_letters(TENANT), {job_id: 1})
    await redis.set(keys.arq_result(job_id), "r")
    await redis.hset(keys.job_meta(job_id), "type", "diag.fail")
    await redis.rpush(keys.job_attempts(job_id), "{}")


async def delete(redis: ArqRedis, *job_ids: str) -> int:
    record_keys = [key for job_id in job_ids for key in records(job_id)]
    reply = await redis.eval(
        lua.DELETE_DEAD_LETTERS, 1 + len(record_keys), keys.dead_letters(TENANT), *record_keys, *job_ids
    )
    return decode_delete_dead_letters(reply)


async def test_delete_dead_letters_deletes_them_with_their_records(redis: ArqRedis) -> None:
    await dead_letter(redis, "a")
    await dead_letter(redis, "b")
    assert await delete(redis, "a", "b") == 2
    assert not await redis.exists(keys.dead_letters(TENANT), *records("a"), *records("b"))


async def test_delete_dead_letters_spares_the_records_of_a_job_no_longer_a_dead_letter(
    redis: ArqRedis,
) -> None:
    await dead_letter(redis, "a")
    await dead_letter(redis, "replayed")
    await redis.zrem(keys.dead_letters(TENANT), "replayed")  # a concurrent replay took it first
    assert await delete(redis, "a", "replayed") == 1
    assert await redis.exists(*records("replayed")) == 3


async def test_delete_dead_letters_answers_zero_for_none(redis: ArqRedis) -> None:
    assert await delete(redis, "nobody") == 0
