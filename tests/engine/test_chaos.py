"""The chaos harness, short: workers SIGKILLed, paused past their lease and cut off by a partition, Redis
restarted, refusing writes (out of memory, read-only) and failed over while jobs flow, each apart and
all at once; no accepted job lost, run past its limit or ended twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.chaos import ChaosOptions, ChaosReport, render, run_chaos

pytestmark = pytest.mark.slow


async def chaos(tmp_path: Path, faults: set[str], **options: Any) -> tuple[ChaosReport, str]:
    """300 jobs at 30/s on 3 workers, kills 2.5 s apart (longer than a 2 s lease: each re-run is put
    down to the kill that caused it), pauses every 4 s, diag.sleep limited to 4 at once."""
    chosen = ChaosOptions(
        jobs=300,
        workers=3,
        kill_every_s=2.5,
        faults=frozenset(faults),
        pause_every_s=4.0,
        sleep_concurrency=4,
        rate=30,
        timeout_s=60,
        work_dir=tmp_path,
        **options,
    )
    report = await run_chaos(chosen)
    return report, render(report, chosen)


def assert_nothing_went_wrong(report: ChaosReport, table: str) -> None:
    assert report.worker_pauses >= 1, table
    assert report.accepted == 300, table
    assert report.lost == 0, table
    assert (report.accepted_twice, report.unexpected_jobs) == (0, 0), table
    assert report.limit_breaches == 0, table
    assert report.ended_counted is not None, table
    assert report.ended_twice == 0, table
    assert report.unexpected_exits == 0, table
    assert report.succeeded == report.accepted, table


async def test_nothing_is_lost_while_workers_die_and_redis_restarts_and_refuses_writes(
    tmp_path: Path,
) -> None:
    report, table = await chaos(
        tmp_path, {"kill", "pause", "oom", "readonly", "redis-restart"}, max_kills=3, redis_restarts=1, seed=7
    )
    # each disruption holds the next kill back: how many kills fit depends on the timing
    assert (report.worker_kills >= 1, report.redis_restarts) == (True, 1), table
    assert report.write_refusals == {"oom": 1, "readonly": 1}, table
    assert report.recovery_max_s is None or report.recovery_max_s <= 2.0 + 1.5, table
    assert_nothing_went_wrong(report, table)


async def test_nothing_is_lost_when_the_primary_fails_over_mid_run(tmp_path: Path) -> None:
    """On a primary, two replicas and three Sentinels, with a 202 waiting for a replica's copy."""
    report, table = await chaos(tmp_path, {"kill", "pause", "oom", "failover"}, max_kills=2, seed=5)
    assert report.failovers == 1, table
    assert_nothing_went_wrong(report, table)


async def test_nothing_is_lost_under_every_fault_at_once(tmp_path: Path) -> None:
    """All seven: on a primary, two replicas and three Sentinels that a worker in a network namespace
    reaches across a veth pair (root and iproute2, as CI has: bench.netns), whose link is cut past its
    lease again and again; the primary restarted, refusing writes twice and failed over."""
    report, table = await chaos(
        tmp_path,
        {"kill", "pause", "oom", "readonly", "redis-restart", "failover", "partition"},
        max_kills=2,
        partition_every_s=3.5,
        redis_restarts=1,
        seed=9,
    )
    assert (report.partitions >= 2, report.failovers, report.redis_restarts) == (True, 1, 1), table
    assert report.write_refusals == {"oom": 1, "readonly": 1}, table
    assert_nothing_went_wrong(report, table)
