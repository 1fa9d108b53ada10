"""Jobs enqueued with ARQ's own client (``ArqRedis.enqueue_job``), as teams moving from plain ARQ have them,
run as jobsvc's own: validated, within limits and quotas, listed and read over REST under the configured
tenant, and read back with ARQ's ``Job``.

The producers here use ARQ's ``create_pool`` with the documented serializer and nothing of jobsvc's.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import typing
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.jobs import Job, SerializationError

from jobs.engine import keys
from service.api.schemas import JOB_ID_PATTERN
from service.config import JobLimitOverride, Settings
from tests.api.test_tenants import tenant_clients
from tests.engine.test_flow_control import most_at_once, run_intervals
from tests.engine.test_idle_worker import idle_worker
from tests.helpers import enqueue_cleanup, read_job

TENANT = "arq-team"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"arq_producer_tenant": TENANT})


@pytest.fixture
async def arq_pool(settings: Settings, redis: ArqRedis) -> AsyncIterator[ArqRedis]:
    """A producer's pool, as the README tells ARQ users to open it."""
    pool = await create_pool(
        RedisSettings.from_dsn(settings.effective_redis_url),
        job_serializer=msgpack.packb,
        job_deserializer=msgpack.unpackb,
    )
    try:
        yield pool
    finally:
        await pool.aclose(close_connection_pool=True)


