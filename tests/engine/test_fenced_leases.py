"""Fenced leases: a worker stalled past its lease (a VM or GC pause, SIGSTOP here) comes back to a job
another worker holds; its stale attempt is stopped and changes nothing: not the job's outcome, not its
concurrency slot."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.engine.test_reliability import running_sleep, start_worker_process, worker_env
from tests.helpers import read_job, submit, wait_for_status


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
    first_started, first_finished = at(first_view)
    second_started, _ = at(second_view)
    assert first_view["attempts"] == 2
    assert second_started >= first_finished  # never two at once under a concurrency of 1
    assert (first_finished - first_started).total_seconds() >= 4  # the result is the whole second attempt's
    log = (tmp_path / "paused.log").read_text()
    assert f"job {first['id']}: lease lost" in log
