"""The engine's function library: called with FCALL, loaded where the server lacks it, and a server too
old for functions named as such."""

from __future__ import annotations

from typing import Any

import pytest
from arq import ArqRedis
from redis.exceptions import ResponseError

from jobs.engine import keys
from jobs.engine.functions import LuaFunction, ServerTooOld, load_library
from jobs.engine.lua import HOT_PATH
from jobs.engine.queue_ops import JobQueues, ReplicaAcks, ReplicasBehind
from tests.engine.lua.steps import job_call


async def test_the_hot_path_runs_as_functions_not_scripts(redis: ArqRedis) -> None:
    function = LuaFunction(redis, HOT_PATH, "report_progress")
    await function.load()
    await redis.config_resetstat()
    await function(args=["no-such-job", "{}", "token"])
    stats = await redis.info("commandstats")
    assert stats["cmdstat_fcall"]["calls"] == 1
    assert "cmdstat_evalsha" not in stats


async def test_a_call_on_a_server_without_the_library_loads_it_and_answers(redis: ArqRedis) -> None:
    function = LuaFunction(redis, HOT_PATH, "report_progress")
    await load_library(redis, HOT_PATH)
    await redis.function_delete(HOT_PATH.name)  # as after a restart without persistence
    assert await function(args=["no-such-job", "{}", "token"]) == 0
    assert await redis.function_list(library=HOT_PATH.name) != []


async def test_loading_a_library_the_server_has_changes_nothing(redis: ArqRedis) -> None:
    await load_library(redis, HOT_PATH)
    before = await redis.function_dump()
    await load_library(redis, HOT_PATH)
    assert await redis.function_dump() == before


class WithoutFunctions:
    """Stands in for a Redis older than 7.0, which this machine does not have: it answers FCALL and
    FUNCTION as such a server does (the only stand-in in these tests)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        raise ResponseError(f"unknown command '{args[0]}', with args beginning with: ")

    async def function_load(self, code: str, replace: bool = False) -> Any:
        raise ResponseError("unknown command 'FUNCTION', with args beginning with: 'LOAD' ")


async def test_a_server_older_than_redis_7_is_named_as_such() -> None:
    old: Any = WithoutFunctions()
    with pytest.raises(ServerTooOld, match=r"Redis 7\.0 or later"):
        await LuaFunction(old, HOT_PATH, "claim")(args=[])
    with pytest.raises(ServerTooOld, match=r"Redis 7\.0 or later"):
        await load_library(old, HOT_PATH)


async def test_a_submit_that_waits_for_replicas_loads_a_missing_library_and_is_written(
    redis: ArqRedis,
) -> None:
    """The submit sent in one pipeline with its WAIT: a server without the library refuses the whole
    pipeline's call, and the submit is sent again once the library is loaded (this server has no
    replica, so the WAIT then finds none in its millisecond)."""
    queues = JobQueues(redis, acks=ReplicaAcks(replicas=1, timeout_ms=1))
    await load_library(redis, HOT_PATH)
    await redis.function_delete(HOT_PATH.name)
    with pytest.raises(ReplicasBehind):
        await queues.submit(job_call("waits-for-replicas"))
    assert await redis.exists(keys.arq_job("waits-for-replicas")) == 1
