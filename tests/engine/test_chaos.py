"""The chaos harness, short: workers SIGKILLed and paused past their lease, Redis restarted and refusing
writes (out of memory, read-only) while jobs flow; no accepted job lost, run past its limit or ended twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import ChaosOptions, render, run_chaos

pytestmark = pytest.mark.slow


async def test_no_accepted_job_is_lost_run_past_its_limit_or_ended_twice_whatever_the_faults(
    tmp_path: Path,
) -> None:
    # kills 2.5 s apart, longer than a lease (2 s): each re-run is put down to the kill that caused it
    options = ChaosOptions(
        jobs=300,
        workers=3,
        kill_every_s=2.5,
        max_kills=3,
        redis_restarts=1,
        faults=frozenset({"kill", "pause", "oom", "readonly", "redis-restart"}),
        pause_every_s=4.0,
        sleep_concurrency=4,
        rate=30,
        timeout_s=60,
        seed=7,
        work_dir=tmp_path,
    )
    report = await run_chaos(options)
    table = render(report, options)

    assert (report.worker_kills, report.redis_restarts) == (3, 1), table
    assert report.worker_pauses >= 1, table
    assert report.write_refusals == {"oom": 1, "readonly": 1}, table
    assert report.most_sleeps_at_once <= 4, table
    assert report.limit_breaches == 0, table
    assert report.ended_counted is not None, table
    assert report.ended_twice == 0, table
    assert report.recovery_max_s is None or report.recovery_max_s <= options.lease_s + 1.5, table
    assert report.accepted == 300, table
    assert report.lost == 0, table
    assert (report.accepted_twice, report.unexpected_jobs) == (0, 0), table
    assert report.unexpected_exits == 0, table
    assert report.succeeded == report.accepted, table


async def test_no_accepted_job_is_lost_when_the_primary_fails_over_mid_run(tmp_path: Path) -> None:
    """On a primary, two replicas and three Sentinels, with a 202 waiting for a replica's copy."""
    options = ChaosOptions(
        jobs=300,
        workers=3,
        kill_every_s=2.5,
        max_kills=2,
        faults=frozenset({"kill", "pause", "oom", "failover"}),
        pause_every_s=4.0,
        sleep_concurrency=4,
        rate=30,
        timeout_s=60,
        seed=5,
        work_dir=tmp_path,
    )
    report = await run_chaos(options)
    table = render(report, options)

    assert report.failovers == 1, table
    assert report.accepted == 300, table
    assert report.lost == 0, table
    assert (report.accepted_twice, report.unexpected_jobs) == (0, 0), table
    assert report.limit_breaches == 0, table
    assert report.ended_twice == 0, table
    assert report.unexpected_exits == 0, table
    assert report.succeeded == report.accepted, table
