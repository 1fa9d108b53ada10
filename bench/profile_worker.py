"""Where a worker's time goes while it drains ``diag.noop`` (or 10 ms ``diag.sleep``) jobs: a cProfile of
one worker, by package.

    .venv/bin/python -m bench.profile_worker [--jobs 5000] [--kind noop|sleep] [--top 25] [--redis-url URL]

Enqueues the backlog first (as the drain benchmark does), then runs one burst-mode worker built from
``worker_settings.WorkerSettings`` in this process under cProfile until the backlog is gone, and prints
the jobs per second under the profiler (slower than without it), each package's share of the worker's
own time, and the functions with the most own time. Against an embedded Valkey in a temporary
directory unless ``--redis-url`` names a server (which it then flushes). It runs on asyncio's own loop so
that the loop's work shows in the profile (under ``arq`` the worker runs on uvloop, which does it in C).
The worker logs as ``arq`` sets it up, to stderr: send that to /dev/null to read the report.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import logging.config
import os
import pstats
import time
import typing
from collections import Counter
from pathlib import Path
from typing import Any

from arq.logs import default_log_config
from arq.worker import create_worker

from bench.measure import run_against_server
from bench.peers.base import Kind
from bench.peers.jobsvc_app import JobsvcSystem
from jobs.engine.connection import open_pool, redis_settings_from_url
from service.config import Settings

#: how a source path maps to the package it belongs to, most specific first
PACKAGES = (
    ("/redis/", "redis-py"),
    ("/hiredis/", "redis-py"),
    ("/arq/", "arq"),
    ("/asyncio/", "asyncio (event loop)"),
    ("/logging/", "logging"),
    ("/msgpack/", "msgpack"),
    ("/pydantic", "pydantic"),
    ("/jobs/", "jobsvc engine and jobs"),
    ("/service/", "jobsvc service"),
)


def package_of(filename: str) -> str:
    if filename.startswith("<built-in") or filename == "~":
        return "builtins and C calls (sockets, select, hashing)"
    for marker, name in PACKAGES:
        if marker in filename:
            return name
    return "other Python"


async def drain(redis_url: str, jobs: int, kind: Kind = "noop") -> tuple[float, cProfile.Profile]:
    system = JobsvcSystem()
    await system.connect(redis_url)
    pool = await open_pool(redis_url)
    try:
        await pool.flushdb()
        await system.enqueue_many(kind, jobs)
    finally:
        await system.close()
        await pool.aclose(close_connection_pool=True)
    os.environ["JOBSVC_DIAGNOSTICS"] = "true"  # WorkerSettings reads its settings on import
    worker_settings = importlib.import_module("worker_settings")
    logging.config.dictConfig(default_log_config(verbose=False))  # what `arq` sets up: one line per job
    settings = Settings(redis_url=redis_url, diagnostics=True, worker_max_jobs=100)
    worker = create_worker(
        typing.cast(Any, worker_settings.WorkerSettings),  # a settings class, as ARQ's CLI takes it
        redis_settings=redis_settings_from_url(redis_url),
        ctx={"settings": settings},
        max_jobs=100,
        burst=True,
        handle_signals=False,
    )
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    try:
        await worker.main()
    finally:
        profile.disable()
        await worker.close()
    return time.perf_counter() - started, profile


def report(profile: cProfile.Profile, top: int) -> None:
    stats = pstats.Stats(profile)
    by_package: Counter[str] = Counter()
    rows = []
    for (filename, line, name), (_, calls, own, _cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[package_of(filename)] += own
        rows.append((own, calls, f"{Path(filename).name}:{line} {name}"))
    total = sum(by_package.values())
    print(f"\nown time by package ({total:.2f} s profiled):")
    for package, seconds in by_package.most_common():
        print(f"  {seconds / total:6.1%}  {package}")
    print(f"\nfunctions with the most own time (top {top}):")
    for own, calls, where in sorted(rows, reverse=True)[:top]:
        print(f"  {own / total:6.1%}  {calls:>8,} calls  {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--kind", choices=typing.get_args(Kind), default="noop")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--redis-url")
    args = parser.parse_args(argv)
    seconds, profile = run_against_server(args.redis_url, lambda url: drain(url, args.jobs, args.kind))
    print(
        f"{args.jobs} {args.kind} jobs drained by one worker under cProfile in {seconds:.2f} s "
        f"({args.jobs / seconds:,.0f} jobs/s; the profiler itself slows it down)"
    )
    report(profile, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
