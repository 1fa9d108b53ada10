"""Chaos run: submit jobs while workers are SIGKILLed and paused and Redis restarts and refuses writes, then
prove no accepted job is lost, none ran past its concurrency limit and none ended twice.

    .venv/bin/python -m bench.chaos --jobs 10000 --workers 4 --kill-every 5 --redis-restarts 1 \
        --faults kill,pause,oom,readonly,redis-restart

It starts everything itself through ``service.devtools.processes.spawn``, so nothing outlives it: an embedded
Valkey with AOF in a temporary directory (unless ``--redis-url`` names a server, which it then cannot
restart), the API under uvicorn and K ``arq worker_settings.WorkerSettings`` processes. It submits N jobs
through the REST API at a steady rate (mostly ``diag.sleep`` of 0-200 ms, ~10% ``diag.fail`` failing their
first 1 or 2 attempts), retrying a submit that meets a 503 or no answer with the same Idempotency-Key.
Meanwhile, as ``--faults`` says: ``kill`` SIGKILLs a random worker every ``--kill-every`` seconds, starting
a replacement at once; ``pause`` SIGSTOPs a random worker for longer than its lease every ``--pause-every``
seconds, then lets it go on (a VM or GC pause: it comes back to jobs others took over); ``redis-restart``
restarts Redis mid-run; ``oom`` and ``readonly`` make Redis refuse writes for ``--refusal-s`` seconds
(``maxmemory`` reached under ``noeviction``; a replica of a server that is gone, as after a failover);
``failover`` runs everything on a primary, two replicas and three Sentinels instead (the API and the
workers told ``JOBSVC_REDIS_SENTINELS`` and ``JOBSVC_REDIS_MIN_REPLICAS=1``) and SIGKILLs the primary
once mid-run (a restart then stops and starts whichever server is the primary, the refusals happen on
it); ``partition`` (root and iproute2) runs one worker in a network namespace (``bench/netns.py``) and
cuts its link for a lease and a bit every ``--partition-every`` seconds (Redis, and the Sentinels, then
also listen at the host's end of the veth pair, and are known by that address). All seven combine.
``diag.sleep`` runs under a concurrency limit of ``--sleep-concurrency`` across all workers. It stops once
the service lists every accepted job as finished (or at ``--timeout``), reads every accepted job by id and
prints the figures; ``--json PATH`` writes them too.

Exit status 0 only when nothing went wrong: no accepted job lost (404, or never finished), none failed or
cancelled, every submit accepted in the end, no job in the service that the harness did not submit (a
duplicate), no child that died without being killed, never more ``diag.sleep`` jobs running at once than
the limit (from the jobs' own start and finish times), and no job counted as ended more than once (the
service's ``jobsvc_jobs_finished_total`` never above the jobs accepted; a worker SIGKILLed loses at most
its last heartbeat's counts, so the count may be below).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from jobsvc_client import TERMINAL_STATUSES, AsyncJobsClient, Job, JobStatus, JobsvcError, NotFound

from bench.netns import HOST_IP, Namespace, network_namespace
from bench.sentinels import SentinelCluster, Server, start_sentinel_cluster, start_server
from service.devtools.embedded import EmbeddedRedis
from service.devtools.processes import spawn, stop_processes

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SLEEP, FAIL = "diag.sleep", "diag.fail"
#: attempts a job may spend on kills beyond those it plans to use, so kills never exhaust a job
KILL_MARGIN_ATTEMPTS = 8
#: the admin key the harness gives the API it starts, and calls it with
ADMIN_KEY = f"jsk_admin_{uuid.uuid4().hex}{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: a submit not accepted after this long of retrying is given up, and fails the run
SUBMIT_GIVE_UP_S = 60.0
#: with the failover fault, how long a silent primary takes to be judged down: longer than a Redis
#: restart (so a restart is a restart, not a second failover), short enough for a quick run
SENTINEL_DOWN_AFTER_MS = 3000
RECOVERY_METHOD = (
    "recovery = started_at of a re-run diag.sleep job's final attempt (attempts > 1) minus the latest "
    "worker kill before it. It includes the lease running out and any wait for a free worker; a job that "
    "stayed down through a later kill is undercounted. Re-runs preceded by a Redis restart or a worker "
    "pause rather than a kill, or by nothing, are counted apart."
)


@dataclass(frozen=True)
class ChaosOptions:
    jobs: int = 10_000
    workers: int = 4
    kill_every_s: float = 5.0
    #: stop killing after this many kills (None: until the run ends)
    max_kills: int | None = None
    redis_restarts: int = 1
    redis_downtime_s: float = 1.0
    #: which faults to cause: kill, pause, oom, readonly, redis-restart
    faults: frozenset[str] = frozenset({"kill", "redis-restart"})
    #: SIGSTOP a random worker (for a lease and a bit) every this many seconds, with the pause fault
    pause_every_s: float = 7.0
    #: how long Redis refuses writes, with the oom and readonly faults
    refusal_s: float = 2.0
    #: cut the network namespace's worker off (for a lease and a bit) every this many seconds
    partition_every_s: float = 11.0
    #: diag.sleep jobs running at once across all workers, at most (JOBSVC_JOB_LIMITS)
    sleep_concurrency: int = 8
    #: a server to use instead of the embedded one; it cannot be restarted
    redis_url: str | None = None
    #: submissions per second (0: as fast as `concurrency` allows); pacing makes traffic and chaos overlap
    rate: float = 150.0
    concurrency: int = 32
    fail_share: float = 0.1
    max_sleep_s: float = 0.2
    heartbeat_s: float = 0.5
    lease_s: float = 2.0
    poll_delay_s: float = 0.05
    shutdown_grace_s: float = 1.0
    timeout_s: float = 900.0
    seed: int | None = None
    #: Redis data and the children's logs (default: a temporary directory, removed when the run passes)
    work_dir: Path | None = None
    quiet: bool = False

    def child_settings(self) -> dict[str, str]:
        return {
            "JOBSVC_WORKER_HEARTBEAT_S": f"{self.heartbeat_s:g}",
            "JOBSVC_WORKER_LEASE_S": f"{self.lease_s:g}",
            "JOBSVC_WORKER_POLL_DELAY_S": f"{self.poll_delay_s:g}",
            "JOBSVC_WORKER_SHUTDOWN_GRACE_S": f"{self.shutdown_grace_s:g}",
            "JOBSVC_JOB_LIMITS": json.dumps({SLEEP: {"concurrency": self.sleep_concurrency}}),
        }


@dataclass
class ChaosReport:
    accepted: int = 0
    accepted_by_replay: int = 0  # a retried submit answered 200: an earlier try had been accepted
    not_accepted: int = 0
    submit_retries: dict[str, int] = field(default_factory=dict)  # why: "503", "no answer", "<status>"
    succeeded: int = 0
    failed_for_good: int = 0
    cancelled: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # error types of failed and cancelled jobs
    lost_unknown: int = 0  # 404, or unreadable
    lost_never_finished: int = 0
    accepted_twice: int = 0  # ids beyond one per Idempotency-Key: a retried submit that made a second job
    unexpected_jobs: int | None = 0  # listed by the service, never submitted here; None: not checked
    reruns: int = 0  # sum over diag.sleep jobs of max(0, attempts - 1)
    fail_planned_retries: int = 0  # sum over diag.fail jobs of `times`
    fail_extra_executions: int = 0  # diag.fail attempts beyond times + 1
    worker_kills: int = 0
    worker_pauses: int = 0
    partitions: int = 0  # the namespace's worker cut off past its lease
    write_refusals: dict[str, int] = field(default_factory=dict)  # "oom"/"readonly" -> times
    failovers: int = 0  # primaries SIGKILLed and replaced by the Sentinels
    failover_max_s: float | None = None  # the longest from the SIGKILL to the new primary named
    most_sleeps_at_once: int = 0  # from the final attempts' start and finish times
    limit_breaches: int = 0  # moments more diag.sleep ran at once than the limit allows
    ended_counted: int | None = None  # jobsvc_jobs_finished_total over the harness's types
    ended_twice: int = 0  # ended_counted beyond the jobs accepted
    unexpected_exits: int = 0  # workers that died without being killed
    redis_restarts: int = 0
    redis_downtime_s: float = 0.0
    recoveries: int = 0
    recovery_max_s: float | None = None
    recovery_median_s: float | None = None
    reruns_not_after_kill: int = 0
    submit_s: float = 0.0
    run_s: float = 0.0
    verify_s: float = 0.0
    wall_s: float = 0.0
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lost_unknown + self.lost_never_finished

    def problems(self) -> list[str]:
        """Why this run fails; empty when it passes."""
        checks = {
            "accepted jobs lost": self.lost,
            "jobs failed for good": self.failed_for_good,
            "jobs cancelled": self.cancelled,
            "submits never accepted": self.not_accepted,
            "submits accepted twice (duplicates)": self.accepted_twice,
            "jobs the harness did not submit (duplicates)": self.unexpected_jobs or 0,
            "workers that died without being killed": self.unexpected_exits,
            "diag.sleep jobs beyond the concurrency limit at some moment": self.limit_breaches,
            "ends counted beyond one per job": self.ended_twice,
        }
        return [f"{count} {what}" for what, count in checks.items() if count]

    def example(self, kind: str, text: str) -> None:
        if len(self.examples.setdefault(kind, [])) < 10:
            self.examples[kind].append(text)


@dataclass(frozen=True)
class PlannedJob:
    key: str  # its Idempotency-Key
    type: str
    params: dict[str, Any]
    max_attempts: int

    @property
    def body(self) -> dict[str, Any]:
        return {"type": self.type, "params": self.params, "max_attempts": self.max_attempts}


def plan_jobs(options: ChaosOptions, rng: random.Random) -> list[PlannedJob]:
    run = uuid.uuid4().hex[:8]
    planned = []
    for i in range(options.jobs):
        if rng.random() < options.fail_share:
            times = rng.choice((1, 2))
            planned.append(
                PlannedJob(f"chaos-{run}-{i}", FAIL, {"times": times}, times + 1 + KILL_MARGIN_ATTEMPTS)
            )
        else:
            params = {"seconds": round(rng.uniform(0, options.max_sleep_s), 3)}
            planned.append(PlannedJob(f"chaos-{run}-{i}", SLEEP, params, 1 + KILL_MARGIN_ATTEMPTS))
    return planned


class Clock:
    """Seconds since the run started, for progress lines on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.started = time.monotonic()
        self.quiet = quiet

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


