"""A Redis that refuses writes (out of memory under ``noeviction``, a read-only replica after a
failover) is unavailable, like one that is down: the API answers 503 with Retry-After and changes
nothing, workers stay up without charging attempts, and both carry on once Redis takes writes again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from arq import ArqRedis
from redis.exceptions import ResponseError

from jobs.engine.connection import redis_unavailable, until_redis_answers
from jobs.engine.functions import LuaFunction
from jobs.engine.lua import HOT_PATH
from service.api.app import create_app
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis
from tests.conftest import ADMIN_KEY, worker_running
from tests.helpers import free_port, serve, wait_for_status

Refusal = Callable[[redis.asyncio.Redis], Awaitable[object]]


async def out_of_memory(admin: redis.asyncio.Redis) -> None:
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", "1")  # every write is over the limit


async def read_only(admin: redis.asyncio.Redis) -> None:
    await admin.replicaof("127.0.0.1", free_port())  # a replica of a primary that is not there


async def take_writes_again(admin: redis.asyncio.Redis) -> None:
    await admin.config_set("maxmemory", "0")
    await admin.replicaof("NO", "ONE")


@asynccontextmanager
async def own_server(tmp_path: Path) -> AsyncIterator[tuple[Settings, redis.asyncio.Redis]]:
    """A server of the test's own (its role and limits change), the settings to use it, and a client
    to change them with."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    admin = redis.asyncio.Redis.from_url(url)
    try:
        yield (
            Settings(
                admin_api_key=ADMIN_KEY,
                redis_url=url,
                diagnostics=True,
                data_dir=tmp_path,
                worker_heartbeat_s=0.2,
            ),
            admin,
        )
    finally:
        await admin.aclose()
        server.stop()


@pytest.mark.parametrize("refuse", [out_of_memory, read_only], ids=["oom", "readonly"])
async def test_the_api_answers_503_while_redis_refuses_writes_and_accepts_again_after(
    tmp_path: Path, refuse: Refusal
) -> None:
    async with own_server(tmp_path) as (settings, admin), serve(create_app(settings)) as http:
        accepted = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
        assert accepted.status_code == 202
        keys_before = await admin.dbsize()

        await refuse(admin)
        refused = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert await admin.dbsize() == keys_before  # nothing was written
        read = await http.get(f"/v1/jobs/{accepted.json()['id']}")  # reads still answer
        assert read.status_code == 200

        await take_writes_again(admin)
        assert (await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})).status_code == 202


@pytest.mark.parametrize("refuse", [out_of_memory, read_only], ids=["oom", "readonly"])
async def test_a_worker_stays_up_while_redis_refuses_writes_and_runs_jobs_after(
    tmp_path: Path, refuse: Refusal
) -> None:
    async with (
        own_server(tmp_path) as (settings, admin),
        worker_running(settings) as (_, running),
        serve(create_app(settings)) as http,
    ):
        job = (await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})).json()
        await wait_for_status(http, job["id"], "succeeded")

        await refuse(admin)
        await asyncio.sleep(2)  # ten heartbeats and claims refused
        assert not running.done(), running

        await take_writes_again(admin)
        after = (await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})).json()
        done = await wait_for_status(http, after["id"], "succeeded", timeout_s=15)
        assert done["attempts"] == 1


@pytest.mark.parametrize("refuse", [out_of_memory, read_only], ids=["oom", "readonly"])
async def test_a_job_that_ends_while_redis_refuses_writes_records_its_end_once_it_takes_them(
    tmp_path: Path, refuse: Refusal
) -> None:
    """Its progress reports are refused meanwhile: dropped, never the job. (Under OOM, Redis lets a
    script whose first write frees memory run, so its end may be recorded at once.)"""
    async with (
        own_server(tmp_path) as (settings, admin),
        worker_running(settings),
        serve(create_app(settings)) as http,
    ):
        sleep = {"type": "diag.sleep", "params": {"seconds": 1.5}}
        job = (await http.post("/v1/jobs", json=sleep)).json()
        await wait_for_status(http, job["id"], "in_progress")
        await refuse(admin)
        await asyncio.sleep(3)  # it reports progress and ends meanwhile

        await take_writes_again(admin)
        done = await wait_for_status(http, job["id"], "succeeded", timeout_s=15)
        assert done["attempts"] == 1
        assert done["result"] == {"slept_s": 1.5}


async def test_progress_reported_while_a_script_keeps_redis_busy_is_dropped_and_the_job_goes_on(
    tmp_path: Path,
) -> None:
    """BUSY (a script running past ``busy-reply-threshold``) is a refusal redis-py raises as a plain
    ResponseError: the progress report it refuses is dropped like any other, and the attempt is not
    failed or charged."""
    async with (
        own_server(tmp_path) as (settings, admin),
        worker_running(settings),
        serve(create_app(settings)) as http,
    ):
        await admin.config_set("busy-reply-threshold", "100")
        sleep = {"type": "diag.sleep", "params": {"seconds": 2}}
        job = (await http.post("/v1/jobs", json=sleep)).json()
        await wait_for_status(http, job["id"], "in_progress")
        assert settings.redis_url is not None
        hog = redis.asyncio.Redis.from_url(settings.redis_url)
        spinning = asyncio.create_task(hog.eval("while true do end", 0))
        try:
            await asyncio.sleep(2.5)  # the job reports progress twice and ends meanwhile
        finally:
            await admin.script_kill()
            with pytest.raises(redis.exceptions.ResponseError, match="killed"):
                await spinning
            await hog.aclose()

        done = await wait_for_status(http, job["id"], "succeeded", timeout_s=15)
        assert (done["attempts"], done["result"]) == (1, {"slept_s": 2})


async def test_a_library_lost_between_its_load_and_a_call_is_waited_out_not_a_failure(
    redis: ArqRedis,
) -> None:
    """A server restarted twice over can lose the engine's functions again after a caller loaded them:
    a batch's resend then fails as Redis unavailable, and the next try (until_redis_answers) loads them."""
    function = LuaFunction(redis, HOT_PATH, "report_progress")
    await function.load()
    args = ["no-such-job", "{}", "token"]
    tries: list[object] = []

    async def report() -> Any:
        if not tries:  # the library goes just before this try's pipeline, as a batch resend meets it
            await redis.function_delete(HOT_PATH.name)
            async with redis.pipeline(transaction=False) as pipe:
                function.queue(pipe, args=args)
                (reply,) = await pipe.execute(raise_on_error=False)
            tries.append(reply)
            raise reply
        tries.append("loaded")
        return await function(args=args)

    assert await until_redis_answers(report, "reporting progress") == 0
    assert isinstance(tries[0], ResponseError)
    assert redis_unavailable(tries[0])
    assert tries[1:] == ["loaded"]
