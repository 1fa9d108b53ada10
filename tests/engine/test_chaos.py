"""The chaos harness, short: workers SIGKILLed and Redis restarted while jobs flow; no accepted job lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import ChaosOptions, render, run_chaos

pytestmark = pytest.mark.slow


async def test_no_accepted_job_is_lost_while_workers_are_killed_and_redis_restarts(tmp_path: Path) -> None:
    # kills 2.5 s apart, longer than a lease (2 s): each re-run is put down to the kill that caused it
    options = ChaosOptions(
        jobs=300,
        workers=3,
        kill_every_s=2.5,
        max_kills=3,
        redis_restarts=1,
        rate=30,
        timeout_s=40,
        seed=7,
        work_dir=tmp_path,
    )
    report = await run_chaos(options)
    table = render(report, options)

    assert (report.worker_kills, report.redis_restarts) == (3, 1), table
    assert report.accepted == 300, table
    assert report.lost == 0, table
    assert (report.accepted_twice, report.unexpected_jobs) == (0, 0), table
    assert report.recovery_max_s is None or report.recovery_max_s <= options.lease_s + 1.5, table
    assert report.unexpected_exits == 0, table
    assert report.succeeded == report.accepted, table