class Cluster:
    """The processes under test: Redis (embedded unless a URL was given), the API and the workers. Every
    child is spawned from the main thread, which their parent-death signal is tied to."""

    def __init__(self, options: ChaosOptions, work_dir: Path) -> None:
        self.options = options
        self.work_dir = work_dir
        self.logs = work_dir / "logs"
        #: with the failover fault: a primary, two replicas and three Sentinels instead of one server
        self.sentinels: SentinelCluster | None = None
        replicated = "failover" in options.faults
        #: with the partition fault: a server also listening on the host's end of a veth pair, and one
        #: worker in a network namespace whose link gets cut
        self.partitioning = "partition" in options.faults
        self.server: Server | None = None
        self.namespace: Namespace | None = None
        self._exits = contextlib.ExitStack()
        self.cut_off: subprocess.Popen[bytes] | None = None
        embedded = not (options.redis_url or replicated or self.partitioning)
        self.redis = EmbeddedRedis(work_dir) if embedded else None
        self.redis_url = options.redis_url or ""
        self.base_url = f"http://127.0.0.1:{_free_port()}"
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_logs: dict[int, Path] = {}
        self.unexpected_exits: list[str] = []
        self._spawned = 0

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        restarts = "redis-restart" in self.options.faults  # a server restarted must come back with its data
        # a partitioned worker reaches Redis (and the Sentinels) at the host's end of the veth pair only
        if self.partitioning:
            self.namespace = self._exits.enter_context(network_namespace())
        host = HOST_IP if self.partitioning else "127.0.0.1"
        if self.redis is not None:
            self.redis_url = self.redis.start()
        elif "failover" in self.options.faults:
            directory = self.work_dir / "redis"
            self.sentinels = start_sentinel_cluster(
                directory, host=host, persistent=restarts, down_after_ms=SENTINEL_DOWN_AFTER_MS
            )
            self.redis_url = "redis://sentinel-named-primary/0"  # the password and db; the host is unused
        elif self.partitioning:
            bind = f"127.0.0.1 {HOST_IP}"
            self.server = start_server(self.work_dir / "redis", _free_port(), bind=bind, persistent=restarts)
            self.redis_url = f"redis://127.0.0.1:{self.server.port}/0"
        port = self.base_url.rpartition(":")[2]
        uvicorn: list[str | Path] = [BIN / "uvicorn", "service.main:app", "--port", port, "--no-access-log"]
        self.api = self._spawn(self.logs / "api.log", uvicorn)
        for _ in range(self.options.workers):
            self.start_worker()

    def _spawn(self, log: Path, args: list[str | Path], *, cut_off: bool = False) -> subprocess.Popen[bytes]:
        """A child; with ``cut_off``, in the network namespace, reaching Redis across the veth pair."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSVC_")}
        redis_url = self.redis_url
        if cut_off:
            assert self.namespace is not None
            args = [*self.namespace.wrapper, *args]
            if self.server is not None:  # with Sentinels, they name the primary at HOST_IP
                redis_url = f"redis://{HOST_IP}:{self.server.port}/0"
        env |= {"JOBSVC_REDIS_URL": redis_url, "JOBSVC_DIAGNOSTICS": "true"}
        env |= {"JOBSVC_DATA_DIR": str(self.work_dir), **self.options.child_settings()}
        # one machine, reached across a veth pair: development, which an unset environment would not be
        env |= {"JOBSVC_ADMIN_API_KEY": ADMIN_KEY, "JOBSVC_ENVIRONMENT": "development"}
        if self.sentinels is not None:  # a 202 means a replica has the job: the failover loses none
            env |= {
                "JOBSVC_REDIS_SENTINELS": self.sentinels.sentinels_setting,
                "JOBSVC_REDIS_MIN_REPLICAS": "1",
            }
        with log.open("ab") as out:
            return spawn(args, cwd=ROOT, env=env, stdout=out)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Another worker: in the network namespace when partitioning and none runs there now."""
        self._spawned += 1
        log = self.logs / f"worker-{self._spawned}.log"
        cut_off = self.partitioning and (self.cut_off is None or self.cut_off.poll() is not None)
        worker = self._spawn(log, [BIN / "arq", "worker_settings.WorkerSettings"], cut_off=cut_off)
        if cut_off:
            self.cut_off = worker
        self.workers.append(worker)
        self.worker_logs[worker.pid] = log
        return worker

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until /readyz answers 200: the API serves, Redis answers, a worker has sent a heartbeat."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as http:
            while True:
                self.check_api()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service was not ready within {timeout_s:g}s; see {self.logs}")
                await asyncio.sleep(0.1)

    def check_api(self) -> None:
        if self.api is None or self.api.poll() is not None:
            raise RuntimeError(f"the API process exited; see {self.logs / 'api.log'}")

    def replace_dead_workers(self) -> list[str]:
        """Replace workers that exited although nobody killed them; returns (and keeps) how each died."""
        deaths = []
        for worker in [worker for worker in self.workers if worker.poll() is not None]:
            self.workers.remove(worker)
            log = self.worker_logs[worker.pid]
            deaths.append(f"pid {worker.pid} exited with {worker.returncode}: {_last_error(log)} ({log})")
            self.start_worker()
        self.unexpected_exits += deaths
        return deaths

    def kill_worker(self, rng: random.Random) -> tuple[int, int, float]:
        """SIGKILL a random worker and start another; returns both pids and the moment of the kill."""
        victim = rng.choice(self.workers)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        victim.wait()
        self.workers.remove(victim)
        return victim.pid, self.start_worker().pid, killed_at

    async def pause_worker(self, rng: random.Random, seconds: float) -> int:
        """SIGSTOP a random worker for ``seconds``, then SIGCONT it (unless it was killed meanwhile)."""
        victim = rng.choice(self.workers)
        victim.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            if victim.poll() is None:
                victim.send_signal(signal.SIGCONT)
        return victim.pid

    async def refuse_writes(self, kind: str, seconds: float) -> None:
        """Make Redis refuse writes for ``seconds``: ``oom`` (``maxmemory`` reached under ``noeviction``) or
        ``readonly`` (a replica of a server that is gone, as a failed-over primary becomes)."""
        client = self._primary()
        try:
            if kind == "oom":
                found = typing.cast(dict[str, str], client.config_get("maxmemory-policy"))
                policy = found["maxmemory-policy"]
                client.config_set("maxmemory-policy", "noeviction")
                client.config_set("maxmemory", "1")
            else:
                client.replicaof("127.0.0.1", str(_free_port()))
            await asyncio.sleep(seconds)
        finally:
            if kind == "oom":
                client.config_set("maxmemory", "0")
                client.config_set("maxmemory-policy", policy)
            else:
                client.replicaof("NO", "ONE")
            client.close()

    async def partition(self, seconds: float) -> None:
        """Cut the network namespace's link for ``seconds``: its worker reaches nothing, nor it anyone."""
        assert self.namespace is not None
        self.namespace.cut()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.namespace.restore()

    def _primary(self) -> redis.Redis:
        """A client of the server that takes writes now."""
        if self.sentinels is not None:
            return redis.Redis(port=self.sentinels.primary().port, socket_timeout=5)
        return redis.Redis.from_url(self.redis_url)

    async def fail_over(self) -> tuple[float, float]:
        """SIGKILL the primary and wait for the Sentinels to promote a replica; returns when it was killed
        and when another primary was named (epoch seconds). The killed server is then started again, as
        an operator would: it rejoins as a replica."""
        assert self.sentinels is not None
        old = self.sentinels.primary()
        old.process.kill()
        killed_at = time.time()
        old.process.wait()
        await asyncio.to_thread(self.sentinels.wait_for_a_new_primary, old)
        named_at = time.time()
        old.start_again()  # main thread: the parent-death signal
        return killed_at, named_at

    async def settled(self) -> None:
        """Behind Sentinels: until the primary has every other server as an online replica and every
        Sentinel agrees. Sentinel's replication is asynchronous: a second failover before the first has
        re-pointed the replicas can promote one that lacks acknowledged writes, a double fault no setting
        of jobsvc's can undo; so each Redis disruption waits for the one before to be over."""
        if self.sentinels is not None:
            await asyncio.to_thread(self.sentinels.wait_until_settled, len(self.sentinels.servers) - 1, 60)

    @property
    def can_restart_redis(self) -> bool:
        """False for a server named by ``--redis-url``: the harness did not start it."""
        return self.redis is not None or self.server is not None or self.sentinels is not None

    async def restart_redis(self, downtime_s: float) -> tuple[float, float]:
        """Stop Redis (SIGTERM: the AOF is flushed), leave it down a while, start it on the same data dir;
        returns when it went down and when it answered again (epoch seconds). Behind Sentinels, the server
        stopped is the primary: a downtime past their ``down-after`` becomes a failover as well."""
        down_at = time.time()
        if self.redis is not None:
            url = self.redis_url
            await asyncio.to_thread(self.redis.stop)
            await asyncio.sleep(downtime_s)
            # start() blocks the loop until the AOF is loaded; main thread only (the parent-death signal)
            if self.redis.start() != url:
                raise RuntimeError("the restarted Redis listens elsewhere; the API and workers cannot follow")
            return down_at, time.time()
        server = self.sentinels.primary() if self.sentinels is not None else self.server
        assert server is not None
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(downtime_s)
        server.start_again()  # main thread, as above
        return down_at, time.time()

    def stop(self) -> None:
        """Workers and the API first, so none spins on a missing Redis; then Redis."""
        stop_processes([*self.workers, *([self.api] if self.api else [])], timeout_s=10.0)
        if self.redis is not None:
            self.redis.stop()
        if self.sentinels is not None:
            self.sentinels.stop()
        if self.server is not None:
            self.server.stop()
        self._exits.close()


