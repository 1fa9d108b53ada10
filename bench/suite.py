"""Benchmark suite: jobsvc next to vanilla ARQ and, where installed, SAQ, taskiq, Dramatiq and Celery.

    .venv/bin/python -m bench.suite                      # everything, about 10 minutes on 2 cores
    .venv/bin/python -m bench.suite --quick --only jobsvc
    .venv/bin/python -m bench.suite --only drain,arq-default,jobsvc --jobs 5000

It starts what it needs and stops it at the end, also on Ctrl-C: a fresh embedded Valkey (or a FLUSHALL of
``--redis-url``) for every scenario, so no system's keys or command counts mix with another's, and the
workers and APIs as separate processes. Sections (docs/BENCHMARKS.md says how each is measured):

    pickup    enqueue -> start latency of a stamp job, idle and while a backlog drains (1 worker)
    drain     jobs/s draining a backlog of no-op and of 10 ms sleep jobs with 1, 2 and 4 workers
    rest      open-loop submits to the REST API: single and batches of 100 (jobsvc and a minimal ARQ API)
    commands  Redis commands, memory and append-only-file bytes per queued and per finished job
    idle      Redis commands per second of one idle worker

One table per section, every system side by side with its ratio to vanilla ARQ's defaults; every figure
also goes to JSON (``--json``, default bench/results/latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import (
    ROOT,
    CountingRedis,
    Stack,
    aof_size,
    calls_between,
    command_calls,
    free_port,
    open_loop,
    poll_until,
    server_version,
    signal_groups,
    summary_ms,
    used_memory,
    wait_http,
    wait_idle,
)
from bench.peers import BASELINE, SYSTEMS, load
from bench.peers.base import Kind, System
from service.collector import freeze_startup_objects

SECTIONS = ("pickup", "drain", "rest", "commands", "idle")
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
PACKAGES = ("arq", "redis", "fastapi", "uvicorn", "saq", "taskiq", "taskiq-redis", "dramatiq", "celery")
BATCH_SIZE = 100
Figures = dict[str, Any]


@dataclass(frozen=True)
class Options:
    #: backlog of each drain run, and jobs of the commands section
    jobs: int = 2000
    #: no-op jobs draining while stamps measure pickup under load
    backlog: int = 1000
    #: stamp jobs submitted one at a time at idle
    idle_samples: int = 30
    #: pause between stamps submitted under load
    load_interval_s: float = 0.025
    #: jobs per second offered, open loop, while stamps measure pickup at a steady load (about half of
    #: what one jobsvc worker drains on the 2-core machine of docs/BENCHMARKS.md)
    steady_rate: float = 1100.0
    steady_s: float = 3.0
    worker_counts: tuple[int, ...] = (1, 2, 4)
    #: single submits per second offered to the API
    rates: tuple[float, ...] = (200, 500, 1000)
    #: batch submits (of 100 jobs) per second offered to the API
    batch_rates: tuple[float, ...] = (2, 5, 10)
    rest_duration_s: float = 4.0
    #: processes serving the API in the REST section, each count a run of its own (uvicorn's --workers)
    api_processes: tuple[int, ...] = (1,)
    idle_s: float = 30.0  # several heartbeats: an idle jobsvc worker writes every 5 s
    systems: tuple[str, ...] = tuple(SYSTEMS)
    sections: tuple[str, ...] = SECTIONS
    redis_url: str | None = None
    quick: bool = False


QUICK = {
    "jobs": 300,
    "backlog": 200,
    "idle_samples": 6,
    "steady_rate": 200.0,
    "steady_s": 1.0,
    "worker_counts": (1,),
    "rates": (200.0,),
    "batch_rates": (5.0,),
    "rest_duration_s": 1.0,
    "idle_s": 6.0,  # at least one heartbeat
}


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def connected(stack: Stack, system: System) -> Any:
    """A fresh server, the system's client connected to it, and a counting client of the suite's own."""
    async with stack.server() as url:
        await system.connect(url)
        counter = CountingRedis.from_url(url)
        try:
            yield url, counter
        finally:
            await counter.aclose()
            await system.close()


async def until_done(
    system: System, counter: CountingRedis, ids: Sequence[str], *, timeout_s: float
) -> float:
    """Poll until none of `ids` is unfinished; ``time.time()`` of the poll that saw it."""

    async def done() -> bool:
        return await system.remaining(counter, ids) == 0

    return await poll_until(done, timeout_s=timeout_s, interval_s=0.005, what=f"{system.name} jobs")


async def pickup(stack: Stack, system: System, options: Options, clock: Clock) -> Figures:
    async with connected(stack, system) as (url, counter):
        worker = stack.spawn(system.worker_args(), system.worker_env(url), f"{system.name}-pickup-worker")
        ids = [await system.enqueue("stamp")]  # warm-up: the worker is up once it has run one
        await until_done(system, counter, ids, timeout_s=60)
        idle: list[float] = []
        for _ in range(options.idle_samples):
            await asyncio.sleep(random.uniform(0.05, 0.15))  # no phase lock with a poll loop
            enqueued_at = time.time()
            job = await system.enqueue("stamp")
            ids.append(job)
            await until_done(system, counter, ids, timeout_s=30)
            idle.append((await system.started_at([job]))[job] - enqueued_at)
        clock.say(f"{system.name}: idle pickup p50 {summary_ms(idle).get('p50')} ms")
        steady, offered_per_s = await steady_pickup(system, counter, ids, options)
        clock.say(
            f"{system.name}: pickup at {offered_per_s:.0f} jobs/s p99 {summary_ms(steady).get('p99')} ms"
        )

        signal_groups([worker], signal.SIGSTOP)  # the whole backlog is waiting when the stamps begin
        try:
            ids += await system.enqueue_many("noop", options.backlog)
        finally:
            signal_groups([worker], signal.SIGCONT)
        stamps: dict[str, float] = {}
        began = time.time()
        while True:  # stamps until the backlog ahead of them has drained
            enqueued_at = time.time()
            job = await system.enqueue("stamp")
            stamps[job] = enqueued_at
            ids.append(job)
            if await system.remaining(counter, ids) <= len(stamps) or time.time() - began > 120:
                break
            await asyncio.sleep(options.load_interval_s)
        drained_s = time.time() - began
        await until_done(system, counter, ids, timeout_s=60)
        started = await system.started_at(list(stamps))
        load = [started[job] - at for job, at in stamps.items() if job in started]
    return {
        "idle_ms": summary_ms(idle),
        "steady_ms": summary_ms(steady),
        "steady_offered_per_s": round(offered_per_s, 1),
        "load_ms": summary_ms(load),
        "load_backlog": options.backlog,
        "load_drain_s": round(drained_s, 2),
    }


async def steady_pickup(
    system: System, counter: CountingRedis, ids: list[str], options: Options
) -> tuple[list[float], float]:
    """Open loop: jobs at ``steady_rate`` for ``steady_s``, every 20th a stamp (the rest no-ops), each sent
    at its scheduled moment whatever the earlier ones are doing; the stamps' pickup latencies, and the
    rate the sends achieved."""
    loop = asyncio.get_running_loop()
    stamps: dict[str, float] = {}

    async def send(n: int) -> None:
        kind: Kind = "stamp" if n % 20 == 0 else "noop"
        enqueued_at = time.time()
        job = await system.enqueue(kind)
        ids.append(job)
        if kind == "stamp":
            stamps[job] = enqueued_at

    sends: list[asyncio.Task[None]] = []
    began = loop.time()
    for n in range(int(options.steady_rate * options.steady_s)):
        delay = began + n / options.steady_rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(asyncio.create_task(send(n)))
    await asyncio.gather(*sends)
    offered_per_s = len(sends) / (loop.time() - began)
    await until_done(system, counter, ids, timeout_s=120)
    started = await system.started_at(list(stamps))
    return [started[job] - at for job, at in stamps.items() if job in started], offered_per_s


async def drain_once(stack: Stack, system: System, kind: Kind, workers: int, jobs: int) -> Figures:
    async with connected(stack, system) as (url, counter):
        env = system.worker_env(url)
        children = [stack.spawn(system.worker_args(), env, f"{system.name}-drain") for _ in range(workers)]
        settled = await wait_idle(children)
        signal_groups(children, signal.SIGSTOP)  # every worker starts draining at the same moment
        try:
            began = time.time()
            ids = await system.enqueue_many(kind, jobs)
            enqueue_s = time.time() - began
        finally:
            signal_groups(children, signal.SIGCONT)
        resumed = time.time()
        finished = await until_done(system, counter, ids, timeout_s=600)
    return {
        "jobs_per_s": round(jobs / (finished - resumed), 1),
        "seconds": round(finished - resumed, 3),
        "enqueue_per_s": round(jobs / enqueue_s, 1),
        "workers_settled": settled,
    }


async def drain(stack: Stack, system: System, options: Options, clock: Clock) -> Figures:
    figures: Figures = {"jobs": options.jobs}
    for kind in ("noop", "sleep"):
        for workers in options.worker_counts:
            run = await drain_once(stack, system, kind, workers, options.jobs)
            figures[f"{kind}_{workers}w"] = run
            clock.say(f"{system.name}: drain {kind} x{workers} workers {run['jobs_per_s']} jobs/s")
    return figures


async def rest(stack: Stack, system: System, options: Options, clock: Clock) -> Figures | None:
    figures: Figures = {"batch_size": BATCH_SIZE}
    for processes in options.api_processes:
        runs = await rest_once(stack, system, options, clock, processes)
        if runs is None:
            return None
        suffix = "" if processes == 1 else f" x{processes}"  # "single x2": two API processes
        figures[f"single{suffix}"], figures[f"batch{suffix}"] = runs
    return figures


async def rest_once(
    stack: Stack, system: System, options: Options, clock: Clock, processes: int
) -> tuple[Figures, Figures] | None:
    """Single and batch submits at each rate against the system's API served by ``processes`` processes."""
    port = free_port()
    args = system.api_args(port, processes)
    if args is None:
        return None
    base = f"http://127.0.0.1:{port}"
    single, batch = system.rest_job("noop"), {"jobs": [system.rest_job("noop")] * BATCH_SIZE}
    singles: Figures = {}
    batches: Figures = {}
    async with stack.server() as url:
        api = stack.spawn(args, system.worker_env(url), f"{system.name}-api-x{processes}")
        await wait_http(base, api)
        authorization = system.authorization()
        for _ in range(processes):  # warm-up, long enough to reach every process
            await open_loop(base, "/v1/jobs", single, rate=50, duration_s=0.5, authorization=authorization)
        for rate in options.rates:
            run = await open_loop(
                base,
                "/v1/jobs",
                single,
                rate=rate,
                duration_s=options.rest_duration_s,
                authorization=authorization,
            )
            run["jobs_per_s"] = run["throughput"]
            singles[f"{rate:g}"] = run
            clock.say(
                f"{system.name}: REST single at {rate:g}/s, {processes} API process(es): "
                f"{run['throughput']}/s, {run['latency_ms']}"
            )
        for rate in options.batch_rates:
            run = await open_loop(
                base,
                "/v1/jobs:batch",
                batch,
                rate=rate,
                duration_s=options.rest_duration_s,
                authorization=authorization,
            )
            run["jobs_per_s"] = round(run["throughput"] * BATCH_SIZE, 1)
            batches[f"{rate:g}"] = run
            clock.say(
                f"{system.name}: REST batch at {rate:g}/s, {processes} API process(es): "
                f"{run['jobs_per_s']} jobs/s"
            )
    return singles, batches


