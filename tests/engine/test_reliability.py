"""Jobs are not lost: leases bring a dead worker's jobs back, a stopping worker hands its jobs back
without charging an attempt, and workers ride out a Redis restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import Claim
from jobs.engine.worker import JobsvcWorker
from service.api.app import create_app
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis
from tests.cli.test_processes import wait_until_up
from tests.conftest import ADMIN_KEY, auth, make_worker
from tests.helpers import free_port, read_job, serve, submit, until_registered, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
ARQ = Path(sys.executable).parent / "arq"


async def test_workers_started_from_worker_settings_run_the_jobsvc_engine(
    http: httpx.AsyncClient, background_worker: Any
) -> None:
    async with background_worker() as worker:
        job = await submit(http, "diag.noop", {})
        await wait_for_status(http, job["id"], "succeeded")
        assert isinstance(worker, JobsvcWorker)
        listed = (await http.get("/v1/workers")).json()["workers"]
        assert [w["id"] for w in listed] == [worker.worker_id]
        assert listed[0]["pid"] == os.getpid()
        assert listed[0]["queues"] == ["critical", "default", "bulk"]
    assert (await http.get("/v1/workers")).json()["workers"] == []


async def test_a_running_job_keeps_renewing_its_lease(
    http: httpx.AsyncClient, background_worker: Any, redis: ArqRedis, settings: Settings
) -> None:
    job = await submit(http, "diag.sleep", {"seconds": 6})
    async with background_worker():
        await wait_for_status(http, job["id"], "in_progress")
        await asyncio.sleep(4)  # unrenewed, the lease would have at most lease_s - 4 s left
        ttl_ms = await redis.pttl(keys.arq_in_progress(job["id"]))
        assert 0 < ttl_ms <= settings.worker_lease_s * 1000
        assert ttl_ms > (settings.worker_lease_s - 3) * 1000


async def test_closing_a_worker_whose_task_is_cancelled_mid_finish_still_closes_its_pool(
    settings: Settings, redis: ArqRedis
) -> None:
    """A job task cancelled while it records its finish re-raises CancelledError; closing the worker
    must collect it, unregister the worker and close its connections all the same."""
    worker = make_worker(settings)
    main = asyncio.create_task(worker.main())
    await until_registered(redis, worker)
    worker.tasks["recording-its-finish"] = asyncio.create_task(asyncio.sleep(60))
    main.cancel()
    await asyncio.gather(main, return_exceptions=True)
    await worker.close()
    assert worker.tasks == {}
    assert worker.arq_pool is None  # the connections were closed
    assert await redis.zscore(keys.WORKERS, worker.worker_id) is None


async def test_a_retry_claimed_before_its_previous_attempt_finished_keeps_its_own_claim(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """A retry due at once can be claimed again while the failed attempt's task still waits for the
    answer to its release. That task must not forget the new claim: the next attempt's end would then
    be recorded against the wrong queue, leaving the job in ARQ's queue to be run again once it ended."""
    worker = make_worker(settings)
    main = asyncio.create_task(worker.main())
    try:
        await until_registered(redis, worker)
        real_release = worker.queues.release
        raced: list[Claim] = []
        first_attempt: list[asyncio.Task[Any]] = []

        async def release_then_race(claim: Claim, **end: Any) -> str:
            reply = await real_release(claim, **end)
            if not raced:  # the next attempt is claimed before this one hears back
                worker.allow_pick_jobs = False  # (and no other claim follows in this test)
                first_attempt.append(worker.tasks[claim.job_id])
                raced.append(replace(claim, score=claim.score + 1))
                worker.claims[claim.job_id] = raced[0]
            return reply

        worker.queues.release = release_then_race  # type: ignore[method-assign]
        job = await submit(http, "diag.fail", {"times": 1})
        async with asyncio.timeout(10):
            while not first_attempt or not first_attempt[0].done():
                await asyncio.sleep(0.005)
        assert raced[0].job_id == job["id"]
        assert worker.claims.get(job["id"]) is raced[0]
    finally:
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        await worker.close()