@dataclass
class Ledger:
    """What the submitters saw."""

    accepted: dict[str, PlannedJob] = field(default_factory=dict)  # job id -> what was submitted
    done: int = 0  # submits finished, accepted or not
    replays: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    not_accepted: list[str] = field(default_factory=list)


async def submit_one(http: httpx.AsyncClient, job: PlannedJob, ledger: Ledger) -> None:
    """POST until accepted: 202, or 200 when a retry finds an earlier try accepted. A 5xx or no answer is
    retried with the same Idempotency-Key, so the job exists at most once and is counted once."""
    give_up_at = time.monotonic() + SUBMIT_GIVE_UP_S
    delay = 0.05
    while True:
        try:
            response = await http.post("/v1/jobs", json=job.body, headers={"Idempotency-Key": job.key})
        except httpx.TransportError as exc:
            reason = last = f"no answer ({type(exc).__name__})"
        else:
            if response.status_code in (200, 202):
                ledger.accepted[response.json()["id"]] = job
                ledger.replays += response.status_code == 200
                return
            reason, last = str(response.status_code), f"{response.status_code} {response.text[:200]}"
            if response.status_code < 500:  # the harness sent something wrong: retrying cannot help
                ledger.not_accepted.append(f"{job.key}: {last}")
                return
        if time.monotonic() > give_up_at:
            ledger.not_accepted.append(f"{job.key}: gave up after {SUBMIT_GIVE_UP_S:g}s; last {last}")
            return
        ledger.retries[reason] += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def submit_all(base_url: str, plan: list[PlannedJob], options: ChaosOptions, ledger: Ledger) -> None:
    """Submit the plan at `options.rate` per second, at most `options.concurrency` at a time."""
    slots = asyncio.Semaphore(options.concurrency)
    limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(job: PlannedJob) -> None:
        try:
            await submit_one(http, job, ledger)
        finally:
            ledger.done += 1
            slots.release()

    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10.0, limits=limits, headers=AUTH) as http,
        asyncio.TaskGroup() as group,
    ):
        for i, job in enumerate(plan):
            if options.rate > 0:
                await asyncio.sleep(max(0.0, started + i / options.rate - loop.time()))
            await slots.acquire()
            group.create_task(one(job))