async def commands(stack: Stack, system: System, options: Options, clock: Clock) -> Figures:
    jobs = options.jobs
    async with connected(stack, system) as (url, counter):
        memory_empty, calls_empty = await used_memory(counter), await command_calls(counter)
        aof_empty = await aof_size(counter)
        ids = [await system.enqueue("noop") for _ in range(jobs)]  # one at a time, as an application would
        memory_queued, calls_queued = await used_memory(counter), await command_calls(counter)
        aof_queued = await aof_size(counter)
        stack.spawn(system.worker_args(), system.worker_env(url), f"{system.name}-commands-worker")
        own = counter.calls
        await until_done(system, counter, ids, timeout_s=600)
        own = counter.calls - own
        memory_done, calls_done = await used_memory(counter), await command_calls(counter)
        aof_done = await aof_size(counter)
    queued = calls_between(calls_empty, calls_queued)
    finished = calls_between(calls_queued, calls_done)
    figures = {
        "jobs": jobs,
        "commands_per_queued_job": round(sum(queued.values()) / jobs, 2),
        "bytes_per_queued_job": round((memory_queued - memory_empty) / jobs, 1),
        "commands_per_finished_job": round((sum(finished.values()) - own) / jobs, 2),
        "bytes_retained_per_finished_job": round((memory_done - memory_empty) / jobs, 1),
        "aof_bytes_per_queued_job": _aof_bytes_per_job(aof_empty, aof_queued, jobs),
        "aof_bytes_per_finished_job": _aof_bytes_per_job(aof_queued, aof_done, jobs),
        "queued_calls": queued,
        "finished_calls": finished,
        "suite_polls_subtracted": own,
    }
    clock.say(f"{system.name}: {figures['commands_per_finished_job']} commands per finished job")
    return figures


