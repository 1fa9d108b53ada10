"""forget_idempotency_key.lua: a deleted job's Idempotency-Key record forgotten, unless it changed."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import decode_forget_idempotency_key

RECORD = keys.idempotency("acme", "key-1")


async def forget(redis: ArqRedis, value: str) -> bool:
    return decode_forget_idempotency_key(await redis.eval(lua.FORGET_IDEMPOTENCY_KEY, 1, RECORD, value))


async def test_forget_idempotency_key_deletes_a_record_unchanged_since_read(redis: ArqRedis) -> None:
    await redis.set(RECORD, "j1 hash")
    assert await forget(redis, "j1 hash") is True
    assert not await redis.exists(RECORD)


async def test_forget_idempotency_key_keeps_a_record_a_new_submit_took(redis: ArqRedis) -> None:
    await redis.set(RECORD, "j2 hash")
    assert await forget(redis, "j1 hash") is False
    assert await redis.get(RECORD) == b"j2 hash"


async def test_forget_idempotency_key_answers_false_for_a_record_gone(redis: ArqRedis) -> None:
    assert await forget(redis, "j1 hash") is False