@dataclass
class ChaosLog:
    kills: list[float] = field(default_factory=list)  # epoch seconds of each SIGKILL
    restarts: list[float] = field(default_factory=list)  # epoch seconds each Redis stop began
    downtime_s: float = 0.0
    pauses: list[float] = field(default_factory=list)  # epoch seconds each SIGSTOP began
    partitions: list[float] = field(default_factory=list)  # epoch seconds each cut began
    refusals: list[str] = field(default_factory=list)  # "oom" / "readonly", in order
    failovers: list[float] = field(default_factory=list)  # seconds from the primary's SIGKILL to a new one


async def make_chaos(
    cluster: Cluster, options: ChaosOptions, ledger: Ledger, log: ChaosLog, stop: asyncio.Event, clock: Clock
) -> None:
    """Until `stop` is set, the faults `options.faults` names: SIGKILL a random worker every `kill_every_s`,
    SIGSTOP one for a lease and a bit every `pause_every_s`, and the Redis restarts and write refusals spread
    over the submission (one due each time 1/(D+1), 2/(D+1), … of the submits are done). Raises if the API
    dies; replaces workers that die unkilled."""
    rng = random.Random(options.seed)
    faults = options.faults
    restarts = options.redis_restarts if cluster.can_restart_redis and "redis-restart" in faults else 0
    disruptions = ["redis-restart"] * restarts + [k for k in ("oom", "readonly", "failover") if k in faults]
    rng.shuffle(disruptions)
    due = [options.jobs * (k + 1) / (len(disruptions) + 1) for k in range(len(disruptions))]
    next_kill = time.monotonic() + options.kill_every_s
    next_pause = time.monotonic() + options.pause_every_s
    next_cut = time.monotonic() + options.partition_every_s
    pausing: set[asyncio.Task[Any]] = set()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
            cluster.check_api()
            for death in cluster.replace_dead_workers():
                clock.say(f"worker {death}; started a replacement")
            if due and ledger.done >= due[0]:
                due.pop(0)
                kind = disruptions.pop(0)
                await cluster.settled()
                if kind == "redis-restart":
                    down_at, up_at = await cluster.restart_redis(options.redis_downtime_s)
                    log.restarts.append(down_at)
                    log.downtime_s += up_at - down_at
                    clock.say(f"restarted Redis: down for {up_at - down_at:.2f}s")
                elif kind == "failover":
                    killed_at, named_at = await cluster.fail_over()
                    took = named_at - killed_at
                    log.failovers.append(took)
                    clock.say(f"SIGKILLed the primary; the Sentinels named another {took:.1f}s later")
                else:
                    clock.say(f"Redis refuses writes ({kind}) for {options.refusal_s:g}s")
                    await cluster.refuse_writes(kind, options.refusal_s)
                    log.refusals.append(kind)
                    clock.say(f"Redis takes writes again (after {kind})")
                # keep kills apart from the disruption, so a re-run can be told from the other
                next_kill = max(next_kill, time.monotonic() + options.kill_every_s / 2)
            more = options.max_kills is None or len(log.kills) < options.max_kills
            if "kill" in faults and more and time.monotonic() >= next_kill and not stop.is_set():
                killed, started, killed_at = cluster.kill_worker(rng)
                next_kill = time.monotonic() + options.kill_every_s
                log.kills.append(killed_at)
                clock.say(f"SIGKILL worker pid {killed}; started pid {started} (kill {len(log.kills)})")
            if "pause" in faults and time.monotonic() >= next_pause and not pausing and not stop.is_set():
                next_pause = time.monotonic() + options.pause_every_s
                seconds = options.lease_s + 2 * options.heartbeat_s
                log.pauses.append(time.time())
                task: asyncio.Task[Any] = asyncio.create_task(cluster.pause_worker(rng, seconds))
                pausing.add(task)
                task.add_done_callback(pausing.discard)
                clock.say(f"SIGSTOP a worker for {seconds:g}s (pause {len(log.pauses)})")
            if "partition" in faults and time.monotonic() >= next_cut and not stop.is_set():
                next_cut = time.monotonic() + options.partition_every_s
                seconds = options.lease_s + 2 * options.heartbeat_s
                log.partitions.append(time.time())
                cut: asyncio.Task[Any] = asyncio.create_task(cluster.partition(seconds))
                pausing.add(cut)
                cut.add_done_callback(pausing.discard)
                clock.say(f"cut the namespace's worker off for {seconds:g}s (cut {len(log.partitions)})")
    finally:
        for task in list(pausing):
            await asyncio.gather(task, return_exceptions=True)  # every paused worker goes on


