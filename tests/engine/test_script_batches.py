"""Function calls made together go to Redis together, and each caller still gets its own reply or error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from jobs.engine.functions import LuaFunction
from jobs.engine.lua.loader import FunctionLibrary
from jobs.engine.script_batches import ScriptBatcher

ECHO = FunctionLibrary(
    name="jobsvc_test_echo",
    text=(
        "#!lua name=jobsvc_test_echo\n"
        "redis.register_function('jobsvc_test_echo', function(_, ARGV)\n"
        "  if ARGV[1] == 'fail' then return redis.error_reply('refused ' .. ARGV[2]) end\n"
        "  return ARGV[1]\n"
        "end)\n"
    ),
    functions={"echo": "jobsvc_test_echo"},
)


def echo_batcher(redis: ArqRedis) -> ScriptBatcher:
    return ScriptBatcher(LuaFunction(redis, ECHO, "echo"))


class CountedPipelines:
    """Counts the pipelines a batcher sends (one per round trip)."""

    def __init__(self, batcher: ScriptBatcher) -> None:
        self.sent = 0
        send = batcher._execute

        async def counted(calls: Any) -> list[Any]:
            self.sent += 1
            return await send(calls)

        batcher._execute = counted  # type: ignore[method-assign]


async def test_calls_made_together_share_one_round_trip_and_get_their_own_replies(redis: ArqRedis) -> None:
    batcher = echo_batcher(redis)
    await batcher.call(["loads the library"])
    counted = CountedPipelines(batcher)
    replies = await asyncio.gather(*(batcher.call([f"call-{i}"]) for i in range(50)))
    assert replies == [f"call-{i}".encode() for i in range(50)]
    assert counted.sent == 1


async def test_a_call_alone_is_sent_at_once(redis: ArqRedis) -> None:
    batcher = echo_batcher(redis)
    assert await asyncio.wait_for(batcher.call(["alone"]), timeout=1) == b"alone"


async def test_an_error_fails_its_own_call_only(redis: ArqRedis) -> None:
    batcher = echo_batcher(redis)
    results = await asyncio.gather(
        batcher.call(["ok-1"]), batcher.call(["fail", "this"]), batcher.call(["ok-2"]), return_exceptions=True
    )
    assert (results[0], results[2]) == (b"ok-1", b"ok-2")
    assert isinstance(results[1], ResponseError)
    assert "refused this" in str(results[1])


async def test_a_server_that_lost_the_library_gets_it_again(redis: ArqRedis) -> None:
    batcher = echo_batcher(redis)
    assert await batcher.call(["first"]) == b"first"
    await redis.function_delete(ECHO.name)  # as after a restart without persistence
    counted = CountedPipelines(batcher)
    assert await asyncio.gather(batcher.call(["a"]), batcher.call(["b"])) == [b"a", b"b"]
    assert counted.sent == 2  # refused (no such function), then sent again once the library is loaded


async def test_a_lost_connection_fails_every_call_of_its_batch(redis: ArqRedis) -> None:
    batcher = echo_batcher(ArqRedis.from_url("redis://127.0.0.1:1"))  # nothing listens there
    results = await asyncio.gather(batcher.call(["a"]), batcher.call(["b"]), return_exceptions=True)
    assert all(isinstance(result, RedisConnectionError) for result in results), results
    with pytest.raises(RedisConnectionError):
        await batcher.call(["c"])