def _aof_bytes_per_job(before: int | None, after: int | None, jobs: int) -> float | None:
    """Bytes the append-only file grew by, per job; None without one, or when it was rewritten (shrank)."""
    if before is None or after is None or after < before:
        return None
    return round((after - before) / jobs, 1)


async def idle(stack: Stack, system: System, options: Options, clock: Clock) -> Figures:
    async with connected(stack, system) as (url, counter):
        worker = stack.spawn(system.worker_args(), system.worker_env(url), f"{system.name}-idle-worker")
        await wait_idle([worker])
        await asyncio.sleep(1.0)  # past start-up bursts
        before = await command_calls(counter)
        await asyncio.sleep(options.idle_s)
        calls = calls_between(before, await command_calls(counter))
    per_s = round(sum(calls.values()) / options.idle_s, 2)
    clock.say(f"{system.name}: idle worker {per_s} commands/s")
    return {"commands_per_s": per_s, "seconds": options.idle_s, "calls": calls}


RUNNERS: dict[str, Callable[[Stack, System, Options, Clock], Awaitable[Figures | None]]] = {
    "pickup": pickup,
    "drain": drain,
    "rest": rest,
    "commands": commands,
    "idle": idle,
}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "?"


async def machine_facts(stack: Stack) -> Figures:
    async with stack.server() as url:
        client = CountingRedis.from_url(url)
        try:
            server = await server_version(client)
        finally:
            await client.aclose()
    versions = {}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "server": server
        + (" (--redis-url)" if stack.redis_url else " (embedded, loopback TCP, AOF everysec)"),
        "packages": versions,
    }