async def say_progress(clock: Clock, ledger: Ledger, total: int) -> None:
    while True:
        await asyncio.sleep(5.0)
        clock.say(f"submitted {ledger.done}/{total}, accepted {len(ledger.accepted)}")


async def drain(client: AsyncJobsClient, ledger: Ledger, deadline: float, clock: Clock) -> set[str] | None:
    """Until the service lists every accepted job as finished, or the deadline; returns the ids it listed
    (None if it never answered)."""
    listed: dict[str, JobStatus] | None = None
    last_said = 0.0
    while True:
        try:
            listed = {job.id: job.status async for job in client.iter_jobs(page_size=500)}
        except JobsvcError as exc:
            clock.say(f"listing failed ({exc}); trying again")
        if listed is not None:
            pending = sum(listed.get(job_id) not in TERMINAL_STATUSES for job_id in ledger.accepted)
            if not pending:
                return set(listed)
            if time.monotonic() - last_said > 5:
                last_said = time.monotonic()
                clock.say(f"waiting for {pending} of {len(ledger.accepted)} accepted jobs to finish")
        if time.monotonic() > deadline:
            return set(listed) if listed is not None else None
        await asyncio.sleep(1.0)


async def read_all(client: AsyncJobsClient, job_ids: list[str], concurrency: int) -> dict[str, Job | str]:
    """Every job by id, or why it could not be read ("404", or the last error after a few tries)."""
    slots = asyncio.Semaphore(concurrency)
    found: dict[str, Job | str] = {}

    async def read(job_id: str) -> None:
        async with slots:
            for delay in (0.1, 0.5, 1.0, 2.0, 5.0, None):
                try:
                    found[job_id] = await client.get(job_id)
                    return
                except NotFound:
                    found[job_id] = "404"
                    return
                except JobsvcError as exc:
                    found[job_id] = f"unreadable: {exc}"
                    if delay is None:
                        return
                    await asyncio.sleep(delay)

    async with asyncio.TaskGroup() as group:
        for job_id in job_ids:
            group.create_task(read(job_id))
    return found


