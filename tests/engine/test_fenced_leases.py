"""Fenced leases: a worker stalled past its lease (a VM or GC pause, SIGSTOP here) comes back to a job
another worker holds; its stale attempt is stopped and changes nothing: not the job's outcome, not its
concurrency slot. The worker never runs two attempts of one job at once."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from service.config import Settings
from tests.conftest import worker_running
from tests.engine.test_reliability import running_sleep, start_worker_process, worker_env
from tests.helpers import lapse_lease, read_job, submit, until_registered, wait_for_status


def at(view: dict[str, object]) -> tuple[datetime, datetime]:
    started, finished = view["started_at"], view["finished_at"]
    assert isinstance(started, str)
    assert isinstance(finished, str)
    return datetime.fromisoformat(started), datetime.fromisoformat(finished)


@pytest.mark.slow
async def test_a_worker_paused_past_its_lease_changes_nothing_when_it_comes_back(
    http: httpx.AsyncClient, redis_url: str, tmp_path: Path
) -> None:
    env = worker_env(
        redis_url,
        tmp_path,
        JOBSVC_WORKER_LEASE_S="2",
        JOBSVC_JOB_LIMITS='{"diag.sleep": {"concurrency": 1}}',
    )
    paused = start_worker_process(env, tmp_path / "paused.log")
    other = None
    try:
        first = await running_sleep(http, 4)
        paused.send_signal(signal.SIGSTOP)

        other = start_worker_process(env, tmp_path / "other.log")
        async with asyncio.timeout(30):  # the lease lapses; the other worker runs the job's next attempt
            while (await read_job(http, first["id"]))["attempts"] < 2:
                await asyncio.sleep(0.1)
        second = await submit(http, "diag.sleep", {"seconds": 1})  # waits for the limit's one slot
        paused.send_signal(signal.SIGCONT)

        first_view = await wait_for_status(http, first["id"], "succeeded", timeout_s=60)
        second_view = await wait_for_status(http, second["id"], "succeeded", timeout_s=60)
    finally:
        for process in (paused, other):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
    assert_the_stale_attempt_changed_nothing(first_view, second_view, tmp_path / "paused.log")


def assert_the_stale_attempt_changed_nothing(
    first: dict[str, object], second: dict[str, object], stale_worker_log: Path
) -> None:
    """``first`` (4 s, ``concurrency: 1``) ran twice, its lease lost by the stale worker in between;
    ``second`` waited for its slot. Only the second attempt counted, and its worker was told."""
    first_started, first_finished = at(first)
    second_started, _ = at(second)
    assert first["attempts"] == 2
    assert second_started >= first_finished  # never two at once under a concurrency of 1
    assert (first_finished - first_started).total_seconds() >= 4  # the result is the whole second attempt's
    assert f"job {first['id']}: lease lost" in stale_worker_log.read_text()


async def test_a_job_claimed_again_by_the_worker_still_running_it_runs_one_attempt_at_a_time(
    settings: Settings, redis: ArqRedis, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease lapses under a running attempt (as after a stall) and the same worker, the only one,
    claims the job again before any renewal notices: the earlier attempt is stopped first."""
    slow_renewals = settings.model_copy(update={"worker_heartbeat_s": 10.0, "worker_lease_s": 60.0})
    async with worker_running(slow_renewals) as (worker, _):
        job = await running_sleep(http, 1)
        await until_registered(redis, worker)
        await redis.delete(keys.arq_in_progress(job["id"]))  # the lease lapsed
        await lapse_lease(redis, job["id"])
        await redis.rpush(keys.wake("default"), "1")
        done = await wait_for_status(http, job["id"], "succeeded", timeout_s=10)
    assert done["attempts"] == 2
    assert f"job {job['id']}: lease lost" in caplog.text
    assert "KeyError" not in caplog.text
    assert "ends without a claim" not in caplog.text
