"""report.build over jobs that really ran: counts per type and status, run times, the window, the filter."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from tests.helpers import submit


def by_status(**counts: int) -> dict[str, int]:
    statuses = ("deferred", "queued", "in_progress", "succeeded", "failed", "cancelled")
    return {status: counts.get(status, 0) for status in statuses}


async def build_report(http: httpx.AsyncClient, run_jobs: Any, **params: Any) -> dict[str, Any]:
    """Submit a report and run it, and only it: a burst worker would otherwise wait for deferred jobs."""
    job = await submit(http, "report.build", params)
    await run_jobs(max_burst_jobs=1)
    done = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded", done["error"]
    return done  # type: ignore[no-any-return]


async def test_report_counts_each_type_by_status_with_run_times(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    for _ in range(3):
        await submit(http, "diag.noop", {})
    for _ in range(2):
        await submit(http, "diag.fail", {"times": 1}, max_attempts=1)
    await submit(http, "diag.sleep", {"seconds": 0.05})
    await submit(http, "diag.sleep", {"seconds": 0}, delay_seconds=60)
    await run_jobs(max_burst_jobs=6)  # all but the deferred one
    # an index entry whose job has expired
    await redis.zadd(keys.index_all(keys.DEFAULT_TENANT), {"expired-job": int(time.time() * 1000)})

    done = await build_report(http, run_jobs, since_minutes=5)

    report = done["result"]
    assert report["total"] == 7
    assert {name: entry["total"] for name, entry in report["by_type"].items()} == {
        "diag.fail": 2,
        "diag.noop": 3,
        "diag.sleep": 2,
    }
    assert report["by_type"]["diag.noop"]["by_status"] == by_status(succeeded=3)
    assert report["by_type"]["diag.fail"]["by_status"] == by_status(failed=2)
    assert report["by_type"]["diag.sleep"]["by_status"] == by_status(succeeded=1, deferred=1)
    runs = {name: entry["duration_ms"] for name, entry in report["by_type"].items()}
    assert {name: stats["count"] for name, stats in runs.items()} == {
        "diag.fail": 2,
        "diag.noop": 3,
        "diag.sleep": 1,
    }
    for stats in runs.values():
        assert 0 <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert runs["diag.sleep"]["p50"] == runs["diag.sleep"]["max"] >= 50  # the deferred one has not run

    start, end = datetime.fromisoformat(report["window_start"]), datetime.fromisoformat(report["window_end"])
    assert report["window_start"].endswith("Z")
    assert end - start == timedelta(minutes=5)
    assert start <= datetime.fromisoformat(done["created_at"]) <= end
    # 7 jobs, the expired entry and the report itself were read; only the 7 counted
    assert done["progress"] == {"current": 9, "total": 9, "message": "read 9 jobs"}


async def test_types_filter_limits_the_report(http: httpx.AsyncClient, run_jobs: Any) -> None:
    await submit(http, "diag.noop", {})
    await submit(http, "diag.fail", {"times": 0})
    cancelled = await submit(http, "diag.noop", {})
    assert (await http.delete(f"/v1/jobs/{cancelled['id']}")).status_code == 202
    await run_jobs()

    report = (await build_report(http, run_jobs, types=["diag.noop", "email.send"]))["result"]

    assert report["total"] == 2
    assert list(report["by_type"]) == ["diag.noop"]
    noop = report["by_type"]["diag.noop"]
    assert noop["by_status"] == by_status(succeeded=1, cancelled=1)
    assert noop["duration_ms"]["count"] == 1  # the cancelled job never ran


async def test_jobs_created_before_the_window_are_left_out(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    old = await submit(http, "diag.noop", {})
    await submit(http, "diag.noop", {})
    await run_jobs()
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    assert (
        await redis.zadd(keys.index_all(keys.DEFAULT_TENANT), {old["id"]: two_hours_ago}, xx=True, ch=True)
        == 1
    )

    report = (await build_report(http, run_jobs, since_minutes=60))["result"]

    assert report["total"] == 1
    assert report["by_type"]["diag.noop"]["by_status"] == by_status(succeeded=1)


async def test_report_reads_every_entry_once_across_batches_of_equal_scores(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    real = [(await submit(http, "diag.noop", {}))["id"] for _ in range(3)]
    await run_jobs()
    # 1,200 expired entries and the real jobs created in one millisecond: every batch of 500 ends mid-tie
    same_ms = int(time.time() * 1000) - 1000
    await redis.zadd(keys.index_all(keys.DEFAULT_TENANT), {f"expired-{n:04}": same_ms for n in range(1200)})
    await redis.zadd(keys.index_all(keys.DEFAULT_TENANT), dict.fromkeys(real, same_ms), xx=True)

    done = await build_report(http, run_jobs, since_minutes=1)

    assert done["result"]["total"] == 3
    assert done["result"]["by_type"]["diag.noop"]["by_status"] == by_status(succeeded=3)
    assert done["progress"] == {"current": 1204, "total": 1204, "message": "read 1204 jobs"}


async def test_bad_params_are_refused_at_submit(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    params = {"since_minutes": 0, "types": ["Not A Type"], "extra": 1}
    response = await http.post("/v1/jobs", json={"type": "report.build", "params": params})
    assert response.status_code == 422
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"/params/since_minutes", "/params/types/0", "/params/extra"}
    assert await redis.zcard(keys.arq_queue("default")) == 0