def tally(
    report: ChaosReport, ledger: Ledger, final: dict[str, Job | str], log: ChaosLog, limit: int
) -> None:
    """Fill the report from what the submitters saw, the chaos done and the final reads."""
    report.accepted, report.accepted_by_replay = len(ledger.accepted), ledger.replays
    report.not_accepted, report.submit_retries = len(ledger.not_accepted), dict(ledger.retries)
    for line in ledger.not_accepted:
        report.example("not accepted", line)
    per_key = Counter(planned.key for planned in ledger.accepted.values())
    report.accepted_twice = sum(count - 1 for count in per_key.values())
    report.worker_kills, report.redis_restarts = len(log.kills), len(log.restarts)
    report.redis_downtime_s = round(log.downtime_s, 2)
    finished: list[Job] = []
    for job_id, planned in ledger.accepted.items():
        job = final[job_id]
        if isinstance(job, str):
            report.lost_unknown += 1
            report.example("lost", f"{job_id} ({planned.key}): {job}")
            continue
        if job.status not in TERMINAL_STATUSES:
            report.lost_never_finished += 1
            report.example(
                "lost", f"{job_id} ({planned.key}): still {job.status.value}, {job.attempts} attempts"
            )
            continue
        finished.append(job)
        if job.status is not JobStatus.succeeded:
            kind = job.error.type if job.error else "?"
            report.failures[kind] = report.failures.get(kind, 0) + 1
            error = f"{job.error.type}: {job.error.message}" if job.error else "no error recorded"
            report.example(job.status.value, f"{job_id} {job.type}, {job.attempts} attempt(s): {error}")
        report.succeeded += job.status is JobStatus.succeeded
        report.failed_for_good += job.status is JobStatus.failed
        report.cancelled += job.status is JobStatus.cancelled
        if job.type == SLEEP:
            report.reruns += max(0, job.attempts - 1)
        else:
            times = int(planned.params["times"])
            report.fail_planned_retries += times
            report.fail_extra_executions += max(0, job.attempts - (times + 1))
    report.worker_pauses, report.write_refusals = len(log.pauses), dict(Counter(log.refusals))
    report.partitions = len(log.partitions)
    report.failovers = len(log.failovers)
    report.failover_max_s = round(max(log.failovers), 2) if log.failovers else None
    runs = [(job.started_at, job.finished_at) for job in finished if job.type == SLEEP]
    report.most_sleeps_at_once, report.limit_breaches = at_once([(a, b) for a, b in runs if a and b], limit)
    if report.ended_counted is not None:
        report.ended_twice = max(0, report.ended_counted - report.accepted)
    delays, report.reruns_not_after_kill = recovery_times(finished, log)
    report.recoveries = len(delays)
    if delays:
        report.recovery_max_s = round(max(delays), 3)
        report.recovery_median_s = round(statistics.median(delays), 3)


def at_once(runs: list[tuple[datetime, datetime]], limit: int) -> tuple[int, int]:
    """The most runs under way at one moment, and at how many starts more than ``limit`` were (a run
    that ends as another starts is not beside it)."""
    events = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    running = most = breaches = 0
    for _, step in events:  # at equal times the end (-1) sorts first
        running += step
        most = max(most, running)
        breaches += step == 1 and running > limit
    return most, breaches