async def run_suite(options: Options, work_dir: Path, clock: Clock) -> Figures:
    stack = Stack(work_dir, options.redis_url)
    results: Figures = {"options": dataclasses.asdict(options), "systems": {}}
    try:
        results["machine"] = await machine_facts(stack)
        clock.say(f"machine: {results['machine']}")
        for name in options.systems:
            system = load(name)
            if isinstance(system, str):
                clock.say(f"{name}: skipped, {system}")
                results["systems"][name] = {"skipped": system}
                continue
            figures: Figures = {"describe": system.describe}
            results["systems"][name] = figures
            # This process is every system's producer: a full collection of its heap (about 45 ms here,
            # about every 15 s under the steady load) would land in whichever figure was being timed.
            freeze_startup_objects()
            for section in options.sections:
                clock.say(f"{name}: {section}")
                try:
                    outcome = await RUNNERS[section](stack, system, options, clock)
                except Exception as exc:  # one failed scenario should not lose the rest of the run
                    clock.say(f"{name}: {section} failed: {exc!r}; logs in {stack.logs}")
                    figures[section] = {"error": f"{type(exc).__name__}: {exc}"}
                    traceback.print_exc(file=sys.stderr)
                    continue
                if outcome is not None:
                    figures[section] = outcome
    finally:
        stack.stop_all()
    return results


# ---------------------------------------------------------------------------------------------- tables


def _get(figures: Figures, path: str) -> Any:
    value: Any = figures
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def render_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded)

    header = line(headers)
    return "\n".join([title, header, "-" * len(header), *(line(row) for row in rows)])


