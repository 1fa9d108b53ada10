"""Flow control: which waiting job starts next, and how many may start or run.

Priorities order a backlog (9 first, first come first served within one priority); a deferred job waits
for its time whatever its priority; queues share a worker's slots by weight, so a flood on one never
starves another; rate and concurrency limits hold across every worker process, optionally per key, and a
job held back by a limit neither uses an attempt nor blocks the worker's other jobs.

Start order is read from ``diag.record``'s log (``diag.DIAG_LOG``); start times from the claim's stamp
(``started_at`` in the job's meta, on Redis' clock, so comparable across worker processes).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import typing
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.catalogue import diag
from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues
from service.config import Settings
from tests.conftest import make_worker, worker_running
from tests.engine.test_reliability import start_worker_process
from tests.helpers import read_job, submit

# -- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The tests' settings, with room to submit thousands of jobs in a second (the tenant's quota)."""
    return settings.model_copy(update={"tenant_submits_per_s": 100_000})


async def submit_batch(http: httpx.AsyncClient, jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST /v1/jobs:batch in chunks of 1000, in order; returns the accepted jobs."""
    accepted: list[dict[str, Any]] = []
    for start in range(0, len(jobs), 1000):
        async with asyncio.timeout(10):
            while True:
                response = await http.post("/v1/jobs:batch", json={"jobs": list(jobs[start : start + 1000])})
                if response.status_code != 429:  # over a submit quota: try again when told
                    break
                await asyncio.sleep(float(response.headers.get("retry-after", 1)))
        assert response.status_code == 202, response.text
        accepted.extend(response.json()["jobs"])
    return accepted


def record(label: str, **extra: Any) -> dict[str, Any]:
    return {"type": "diag.record", "params": {"label": label}, **extra}


def sleep(seconds: float, **extra: Any) -> dict[str, Any]:
    tag = extra.pop("tag", None)
    params: dict[str, Any] = {"seconds": seconds} if tag is None else {"seconds": seconds, "tag": tag}
    return {"type": "diag.sleep", "params": params, **extra}


async def diag_log(redis: ArqRedis) -> list[str]:
    """The labels of the diag.record jobs that started, in the order they started."""
    entries = await typing.cast(Awaitable[list[bytes]], redis.lrange(diag.DIAG_LOG, 0, -1))
    return [entry.decode() for entry in entries]


async def logged(redis: ArqRedis) -> int:
    return await typing.cast(Awaitable[int], redis.llen(diag.DIAG_LOG))


async def wait_until_ended(redis: ArqRedis, ids: Iterable[str], timeout_s: float) -> None:
    """Until every job has its result record (it ended, for good)."""
    result_keys = [keys.arq_result(job_id) for job_id in ids]
    async with asyncio.timeout(timeout_s):
        while await redis.exists(*result_keys) < len(result_keys):
            await asyncio.sleep(0.05)


async def read_jobs(http: httpx.AsyncClient, ids: Iterable[str]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(read_job(http, job_id) for job_id in ids)))


async def claimed_at(redis: ArqRedis, ids: Iterable[str]) -> list[int]:
    """When the claim script let each job start (ms, Redis' clock)."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(keys.job_meta(job_id), "started_at")
        return [int(stamp) for stamp in await pipe.execute()]


async def jobs_done_by_worker(http: httpx.AsyncClient, total: int, timeout_s: float = 10) -> list[int]:
    """How many jobs each live worker ran, once their heartbeats account for ``total``."""
    async with asyncio.timeout(timeout_s):
        while True:
            workers = (await http.get("/v1/workers")).json()["workers"]
            done = [worker["jobs_done"] for worker in workers]
            if sum(done) >= total:
                return done
            await asyncio.sleep(0.1)


def ms(timestamp: str) -> int:
    return round(datetime.fromisoformat(timestamp).timestamp() * 1000)


def most_at_once(intervals: Iterable[tuple[int, int]]) -> int:
    """The most intervals [start, end] open at one instant; one that ends as another starts does not
    overlap it."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:  # at one instant, ends (-1) sort before starts (+1)
        running += change
        peak = max(peak, running)
    return peak


def run_intervals(jobs: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(ms(job["started_at"]), ms(job["finished_at"])) for job in jobs]


@asynccontextmanager
async def worker_processes(
    redis: ArqRedis, redis_url: str, tmp_path: Path, count: int, start_timeout_s: float = 30, **settings: str
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """``count`` real ``arq worker_settings.WorkerSettings`` processes, up and registered; killed after."""
    env = {
        **os.environ,
        "JOBSVC_REDIS_URL": redis_url,
        "JOBSVC_DIAGNOSTICS": "true",
        "JOBSVC_DATA_DIR": str(tmp_path / "data"),
        "JOBSVC_WORKER_HEARTBEAT_S": "0.5",
        **{f"JOBSVC_{name.upper()}": value for name, value in settings.items()},
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(count):
            processes.append(start_worker_process(env, tmp_path / f"worker-{n}.log"))
        async with asyncio.timeout(start_timeout_s):
            while await redis.zcard(keys.WORKERS) < count:
                assert all(p.poll() is None for p in processes), "a worker process died at start"
                await asyncio.sleep(0.05)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


# -- priorities and deferred jobs -------------------------------------------------------------------------


async def test_a_backlog_of_thousands_runs_by_priority_and_in_submit_order_within_one(
    http: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    priorities = [rng.randint(0, 9) for _ in range(3000)]
    labels = [f"{priority}:{n:04d}" for n, priority in enumerate(priorities)]
    await submit_batch(http, [record(label, priority=p) for label, p in zip(labels, priorities, strict=True)])
    assert await redis.zcard(keys.ready("default")) == 3000  # no worker yet: all wait, none started

    async with background_worker(max_jobs=1):  # one job at a time: start order is claim order
        async with asyncio.timeout(45):  # some 10 s on this 2-core machine
            while await logged(redis) < 3000:
                await asyncio.sleep(0.05)

    started = await diag_log(redis)
    expected = sorted(labels, key=lambda label: (-int(label[0]), label[2:]))
    assert len(started) == 3000, f"seed {seed}"
    assert [int(label[0]) for label in started] == sorted(priorities, reverse=True), f"seed {seed}"
    assert started == expected, f"seed {seed}: within one priority, first submitted starts first"


async def test_a_deferred_job_never_starts_early_whatever_its_priority_and_starts_soon_after(
    http: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    backlog_spec = [sleep(0.025, priority=0) for _ in range(120)]  # drains in 3 s at the very least
    deferred_spec = [record(f"deferred-{n}", priority=9, delay_seconds=1.5) for n in range(5)]
    async with background_worker(max_jobs=1):
        accepted = await submit_batch(http, backlog_spec[:60] + deferred_spec + backlog_spec[60:])
        deferred_ids = [job["id"] for job in accepted[60:65]]
        backlog_ids = [job["id"] for job in accepted[:60] + accepted[65:]]
        assert {job["status"] for job in accepted[60:65]} == {"deferred"}
        await wait_until_ended(redis, deferred_ids, timeout_s=10)
        deferred = await read_jobs(http, deferred_ids)
        backlog = await read_jobs(http, backlog_ids)
        await wait_until_ended(redis, backlog_ids, timeout_s=15)  # never stop a worker mid-job

    for job in deferred:
        assert job["status"] == "succeeded"
        late_ms = ms(job["started_at"]) - ms(job["scheduled_for"])
        assert 0 <= late_ms <= 1000, job
    for job, claimed in zip(deferred, await claimed_at(redis, deferred_ids), strict=True):
        assert claimed >= ms(job["scheduled_for"]), job
    not_started = [job for job in backlog if job["started_at"] is None]
    assert len(not_started) >= 20, "the backlog had drained: the test proves nothing"


# -- queues and weights ------------------------------------------------------------------------------------


async def test_a_flood_on_bulk_never_starves_default_or_critical(
    http: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    async with background_worker(max_jobs=2):
        flood = await submit_batch(http, [record(f"bulk-{n}", queue="bulk") for n in range(1000)])
        started_before = await logged(redis)
        urgent = await submit_batch(
            http,
            [record(f"default-{n}", queue="default") for n in range(20)]
            + [record(f"critical-{n}", queue="critical") for n in range(5)],
        )
        await wait_until_ended(redis, [job["id"] for job in flood + urgent], timeout_s=30)

    started = await diag_log(redis)
    assert sorted(started) == sorted(job["params"]["label"] for job in flood + urgent)
    bulk_left = 1000 - started_before
    assert bulk_left >= 500, "the flood had mostly drained before the others came: nothing proven"
    after = started[started_before:]
    urgent_positions = [n for n, label in enumerate(after) if not label.startswith("bulk-")]
    assert len(urgent_positions) == 25
    # all 25 start within the first 15% of what started after they were submitted
    assert max(urgent_positions) < 0.15 * len(after), urgent_positions


async def wait_until_logged(redis: ArqRedis, count: int, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while await logged(redis) < count:
            await asyncio.sleep(0.02)


def starts_by_queue(labels: Iterable[str]) -> dict[str, int]:
    return {queue: sum(1 for label in labels if label.startswith(f"{queue}-")) for queue in QUEUES}


QUEUES = ("critical", "default", "bulk")


async def test_while_every_queue_has_work_a_worker_shares_its_slots_by_weight(
    http: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    """Weights 6:3:1: of the first 300 starts, 180 critical, 90 default and 30 bulk (give or take 15)."""
    for queue in QUEUES:
        await submit_batch(http, [record(f"{queue}-{n}", queue=queue) for n in range(300)])
    async with background_worker(max_jobs=4):
        await wait_until_logged(redis, 900, timeout_s=20)

    shares = starts_by_queue((await diag_log(redis))[:300])
    assert min(shares.values()) > 0  # and every queue had work throughout: none has 300 starts yet
    ideal = {"critical": 180, "default": 90, "bulk": 30}
    assert all(abs(shares[q] - ideal[q]) <= 15 for q in QUEUES), f"{shares} instead of {ideal}"


async def test_an_idle_queues_turn_goes_to_the_busy_queues_by_their_weights(
    http: httpx.AsyncClient, redis: ArqRedis, background_worker: Any
) -> None:
    """critical (6) has nothing: default (3) and bulk (1) share the slots 3:1, 225 and 75 of 300."""
    for queue in ("default", "bulk"):
        await submit_batch(http, [record(f"{queue}-{n}", queue=queue) for n in range(300)])
    async with background_worker(max_jobs=1):
        await wait_until_logged(redis, 600, timeout_s=20)

    shares = starts_by_queue((await diag_log(redis))[:300])
    ideal = {"critical": 0, "default": 225, "bulk": 75}
    assert all(abs(shares[q] - ideal[q]) <= 15 for q in QUEUES), f"{shares} instead of {ideal}"


async def test_a_worker_serving_only_critical_never_runs_a_default_job(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings, run_jobs: Any
) -> None:
    waiting = await submit(http, "diag.record", {"label": "default"}, queue="default")
    critical_only = make_worker(
        settings.model_copy(update={"queues": "critical"}), queue_name=keys.arq_queue("critical")
    )
    task = asyncio.create_task(critical_only.main())
    try:
        urgent = await submit_batch(http, [record(f"critical-{n}", queue="critical") for n in range(3)])
        await wait_until_ended(redis, [job["id"] for job in urgent], timeout_s=10)
        workers = (await http.get("/v1/workers")).json()["workers"]
        assert [w["queues"] for w in workers] == [["critical"]]
        # the jobs submitted after it have run; it still waits, where only default's workers look
        assert (await read_job(http, waiting["id"]))["status"] == "queued"
        assert await redis.zrange(keys.ready("default"), 0, -1) == [waiting["id"].encode()]
        assert await diag_log(redis) == ["critical-0", "critical-1", "critical-2"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await critical_only.close()

    await run_jobs()  # a worker serving default runs it
    assert (await read_job(http, waiting["id"]))["status"] == "succeeded"


async def test_a_submit_to_an_unknown_queue_is_refused_and_writes_nothing(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    response = await http.post("/v1/jobs", json=record("lost", queue="urgent"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {
            "pointer": "/queue",
            "location": "body",
            "message": "diag.record may run on critical, default, bulk; not on 'urgent'",
            "code": "value_error",
        }
    ]
    batch = await http.post("/v1/jobs:batch", json={"jobs": [record("fine"), record("lost", queue="urgent")]})
    assert batch.status_code == 422
    assert batch.headers["content-type"] == "application/problem+json"
    assert [error["pointer"] for error in batch.json()["errors"]] == ["/jobs/1/queue"]
    assert await redis.dbsize() == 0


# -- rate and concurrency limits, across worker processes ------------------------------------------------


@pytest.mark.slow
async def test_a_rate_limit_holds_across_worker_processes_and_costs_no_attempt(
    http: httpx.AsyncClient, redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    limits = json.dumps({"diag.record": {"rate": 20, "per_s": 1}})
    async with worker_processes(redis, redis_url, tmp_path, 3, job_limits=limits, worker_max_jobs="4"):
        accepted = await submit_batch(http, [record(f"rated-{n}") for n in range(80)])
        ids = [job["id"] for job in accepted]
        await wait_until_ended(redis, ids, timeout_s=15)
        done_by_worker = await jobs_done_by_worker(http, total=80)
        jobs = await read_jobs(http, ids)

    assert [(job["status"], job["attempts"]) for job in jobs] == [("succeeded", 1)] * 80
    assert len(await diag_log(redis)) == 80
    assert sum(1 for done in done_by_worker if done) >= 2, done_by_worker  # the cluster shared them
    starts = sorted(await claimed_at(redis, ids))
    crowded = [(starts[i], starts[i + 20]) for i in range(60) if starts[i + 20] - starts[i] < 1000]
    assert crowded == [], "21 starts within one second"
    assert starts[-1] - starts[0] >= 3000  # 80 starts at 20 a second need four windows


@pytest.mark.slow
async def test_a_concurrency_limit_holds_across_worker_processes_and_costs_no_attempt(
    http: httpx.AsyncClient, redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    limits = json.dumps({"diag.sleep": {"concurrency": 2}})
    async with worker_processes(redis, redis_url, tmp_path, 3, job_limits=limits):
        accepted = await submit_batch(http, [sleep(0.3) for _ in range(12)])
        ids = [job["id"] for job in accepted]
        await wait_until_ended(redis, ids, timeout_s=15)
        done_by_worker = await jobs_done_by_worker(http, total=12)
        jobs = await read_jobs(http, ids)

    assert [(job["status"], job["attempts"]) for job in jobs] == [("succeeded", 1)] * 12
    assert sum(1 for done in done_by_worker if done) >= 2, done_by_worker
    intervals = run_intervals(jobs)
    assert most_at_once(intervals) == 2, sorted(intervals)  # never 3, and 2 side by side at times


@pytest.mark.slow
async def test_a_keyed_concurrency_limit_holds_per_key_and_keys_run_side_by_side(
    http: httpx.AsyncClient, redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    limits = json.dumps({"diag.sleep": {"concurrency": 1}})
    async with worker_processes(redis, redis_url, tmp_path, 2, job_limits=limits):
        accepted = await submit_batch(http, [sleep(0.3, tag=tag) for _ in range(4) for tag in ("a", "b")])
        ids = [job["id"] for job in accepted]
        await wait_until_ended(redis, ids, timeout_s=15)
        jobs = await read_jobs(http, ids)

    assert [(job["status"], job["attempts"]) for job in jobs] == [("succeeded", 1)] * 8
    by_tag = {tag: [job for job in jobs if job["params"]["tag"] == tag] for tag in ("a", "b")}
    assert most_at_once(run_intervals(by_tag["a"])) == 1
    assert most_at_once(run_intervals(by_tag["b"])) == 1
    assert most_at_once(run_intervals(jobs)) == 2


@pytest.mark.slow
async def test_jobs_held_back_by_a_concurrency_limit_do_not_block_the_workers_other_jobs(
    http: httpx.AsyncClient, redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    limits = json.dumps({"diag.sleep": {"concurrency": 1}})
    async with worker_processes(redis, redis_url, tmp_path, 1, job_limits=limits):
        sleeps = await submit_batch(http, [sleep(1) for _ in range(5)])
        sleep_ids = [job["id"] for job in sleeps]
        async with asyncio.timeout(10):
            while await redis.exists(*(keys.arq_in_progress(i) for i in sleep_ids)) == 0:
                await asyncio.sleep(0.02)
        noops = await submit_batch(http, [{"type": "diag.noop"} for _ in range(20)])
        await wait_until_ended(redis, [job["id"] for job in noops], timeout_s=5)
        held = await read_jobs(http, sleep_ids)
        done = await read_jobs(http, [job["id"] for job in noops])

    assert [job["status"] for job in done] == ["succeeded"] * 20
    assert sorted(job["status"] for job in held) == ["in_progress"] + ["queued"] * 4
    first_sleep_start = min(ms(job["started_at"]) for job in held if job["started_at"])
    assert max(ms(job["finished_at"]) for job in done) < first_sleep_start + 1000


async def test_a_job_parked_at_a_limit_since_removed_runs_without_waiting_for_a_slot(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """Parked under ``concurrency: 1`` behind a job whose slot is held for a minute; then the limit is
    removed (workers started without it): the parked job runs at once, not when the slot frees."""
    first = await submit(http, "diag.sleep", {"seconds": 0})
    parked = await submit(http, "diag.sleep", {"seconds": 0})
    claims, _ = await JobQueues(redis).claim(
        lease_ms=60_000,
        free=2,
        limits=json.dumps({"diag.sleep": {"c": 1}}),
        queues=[("default", 1)],
        credits={},
    )
    assert [claim.job_id for claim in claims] == [first["id"]]  # the other one is parked
    async with worker_running(settings):  # a rollout without the limit
        async with asyncio.timeout(5):
            while (await read_job(http, parked["id"]))["status"] != "succeeded":
                await asyncio.sleep(0.05)