async def ends_counted(base_url: str, job_types: set[str]) -> int | None:
    """The jobs of ``job_types`` the service counted as ended (``jobsvc_jobs_finished_total``), or None
    when /metrics does not answer."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0, headers=AUTH) as http:
            text = (await http.get("/metrics")).text
    except httpx.TransportError:
        return None
    total = 0.0
    for line in text.splitlines():
        found = re.match(r'^jobsvc_jobs_finished_total\{[^}]*type="([^"]+)"[^}]*\} (\S+)$', line)
        if found and found.group(1) in job_types:
            total += float(found.group(2))
    return int(total)


def recovery_times(jobs: list[Job], log: ChaosLog) -> tuple[list[float], int]:
    """Kill-to-next-start delays of re-run diag.sleep jobs, and how many re-runs no kill preceded."""
    events = sorted(
        [(at, "kill") for at in log.kills]
        + [(at, "restart") for at in log.restarts]
        + [(at, "pause") for at in log.pauses]
        + [(at, "partition") for at in log.partitions]
    )
    moments = [at for at, _ in events]
    delays: list[float] = []
    not_after_kill = 0
    for job in jobs:
        if job.type != SLEEP or job.attempts <= 1 or job.started_at is None:
            continue
        started = job.started_at.timestamp()
        latest = bisect.bisect_right(moments, started) - 1
        if latest >= 0 and events[latest][1] == "kill":
            delays.append(started - moments[latest])
        else:
            not_after_kill += 1
    return delays, not_after_kill


async def run_chaos(options: ChaosOptions) -> ChaosReport:
    """Start the service, submit while wreaking havoc, wait, verify. Every child is stopped on every exit."""
    clock = Clock(options.quiet)
    report = ChaosReport()
    if options.redis_url:
        report.notes.append("--redis-url given: the harness cannot restart that server, so it does not")
        report.notes.append("--redis-url given: others' jobs may be listed there; duplicates go unchecked")
        report.unexpected_jobs = None
    if options.kill_every_s < options.lease_s + options.heartbeat_s:
        report.notes.append(
            "kills come within a lease of each other: a re-run may be put down to a later kill than the one "
            "that interrupted it, and recovery times then read low"
        )
    for note in report.notes:
        clock.say(note)
    clock.say("children run with " + " ".join(f"{k}={v}" for k, v in options.child_settings().items()))
    work_dir = options.work_dir or Path(tempfile.mkdtemp(prefix="jobsvc-chaos-"))
    cluster = Cluster(options, work_dir)
    ledger, log, stop = Ledger(), ChaosLog(), asyncio.Event()
    passed = False
    try:
        cluster.start()
        await cluster.wait_ready()
        clock.say(f"API at {cluster.base_url}, {options.workers} workers, Redis at {cluster.redis_url}")
        started = time.monotonic()
        chaos = asyncio.create_task(make_chaos(cluster, options, ledger, log, stop, clock))
        progress = asyncio.create_task(say_progress(clock, ledger, options.jobs))
        try:
            async with AsyncJobsClient(cluster.base_url, api_key=ADMIN_KEY, timeout=30.0) as client:
                plan = plan_jobs(options, random.Random(options.seed))
                await _unless_chaos_fails(submit_all(cluster.base_url, plan, options, ledger), chaos)
                report.submit_s = round(time.monotonic() - started, 1)
                progress.cancel()
                deadline = started + options.timeout_s
                listed = await _unless_chaos_fails(drain(client, ledger, deadline, clock), chaos)
                report.run_s = round(time.monotonic() - started, 1)
                stop.set()
                await chaos
                verifying = time.monotonic()
                final = await read_all(client, list(ledger.accepted), options.concurrency)
                await asyncio.sleep(2 * options.heartbeat_s)  # the live workers write their counts
                report.ended_counted = await ends_counted(cluster.base_url, {SLEEP, FAIL})
                report.verify_s = round(time.monotonic() - verifying, 1)
        finally:
            stop.set()
            progress.cancel()
            await asyncio.gather(chaos, progress, return_exceptions=True)
        cluster.replace_dead_workers()
        report.unexpected_exits = len(cluster.unexpected_exits)
        for death in cluster.unexpected_exits:
            report.example("workers that died unkilled", death)
        tally(report, ledger, final, log, options.sleep_concurrency)
        if report.unexpected_jobs is not None:
            # the schedules' own runs (``cron:<name>:<tick>``, e.g. the half-hourly cleanup) are not strays
            strays = sorted(
                j for j in (listed or set()) - ledger.accepted.keys() if not j.startswith("cron:")
            )
            report.unexpected_jobs = len(strays)
            for job_id in strays:
                report.example("not submitted by the harness", job_id)
        report.wall_s = round(clock.elapsed(), 1)
        passed = not report.problems()
        return report
    finally:
        cluster.stop()
        if options.work_dir is None and passed:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:  # even when quiet: this is where to look when a run fails
            print(f"Redis data and the children's logs are in {work_dir}", file=sys.stderr)


async def _unless_chaos_fails(work: Coroutine[Any, Any, T], chaos: asyncio.Task[None]) -> T:
    """The result of `work`; if the chaos task fails first (the API died, say), its error instead."""
    task = asyncio.create_task(work)
    try:
        await asyncio.wait([task, chaos], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            chaos.result()  # make_chaos ends early only by raising
        return await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def render(report: ChaosReport, options: ChaosOptions) -> str:
    """The report as a table, with the method behind the recovery figures."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    retries = ", ".join(f"{n} after {why}" for why, n in report.submit_retries.items()) or "none"
    failures = ", ".join(f"{n} {kind}" for kind, n in report.failures.items())
    failures = f"({failures})" if failures else ""
    rows: list[tuple[str, object]] = [
        ("accepted (202, or 200 to a retried submit)", report.accepted),
        ("  of them, 200 to a retry (idempotent replay)", report.accepted_by_replay),
        ("submit retries", f"{sum(report.submit_retries.values())} ({retries})"),
        ("submits never accepted", report.not_accepted),
        ("succeeded", report.succeeded),
        ("failed for good", f"{report.failed_for_good} {failures}".strip()),
        ("cancelled", report.cancelled),
        (
            "LOST: 404 or unreadable / never finished",
            f"{report.lost} ({report.lost_unknown} / {report.lost_never_finished})",
        ),
        ("submits accepted under two ids (duplicates)", report.accepted_twice),
        (
            "jobs in the service not submitted (duplicates)",
            "not checked" if report.unexpected_jobs is None else report.unexpected_jobs,
        ),
        ("executions beyond one per job (diag.sleep)", report.reruns),
        ("diag.fail planned retries", report.fail_planned_retries),
        ("diag.fail executions beyond plan", report.fail_extra_executions),
        ("worker kills (SIGKILL)", report.worker_kills),
        ("worker pauses (SIGSTOP past the lease)", report.worker_pauses),
        ("partitions (a worker's link cut past the lease)", report.partitions),
        (
            "Redis refusing writes (oom / readonly)",
            f"{report.write_refusals.get('oom', 0)} / {report.write_refusals.get('readonly', 0)}",
        ),
        (
            "primary failovers (longest, SIGKILL -> new primary named)",
            f"{report.failovers} ({seconds(report.failover_max_s)})",
        ),
        (
            f"most diag.sleep at once (limit {options.sleep_concurrency}) / breaches",
            f"{report.most_sleeps_at_once} / {report.limit_breaches}",
        ),
        (
            "ends counted by the service / beyond one per job",
            f"{'-' if report.ended_counted is None else report.ended_counted} / {report.ended_twice}",
        ),
        ("workers that died unkilled", report.unexpected_exits),
        ("Redis restarts (downtime)", f"{report.redis_restarts} ({report.redis_downtime_s:.2f} s)"),
        ("re-runs after a kill (measured)", report.recoveries),
        ("  longest recovery, kill -> next start", seconds(report.recovery_max_s)),
        ("  median recovery", seconds(report.recovery_median_s)),
        ("re-runs after a Redis restart, a pause or nothing", report.reruns_not_after_kill),
        ("submit rate achieved", f"{report.accepted / report.submit_s:.0f}/s" if report.submit_s else "-"),
        (
            "submitting / until all finished / verifying",
            f"{report.submit_s:.1f} s / {report.run_s:.1f} s / {report.verify_s:.1f} s",
        ),
        ("wall time, with start-up and shutdown", f"{report.wall_s:.1f} s"),
    ]
    restarting = "redis-restart" in options.faults and not options.redis_url
    restarts = f", {options.redis_restarts} Redis restart(s)" if restarting else ""
    lines = [
        f"chaos: {options.jobs} jobs at {options.rate:g}/s, {options.workers} workers, faults "
        f"{','.join(sorted(options.faults))}: a SIGKILL every {options.kill_every_s:g} s, a pause every "
        f"{options.pause_every_s:g} s{restarts}, write refusals of {options.refusal_s:g} s",
        "children: " + " ".join(f"{k}={v}" for k, v in options.child_settings().items()),
        "",
        *(f"  {name:<48} {value}" for name, value in rows),
        "",
        "method: " + RECOVERY_METHOD,
        *(f"note: {note}" for note in report.notes),
    ]
    for kind, examples in report.examples.items():
        lines += [f"{kind} (up to 10):", *(f"  {example}" for example in examples)]
    problems = report.problems()
    lines.append(
        "FAIL: " + "; ".join(problems)
        if problems
        else "PASS: no job lost, failed, duplicated, run past its limit or ended twice"
    )
    return "\n".join(lines)