def section_table(
    results: Figures, section: str, title: str, columns: list[tuple[str, str]], ratio_of: str
) -> str | None:
    """Rows: systems; columns: (header, path into the section's figures); the last column is the first
    metric's ratio to the baseline's."""
    systems: dict[str, Figures] = results["systems"]
    if not any(section in figures for figures in systems.values()):
        return None
    base = _get(systems.get(BASELINE, {}), f"{section}.{ratio_of}")
    rows, notes = [], []
    for name, figures in systems.items():
        if "skipped" in figures:
            notes.append(f"  {name}: skipped, {figures['skipped']}")
            continue
        data = figures.get(section)
        if data is None:
            continue
        if "error" in data:
            notes.append(f"  {name}: failed, {data['error']}")
            continue
        value = _get(data, ratio_of)
        ratio = f"{value / base:.2f}x" if isinstance(value, int | float) and base else "-"
        rows.append([name, *(_cell(_get(data, path)) for _, path in columns), ratio])
    ratio_header = next((h for h, path in columns if path == ratio_of), ratio_of) + f" / {BASELINE}"
    table = render_table(title, ["system", *(h for h, _ in columns), ratio_header], rows) if rows else title
    return "\n".join([table, *notes])


def rest_table(results: Figures) -> str | None:
    systems: dict[str, Figures] = results["systems"]
    rows = []
    for name, figures in systems.items():
        data = figures.get("rest")
        if not isinstance(data, dict) or "error" in data:
            if isinstance(data, dict):
                rows.append([name, "failed", data["error"][:60], "", "", "", "", ""])
            continue
        modes = [
            key
            for key, runs in data.items()
            if key.startswith(("single", "batch")) and isinstance(runs, dict)
        ]
        for mode in modes:
            for rate, run in data[mode].items():
                base = _get(systems.get(BASELINE, {}), f"rest.{mode}.{rate}.jobs_per_s")
                latency = run["latency_ms"]
                bad = sum(n for status, n in run["statuses"].items() if not status.startswith("2"))
                offered = float(rate) * (BATCH_SIZE if mode.startswith("batch") else 1)
                rows.append(
                    [
                        name,
                        mode.replace("batch", f"batch of {BATCH_SIZE}", 1),
                        f"{rate} req/s ({offered:,.0f} jobs/s)",
                        _cell(float(run["jobs_per_s"])),
                        _cell(latency.get("p50")),
                        _cell(latency.get("p99")),
                        str(bad),
                        f"{run['jobs_per_s'] / base:.2f}x" if base else "-",
                    ]
                )
    if not rows:
        return None
    headers = ["system", "mode", "offered", "jobs/s", "p50 ms", "p99 ms", "failed", f"jobs/s / {BASELINE}"]
    return render_table("3. REST submit, open loop (latency from the scheduled send time)", headers, rows)


