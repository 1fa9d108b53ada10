"""update_meta.lua: fields set on a job's meta only while the meta exists."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, decode_update_meta
from tests.engine.lua.steps import submitted


async def test_update_meta_sets_the_fields_of_an_existing_job(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    reply = await redis.eval(lua.UPDATE_META, 1, keys.job_meta("j1"), "progress", "{}", "last_error", "boom")
    assert decode_update_meta(reply) is True
    assert await redis.hmget(keys.job_meta("j1"), ["progress", "last_error"]) == [b"{}", b"boom"]


async def test_update_meta_writes_nothing_for_a_job_whose_meta_is_gone(redis: ArqRedis) -> None:
    reply = await redis.eval(lua.UPDATE_META, 1, keys.job_meta("deleted"), "progress", "{}")
    assert decode_update_meta(reply) is False
    assert not await redis.exists(keys.job_meta("deleted"))