FAULTS = ("kill", "pause", "oom", "readonly", "redis-restart", "failover", "partition")


def _faults(text: str) -> frozenset[str]:
    named = frozenset(part.strip() for part in text.split(",") if part.strip())
    if unknown := named - set(FAULTS):
        raise argparse.ArgumentTypeError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    return named


#: command-line flags: (flag, ChaosOptions field, type, help)
FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("--jobs", "jobs", int, "jobs to submit"),
    ("--workers", "workers", int, "worker processes"),
    ("--kill-every", "kill_every_s", float, "SIGKILL a random worker every this many seconds"),
    ("--max-kills", "max_kills", int, "stop killing after this many kills (default: no limit)"),
    ("--faults", "faults", _faults, f"comma-separated, of {','.join(FAULTS)}"),
    (
        "--pause-every",
        "pause_every_s",
        float,
        "SIGSTOP a random worker past its lease every this many seconds",
    ),
    ("--refusal-s", "refusal_s", float, "seconds Redis refuses writes, for the oom and readonly faults"),
    ("--partition-every", "partition_every_s", float, "cut the namespace's worker off every this many s"),
    ("--sleep-concurrency", "sleep_concurrency", int, "diag.sleep jobs at once across all workers, at most"),
    ("--redis-restarts", "redis_restarts", int, "Redis restarts, spread over the submission"),
    ("--redis-downtime", "redis_downtime_s", float, "seconds Redis stays down on each restart"),
    ("--redis-url", "redis_url", str, "use this server instead of an embedded one (no restarts)"),
    ("--rate", "rate", float, "submissions per second; 0: as fast as --concurrency allows"),
    ("--concurrency", "concurrency", int, "requests in flight"),
    ("--heartbeat", "heartbeat_s", float, "JOBSVC_WORKER_HEARTBEAT_S of the workers"),
    ("--lease", "lease_s", float, "JOBSVC_WORKER_LEASE_S of the workers"),
    ("--timeout", "timeout_s", float, "stop waiting for jobs this many seconds after the first submit"),
    ("--seed", "seed", int, "seed of the job mix and of the choice of victims"),
    (
        "--work-dir",
        "work_dir",
        Path,
        "keep Redis data and logs here (default: a temp dir, removed on a pass)",
    ),
]


def parse_args(argv: list[str] | None = None) -> tuple[ChaosOptions, Path | None]:
    defaults = ChaosOptions()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    for flag, name, kind, text in FLAGS:
        default = getattr(defaults, name)
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(flag, dest=name, type=kind, default=default, help=text + shown)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = vars(parser.parse_args(argv))
    json_path = args.pop("json")
    return ChaosOptions(**args), json_path


async def _main(options: ChaosOptions) -> ChaosReport:
    """run_chaos, with SIGTERM turned into a cancellation so that children are stopped as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_chaos(options)


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_args(argv)
    try:
        report = asyncio.run(_main(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # the service did not start, or the API died mid-run
        print(f"chaos run aborted: {exc}", file=sys.stderr)
        return 2
    print(render(report, options))
    if json_path is not None:
        figures = {**asdict(report), "lost": report.lost, "problems": report.problems()}
        figures |= {"options": asdict(options), "method": RECOVERY_METHOD}
        json_path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 1 if report.problems() else 0


def _last_error(log: Path) -> str:
    """The last exception line (``module.SomeError: message``) of a child's log."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b.*:", line)]
    return errors[-1] if errors else "no exception in its log"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