def render(results: Figures, options: Options) -> str:
    machine = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    lines = [
        f"machine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, "
        f"{machine['platform']}",
        f"server: {machine['server']}",
        f"packages: {versions}",
        "",
    ]
    for name, figures in results["systems"].items():
        lines.append(f"  {name:12} {figures.get('describe') or 'skipped: ' + figures.get('skipped', '')}")
    workers = options.worker_counts
    drain_columns = [(f"{k} {n}w", f"{k}_{n}w.jobs_per_s") for k in ("noop", "sleep") for n in workers]
    tables = [
        section_table(
            results,
            "pickup",
            "1. Pickup latency, enqueue -> start, ms (1 worker; steady: while jobs arrive at "
            f"{options.steady_rate:g}/s; under load: behind a draining backlog)",
            [
                ("idle p50", "idle_ms.p50"),
                ("idle p99", "idle_ms.p99"),
                ("steady p50", "steady_ms.p50"),
                ("steady p99", "steady_ms.p99"),
                ("load p50", "load_ms.p50"),
                ("load p99", "load_ms.p99"),
                ("backlog s", "load_drain_s"),
            ],
            "idle_ms.p50",
        ),
        section_table(
            results,
            "drain",
            f"2. Drain throughput, jobs/s ({options.jobs} jobs; noop, and sleep of 10 ms; Nw = N workers)",
            drain_columns,
            drain_columns[0][1],
        ),
        rest_table(results),
        section_table(
            results,
            "commands",
            f"4. Redis commands, memory and append-only file per job ({options.jobs} jobs enqueued one by "
            "one, then 1 worker)",
            [
                ("cmds/queued", "commands_per_queued_job"),
                ("bytes/queued", "bytes_per_queued_job"),
                ("cmds/finished", "commands_per_finished_job"),
                ("bytes kept/finished", "bytes_retained_per_finished_job"),
                ("AOF bytes/queued", "aof_bytes_per_queued_job"),
                ("AOF bytes/finished", "aof_bytes_per_finished_job"),
            ],
            "commands_per_finished_job",
        ),
        section_table(
            results,
            "idle",
            f"5. Idle cost: Redis commands per second of 1 idle worker ({options.idle_s:g} s)",
            [("cmds/s", "commands_per_s")],
            "commands_per_s",
        ),
    ]
    for table in tables:
        if table:
            lines += ["", table]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def parse_args(argv: list[str] | None) -> tuple[Options, Path, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sections: " + ", ".join(SECTIONS) + "; systems: " + ", ".join(SYSTEMS),
    )
    parser.add_argument("--jobs", type=int, help="jobs per drain run and in the commands section (2000)")
    parser.add_argument("--backlog", type=int, help="no-op backlog behind which pickup is measured (1000)")
    parser.add_argument("--samples", type=int, help="stamp jobs for idle pickup (30)")
    parser.add_argument("--workers", type=_ints, help="worker counts of the drain, comma-separated (1,2,4)")
    parser.add_argument("--rates", type=_floats, help="single submits/s offered to the API (200,500,1000)")
    parser.add_argument("--batch-rates", type=_floats, help="batch submits/s offered to the API (2,5,10)")
    parser.add_argument(
        "--api-processes", type=_ints, help="processes serving the API in the REST section, each a run (1)"
    )
    parser.add_argument("--rest-seconds", type=float, help="seconds of each open-loop run (4)")
    parser.add_argument("--idle-seconds", type=float, help="seconds of the idle-worker measurement (30)")
    parser.add_argument(
        "--steady-rate", type=float, help="jobs/s offered while pickup at a steady load is measured (1100)"
    )
    parser.add_argument("--quick", action="store_true", help="small figures everywhere, for a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAMES",
        help="sections and/or systems to run, comma-separated (repeatable); default all",
    )
    parser.add_argument("--redis-url", help="use this server (FLUSHALL before every scenario!) instead")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH", help="where to write JSON")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work dir with every child's log")
    args = parser.parse_args(argv)

    names = [name.strip() for group in args.only for name in group.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS and name not in SYSTEMS]
    if unknown:
        parser.error(f"unknown section or system: {', '.join(unknown)}")
    chosen: dict[str, Any] = dict(QUICK) if args.quick else {}
    systems = tuple(name for name in SYSTEMS if name in names)
    sections = tuple(name for name in SECTIONS if name in names)
    if systems:
        chosen["systems"] = systems
    if sections:
        chosen["sections"] = sections
    for flag, field in (
        ("jobs", "jobs"),
        ("backlog", "backlog"),
        ("samples", "idle_samples"),
        ("workers", "worker_counts"),
        ("rates", "rates"),
        ("batch_rates", "batch_rates"),
        ("rest_seconds", "rest_duration_s"),
        ("api_processes", "api_processes"),
        ("idle_seconds", "idle_s"),
        ("steady_rate", "steady_rate"),
        ("redis_url", "redis_url"),
    ):
        if getattr(args, flag) is not None:
            chosen[field] = getattr(args, flag)
    return Options(quick=args.quick, **chosen), args.json, args.keep_logs


async def _main(options: Options, work_dir: Path, clock: Clock) -> Figures:
    """run_suite, with SIGTERM turned into a cancellation so that children are stopped as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_suite(options, work_dir, clock)


def main(argv: list[str] | None = None) -> int:
    options, json_path, keep_logs = parse_args(argv)
    clock = Clock()
    work_dir = Path(tempfile.mkdtemp(prefix="jobsvc-bench-"))
    failed = True
    try:
        results = asyncio.run(_main(options, work_dir, clock))
        failed = any(
            isinstance(data, dict) and "error" in data
            for figures in results["systems"].values()
            for data in figures.values()
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    finally:
        if failed or keep_logs:
            print(f"servers' data and the children's logs are in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - clock.started, 1)
    print(render(results, options))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {json_path} ({results['wall_s']} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