def worker_env(redis_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """A worker process's environment: the test server, the diagnostic types, a heartbeat every 0.5 s,
    and ``settings`` (``JOBSVC_*`` names)."""
    return {
        **os.environ,
        "JOBSVC_REDIS_URL": redis_url,
        "JOBSVC_DIAGNOSTICS": "true",
        "JOBSVC_DATA_DIR": str(data_dir),
        "JOBSVC_WORKER_HEARTBEAT_S": "0.5",
        **settings,
    }


async def running_sleep(http: httpx.AsyncClient, seconds: float) -> dict[str, Any]:
    """A ``diag.sleep`` job, submitted and seen running."""
    job = await submit(http, "diag.sleep", {"seconds": seconds})
    await wait_for_status(http, job["id"], "in_progress", timeout_s=30)
    return job


def start_worker_process(
    env: dict[str, str], log: Path, *, wrapper: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``arq worker_settings.WorkerSettings`` with ``env``, logging to ``log``; run by ``wrapper`` when
    given (``ip netns exec <name>``: the worker in a network namespace)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [*wrapper, ARQ, "worker_settings.WorkerSettings"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


@pytest.mark.slow
async def test_a_killed_workers_long_job_runs_again_within_the_lease_and_readyz_tells(
    http: httpx.AsyncClient, redis_url: str, tmp_path: Path, settings: Settings
) -> None:
    """diag.sleep has a one-hour timeout: ARQ alone would wait an hour and 10 s before re-running it."""
    env = worker_env(redis_url, tmp_path)
    first = start_worker_process(env, tmp_path / "first.log")
    second = None
    try:
        job = await running_sleep(http, 600)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        async with asyncio.timeout(30):
            while (await http.get("/readyz")).status_code != 503:
                await asyncio.sleep(0.1)
        assert (
            time.monotonic() - killed_at <= 10
        )  # three missed heartbeats (1.5 s), with room for a slow machine

        second = start_worker_process(env, tmp_path / "second.log")
        rerun = await wait_for_status(http, job["id"], "in_progress", timeout_s=30)
        async with asyncio.timeout(30):
            while rerun["attempts"] < 2:
                rerun = await read_job(http, job["id"])
                await asyncio.sleep(0.1)
        recovered_after = time.monotonic() - killed_at
        assert recovered_after <= Settings().worker_lease_s + 5, recovered_after
        assert (await http.get("/readyz")).status_code == 200
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.slow
async def test_sigterm_lets_short_jobs_finish_and_hands_back_the_rest_without_charging_an_attempt(
    http: httpx.AsyncClient, redis_url: str, tmp_path: Path, run_jobs: Any
) -> None:
    env = {**os.environ, "JOBSVC_REDIS_URL": redis_url, "JOBSVC_DIAGNOSTICS": "true"}
    env = {**env, "JOBSVC_DATA_DIR": str(tmp_path), "JOBSVC_WORKER_SHUTDOWN_GRACE_S": "1.5"}
    worker = start_worker_process(env, tmp_path / "worker.log")
    try:
        short = await submit(http, "diag.sleep", {"seconds": 1})
        long = await submit(http, "diag.sleep", {"seconds": 4})
        await wait_for_status(http, short["id"], "in_progress", timeout_s=30)
        await wait_for_status(http, long["id"], "in_progress")
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()

    assert (await read_job(http, short["id"]))["status"] == "succeeded"
    handed_back = await read_job(http, long["id"])
    assert handed_back["status"] == "queued"
    assert handed_back["attempts"] == 0

    await run_jobs()
    done = await read_job(http, long["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1


async def test_an_accepted_job_survives_a_redis_restart_and_workers_reconnect(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    settings = Settings(
        admin_api_key=ADMIN_KEY,
        redis_url=server.start(),
        diagnostics=True,
        data_dir=tmp_path,
        worker_poll_delay_s=0.02,
    )
    app = create_app(settings)
    worker = make_worker(settings)
    try:
        async with serve(app) as http:
            accepted = await submit(http, "diag.noop", {})
            server.stop()  # SIGTERM: the AOF is flushed, as on any orderly Redis restart
            server.start()

            task = asyncio.create_task(worker.main())
            assert (await wait_for_status(http, accepted["id"], "succeeded"))["result"] == {}

            server.stop()
            await asyncio.sleep(0.5)  # the worker polls into a dead server, and must not die of it
            server.start()
            after = await submit(http, "diag.noop", {})
            assert (await wait_for_status(http, after["id"], "succeeded", timeout_s=20))["attempts"] == 1
            assert not task.done()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await worker.close()
        server.stop()


async def test_with_aof_an_accepted_job_survives_redis_being_killed(tmp_path: Path) -> None:
    """appendfsync everysec: a job accepted more than a second before a SIGKILL of Redis is on disk."""
    server = EmbeddedRedis(tmp_path / "redis")
    app = create_app(
        Settings(admin_api_key=ADMIN_KEY, redis_url=server.start(), diagnostics=True, data_dir=tmp_path)
    )
    try:
        async with serve(app) as http:
            accepted = await submit(http, "diag.noop", {})
            await asyncio.sleep(1.5)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGKILL)
            server.stop()
            server.start()
            kept = await read_job(http, accepted["id"])
            assert kept["status"] == "queued"
            assert kept["params"] == {}
    finally:
        server.stop()


@pytest.mark.slow
def test_the_api_drains_in_flight_requests_on_sigterm(
    redis_url: str, tmp_path: Path, redis: ArqRedis
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "JOBSVC_REDIS_URL": redis_url,
        "JOBSVC_DIAGNOSTICS": "true",
        "JOBSVC_DATA_DIR": str(tmp_path),
        "JOBSVC_ADMIN_API_KEY": ADMIN_KEY,
    }
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [Path(sys.executable).parent / "uvicorn", "service.main:app", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        wait_until_up(base_url, api)
        job = httpx.post(
            f"{base_url}/v1/jobs", json={"type": "diag.noop", "params": {}}, headers=auth(ADMIN_KEY)
        ).json()
        with httpx.Client(base_url=base_url, timeout=10, headers=auth(ADMIN_KEY)) as client:
            pending = client.build_request("GET", f"/v1/jobs/{job['id']}", params={"wait": 2})
            started = time.monotonic()
            sigterm = threading.Timer(0.5, api.send_signal, args=(signal.SIGTERM,))
            sigterm.start()
            response = client.send(pending)
            sigterm.join()
        assert response.status_code == 200
        assert response.json()["status"] == "queued"
        assert time.monotonic() - started >= 2
        assert api.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
        assert b"Finished server process" in (tmp_path / "api.log").read_bytes()
    finally:
        if api.poll() is None:
            api.kill()


async def test_a_job_running_through_a_redis_restart_still_succeeds(tmp_path: Path) -> None:
    """The job reports progress and records its attempt while Redis is gone: it must not fail for it."""
    server = EmbeddedRedis(tmp_path / "redis")
    settings = Settings(
        admin_api_key=ADMIN_KEY,
        redis_url=server.start(),
        diagnostics=True,
        data_dir=tmp_path,
        worker_poll_delay_s=0.02,
    )
    app = create_app(settings)
    worker = make_worker(settings)
    task = asyncio.create_task(worker.main())
    try:
        async with serve(app) as http:
            job = await submit(http, "diag.sleep", {"seconds": 2.5})
            await wait_for_status(http, job["id"], "in_progress")
            server.stop()
            await asyncio.sleep(1.5)  # a progress report falls into the outage
            server.start()
            done = await wait_for_status(http, job["id"], "succeeded", timeout_s=20)
            assert done["attempts"] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        server.stop()


async def test_a_claim_cut_off_by_an_outage_gives_its_slot_back(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    settings = Settings(
        admin_api_key=ADMIN_KEY,
        redis_url=server.start(),
        diagnostics=True,
        data_dir=tmp_path,
        worker_poll_delay_s=0.02,
    )
    app = create_app(settings)
    worker = make_worker(settings, max_jobs=1)
    task = asyncio.create_task(worker.main())
    try:
        async with serve(app) as http:
            await wait_for_status(http, (await submit(http, "diag.noop", {}))["id"], "succeeded")
            server.stop()
            await asyncio.sleep(1)  # claims fail and are retried meanwhile
            assert worker.job_counter == 0  # ARQ's own start_jobs would keep the slot: no job could run again
            server.start()
            after = await submit(http, "diag.noop", {})
            assert (await wait_for_status(http, after["id"], "succeeded", timeout_s=20))["attempts"] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        server.stop()