@pytest.fixture
async def team(app: Any, http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a key of the producers' tenant."""
    async with tenant_clients(app, http, TENANT) as (client,):
        yield client


async def enqueue(pool: ArqRedis, function: str, **kwargs: Any) -> Job:
    job = await pool.enqueue_job(function, **kwargs)
    assert job is not None
    return job


async def failure_of(job: Job) -> dict[str, Any]:
    """The failure ARQ's ``Job.result()`` raises for a jobsvc job that failed: its record, as data."""
    with pytest.raises(SerializationError) as raised:
        await job.result(timeout=10, poll_delay=0.05)
    failure = raised.value.args[0]
    assert isinstance(failure, dict), failure
    return failure


async def wait_until(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    """The job once it shows ``status``; until a worker has taken it in, it is nobody's (404)."""
    async with asyncio.timeout(5):
        while True:
            response = await client.get(f"/v1/jobs/{job_id}")
            assert response.status_code in (200, 404), response.text
            if response.status_code == 200 and response.json()["status"] == status:
                return response.json()  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)


async def listed(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/v1/jobs", params={"limit": 500})
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


# -- running ------------------------------------------------------------------------------------------------


async def test_a_job_from_arqs_own_client_runs_and_reads_over_rest_under_the_producers_tenant(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    async with background_worker():
        job = await enqueue(arq_pool, "diag.noop")
        assert await job.result(timeout=5, poll_delay=0.05) == {}
    done = await read_job(team, job.job_id)
    assert (done["type"], done["status"], done["queue"], done["attempts"]) == (
        "diag.noop",
        "succeeded",
        "default",
        1,
    )
    assert await listed(team) == [job.job_id]
    assert (await http.get(f"/v1/jobs/{job.job_id}")).status_code == 404  # the default tenant's key
    info = await job.result_info()
    assert info is not None
    assert info.success


async def test_it_starts_within_a_second_of_its_enqueue_at_idle(
    arq_pool: ArqRedis, redis: ArqRedis, settings: Settings
) -> None:
    """Workers wait up to 3 s for a wake-up that ARQ's client never sends; they look under a second."""
    async with idle_worker(settings, redis, heartbeat_s=4.0, block_s=3.0):
        for pause_s in (0.5, 0.37, 0.61):  # land at different moments of the worker's wait
            await asyncio.sleep(pause_s)
            enqueued = time.time()
            job = await enqueue(arq_pool, "diag.stamp")
            stamp = await job.result(timeout=5, poll_delay=0.02)
            assert stamp["started_at"] - enqueued < 1.0


async def test_defer_by_delays_it(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient
) -> None:
    async with background_worker():
        enqueued = time.time()
        job = await enqueue(arq_pool, "diag.stamp", _defer_by=1.0)
        waiting = await wait_until(team, job.job_id, "deferred")
        stamp = await job.result(timeout=5, poll_delay=0.05)
    assert 1.0 <= stamp["started_at"] - enqueued < 2.0
    assert waiting["scheduled_for"] is not None


async def test_the_same_job_id_twice_makes_one_job(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient
) -> None:
    first = await enqueue(arq_pool, "diag.record", label="once", _job_id="order-42")
    assert await arq_pool.enqueue_job("diag.record", label="twice", _job_id="order-42") is None
    async with background_worker():
        result = await first.result(timeout=5, poll_delay=0.05)
        assert await arq_pool.enqueue_job("diag.record", label="again", _job_id="order-42") is None
    assert result["position"] == 1
    assert await listed(team) == ["order-42"]
    assert (await read_job(team, "order-42"))["params"] == {"label": "once"}


async def test_queue_name_of_another_jobsvc_queue_runs_it_there(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient
) -> None:
    async with background_worker():
        job = await enqueue(arq_pool, "diag.noop", _queue_name=keys.arq_queue("bulk"))
        assert await job.result(timeout=5, poll_delay=0.05) == {}
    done = await read_job(team, job.job_id)
    assert (done["queue"], done["status"]) == ("bulk", "succeeded")
    assert job.job_id in await listed_in_queue(team, "bulk")


async def listed_in_queue(client: httpx.AsyncClient, queue: str) -> list[str]:
    response = await client.get("/v1/jobs", params={"queue": queue})
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


async def test_a_queue_name_that_is_none_of_jobsvcs_queues_is_refused(
    arq_pool: ArqRedis, http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    job = await enqueue(arq_pool, "diag.noop", _queue_name="arq:queue:nope")
    await enqueue_cleanup(redis)
    await run_jobs()
    failure = await failure_of(
        Job(job.job_id, arq_pool, _queue_name="arq:queue:nope", _deserializer=msgpack.unpackb)
    )
    assert failure["type"] == "UnknownQueue"
    assert "arq:queue:bulk" in failure["message"]
    assert not await redis.exists("arq:queue:nope", keys.arq_job(job.job_id))


async def test_an_expires_that_has_passed_before_a_worker_sees_it_expires_it(
    arq_pool: ArqRedis, run_jobs: Any, team: httpx.AsyncClient
) -> None:
    job = await enqueue(arq_pool, "diag.noop", _expires=0.05)
    await asyncio.sleep(0.2)
    await run_jobs()
    assert (await failure_of(job))["message"] == "job expired"
    failed = await read_job(team, job.job_id)
    assert (failed["status"], failed["error"]["message"]) == ("failed", "job expired")


async def test_an_expires_that_passes_while_it_is_deferred_expires_it(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient, redis: ArqRedis
) -> None:
    async with background_worker():
        job = await enqueue(arq_pool, "diag.noop", _defer_by=1.0, _expires=0.5)
        adopted = await wait_until(team, job.job_id, "deferred")  # taken in, not yet due
        failure = await failure_of(job)
    assert adopted["type"] == "diag.noop"
    assert failure["message"] == "job expired"
    assert (await read_job(team, job.job_id))["status"] == "failed"


# -- what cannot run fails with the reason ------------------------------------------------------------------


async def test_invalid_params_fail_it_with_the_validation_error(
    arq_pool: ArqRedis, run_jobs: Any, team: httpx.AsyncClient
) -> None:
    job = await enqueue(arq_pool, "diag.sleep", seconds="a while")
    await run_jobs()
    failure = await failure_of(job)
    assert failure["type"] == "InvalidParams"
    assert "seconds: Input should be a valid number" in failure["message"]
    failed = await read_job(team, job.job_id)
    assert failed["status"] == "failed"
    assert failed["error"] == {"type": "InvalidParams", "message": failure["message"]}
    assert failed["params"] == {"seconds": "a while"}
    letters = await team.get("/v1/dead-letters")
    assert [letter["id"] for letter in letters.json()["dead_letters"]] == [job.job_id]


async def test_an_unknown_job_type_fails_it(
    arq_pool: ArqRedis, run_jobs: Any, team: httpx.AsyncClient
) -> None:
    job = await enqueue(arq_pool, "reports.nightly_thing", day=3)
    await run_jobs()
    failure = await failure_of(job)
    assert (failure["type"], failure["message"]) == (
        "UnknownJobType",
        "no job type named 'reports.nightly_thing'",
    )
    assert (await read_job(team, job.job_id))["status"] == "failed"


class TouchesAFileWhenUnpickled:
    """Unpickling this runs ``Path.touch(path)``: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


async def test_a_pickled_job_is_refused_without_being_unpickled(
    settings: Settings, run_jobs: Any, team: httpx.AsyncClient, tmp_path: Path, redis: ArqRedis
) -> None:
    witness = tmp_path / "unpickled"
    pickling = await create_pool(
        RedisSettings.from_dsn(settings.effective_redis_url)
    )  # ARQ's default: pickle
    try:
        job = await pickling.enqueue_job("diag.noop", trap=TouchesAFileWhenUnpickled(witness))
    finally:
        await pickling.aclose(close_connection_pool=True)
    assert job is not None
    pickle.loads(pickle.dumps(TouchesAFileWhenUnpickled(tmp_path / "control")))
    assert (tmp_path / "control").exists(), "the trap does not spring"

    await run_jobs()
    failed = await read_job(team, job.job_id)
    assert not witness.exists()
    assert (failed["status"], failed["error"]["type"]) == ("failed", "PickleRefused")
    assert "job_serializer=msgpack.packb" in failed["error"]["message"]
    assert not await redis.exists(keys.arq_job(job.job_id))


def test_the_job_ids_taken_in_are_those_the_api_takes() -> None:
    assert keys.JOB_ID.pattern == JOB_ID_PATTERN


async def test_a_job_id_jobsvcs_api_would_not_accept_is_refused(
    arq_pool: ArqRedis, run_jobs: Any, redis: ArqRedis
) -> None:
    job = await enqueue(arq_pool, "diag.noop", _job_id="not an id!")
    await run_jobs()
    failure = await failure_of(job)
    assert failure["type"] == "InvalidJobId"
    assert await redis.keys("jobsvc:*not an id*") == []
    assert await redis.zcard(keys.arq_queue("default")) == 0


# -- the guarantees of a submitted job ------------------------------------------------------------------


async def sleeps_run_by(
    worker_settings: Settings, background_worker: Any, arq_pool: ArqRedis, team: httpx.AsyncClient, count: int
) -> list[dict[str, Any]]:
    """``count`` jobs of ``diag.sleep`` (0.2 s) from ARQ's client, run by a worker with these settings."""
    async with background_worker(ctx={"settings": worker_settings}):
        jobs = [await enqueue(arq_pool, "diag.sleep", seconds=0.2) for _ in range(count)]
        for job in jobs:
            await job.result(timeout=10, poll_delay=0.05)
    return [await read_job(team, job.job_id) for job in jobs]


async def test_a_concurrency_limit_holds_for_jobs_from_arqs_client(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient, settings: Settings
) -> None:
    limited = settings.model_copy(update={"job_limits": {"diag.sleep": JobLimitOverride(concurrency=1)}})
    ran = await sleeps_run_by(limited, background_worker, arq_pool, team, 4)
    assert [job["status"] for job in ran] == ["succeeded"] * 4
    assert most_at_once(run_intervals(ran)) == 1


async def test_the_producers_tenants_quota_of_open_jobs_holds_them_back_until_others_end(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient, settings: Settings
) -> None:
    quota = settings.model_copy(update={"tenant_max_open_jobs": 1})
    ran = await sleeps_run_by(quota, background_worker, arq_pool, team, 3)
    assert [job["status"] for job in ran] == ["succeeded"] * 3
    assert most_at_once(run_intervals(ran)) == 1


async def test_a_job_the_producers_tenant_may_never_submit_fails_and_holds_up_no_other(
    arq_pool: ArqRedis, background_worker: Any, team: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    """A queue the tenant may not use is refused for good, not held like a quota that passes with time:
    held, it would keep the worker from looking for any later job of its queue."""
    limited = await http.put(f"/v1/admin/tenants/{TENANT}/quotas", json={"queues": ["default"]})
    assert limited.status_code == 200, limited.text
    async with background_worker():
        refused = await enqueue(arq_pool, "diag.noop", _queue_name=keys.arq_queue("bulk"))
        failure = await failure_of(
            Job(refused.job_id, arq_pool, _queue_name=keys.arq_queue("bulk"), _deserializer=msgpack.unpackb)
        )
        later = await enqueue(arq_pool, "diag.noop", _queue_name=keys.arq_queue("bulk"))
        await failure_of(
            Job(later.job_id, arq_pool, _queue_name=keys.arq_queue("bulk"), _deserializer=msgpack.unpackb)
        )
        allowed = await enqueue(arq_pool, "diag.noop")
        assert await allowed.result(timeout=5, poll_delay=0.05) == {}
    assert failure["type"] == "NotAllowedForTenant"
    assert "may not submit to this queue" in failure["message"]
    assert (await read_job(team, refused.job_id))["status"] == "failed"


# -- finding them cheaply -----------------------------------------------------------------------------------


async def arq_difference(redis: ArqRedis, queue: str = "default") -> int:
    """Entries of the queue's ARQ key jobsvc did not write."""
    owned = await typing.cast(Awaitable[bytes | None], redis.hget(keys.ARQ_OWNED, queue))
    return int(await redis.zcard(keys.arq_queue(queue))) - int(owned or 0)


async def test_jobsvcs_own_entries_in_arqs_queues_are_counted_exactly(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis, arq_pool: ArqRedis
) -> None:
    later = {"type": "diag.noop", "params": {}, "delay_seconds": 3600}
    batch = await http.post("/v1/jobs:batch", json={"jobs": [later] * 3 + [{"type": "diag.noop"}] * 2})
    assert batch.status_code == 202, batch.text
    assert await redis.zcard(keys.arq_queue("default")) == 5
    assert await arq_difference(redis) == 0
    cancelled = await http.delete(f"/v1/jobs/{batch.json()['jobs'][0]['id']}")
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    await run_jobs(max_burst_jobs=2)  # the two due now; the others wait an hour
    assert await redis.zcard(keys.arq_queue("default")) == 2
    assert await arq_difference(redis) == 0
    await enqueue(arq_pool, "diag.noop", _defer_by=3600)
    assert await arq_difference(redis) == 1


async def test_entries_jobsvc_wrote_before_it_counted_them_are_counted_not_taken_for_foreign(
    http: httpx.AsyncClient, background_worker: Any, redis: ArqRedis
) -> None:
    submitted = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}, "delay_seconds": 3600})
    job_id = submitted.json()["id"]
    record = await redis.get(keys.arq_job(job_id))
    await redis.hdel(keys.job_meta(job_id), keys.ARQ_ENTRY_FIELD)  # as an older jobsvc wrote it
    await redis.hincrby(keys.ARQ_OWNED, "default", -1)
    assert await arq_difference(redis) == 1
    async with background_worker():
        async with asyncio.timeout(5):
            while await arq_difference(redis):
                await asyncio.sleep(0.02)
    assert await redis.hget(keys.job_meta(job_id), keys.ARQ_ENTRY_FIELD) == b"default"
    assert await redis.get(keys.arq_job(job_id)) == record  # not rewritten as a foreign job
    assert (await read_job(http, job_id))["status"] == "deferred"


async def calls(redis: ArqRedis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_new_job_in_a_deep_queue_is_found_without_reading_the_whole_queue(
    http: httpx.AsyncClient,
    arq_pool: ArqRedis,
    background_worker: Any,
    team: httpx.AsyncClient,
    redis: ArqRedis,
) -> None:
    later = {"type": "diag.noop", "params": {}, "delay_seconds": 3600}
    for _ in range(5):
        batch = await http.post("/v1/jobs:batch", json={"jobs": [later] * 1000})
        assert batch.status_code == 202, batch.text
    async with background_worker():
        await asyncio.sleep(0.3)
        scans, reads = await calls(redis, "zscan"), await calls(redis, "zrangebyscore")
        job = await enqueue(arq_pool, "diag.noop")
        assert await job.result(timeout=5, poll_delay=0.02) == {}
        assert await calls(redis, "zscan") == scans  # no full pass
    assert (await read_job(team, job.job_id))["status"] == "succeeded"
    assert await calls(redis, "zrangebyscore") - reads < 100
