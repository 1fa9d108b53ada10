"""Where one job's pickup time goes, stage by stage: enqueue, wake, claim and start, run and release.

    .venv/bin/python -m bench.stages [--samples 200] [--steady-rate 1100] [--redis-url URL]

One worker (``arq worker_settings.WorkerSettings``, as the suite starts it) and an embedded Valkey in a
temporary directory, unless ``--redis-url`` names a server (which it then flushes). ``diag.stamp`` jobs are
enqueued one at a time at idle, 50 to 150 ms apart, as the suite's idle pickup does. A ``MONITOR``
connection stamps every script call with the server's clock, so each job's life splits into:

- enqueue: the client starts the enqueue -> the server runs the submit script;
- wake: the submit script -> the server runs the worker's claim (the wake-up list's token reaching the
  worker's ``BLPOP``, the worker's Python, its claim sent);
- claim to start: the claim script -> the job function starts (the claim's reply, the worker's start path);
- run and release: the function starts -> the server runs the release script (a stamp returns at once:
  this is the result's encoding and the release's own way there).

Then, on a fresh server, jobs arrive at ``--steady-rate`` a second for 3 s (the suite's steady pickup, 0:
skipped) and the server's ``SLOWLOG`` (every command) and ``INFO commandstats`` say where its time went
per job: each script's calls a job and time a call, and how much of the scripts' time their commands
took (the rest is Lua's own: its interpreter, the helpers each call defines again, each ``redis.call``'s
way into the server and back).

The same machine's clock stamps every point. ``MONITOR`` costs the server some time per command, the
same for every stage and every checkout, so compare checkouts measured by this same script, not these
figures with the suite's pickup. Runs from any checkout whose ``bench`` has the suite's harness (copy
the file in), so that an older main can be measured beside this one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio

from bench.measure import SCRIPT_CALLS, CountingRedis, Stack
from bench.peers import load
from bench.peers.base import System
from bench.suite import Options, connected, steady_pickup, until_done

STAGES = ("enqueue", "wake", "claim to start", "run and release", "pickup (enqueue to start)")


@dataclass(frozen=True)
class ScriptCall:
    at: float  # the server's clock, seconds
    client: str  # address:port of the connection that sent it
    line: str


async def monitor(url: str, calls: list[ScriptCall], ready: asyncio.Event) -> None:
    """Every script or function call (``EVALSHA``, ``FCALL``) the server runs, as it runs it, until
    cancelled."""
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        async with client.monitor() as feed:
            ready.set()
            while True:
                entry: dict[str, Any] = await feed.next_command()
                if entry.get("client_type") == "lua" or not _runs_a_script(entry["command"].split(" ", 1)[0]):
                    continue
                calls.append(
                    ScriptCall(
                        entry["time"], f"{entry['client_address']}:{entry['client_port']}", entry["command"]
                    )
                )
    finally:
        await client.aclose()


def split(job: str, sent: float, started: float, calls: Sequence[ScriptCall]) -> dict[str, float] | None:
    """One job's stages (s), from the script calls around it: its submit (the first call naming it), the
    first call from another connection after that (the worker's claim), and the next call naming it
    from that connection (its release)."""
    submit = next((call for call in calls if job in call.line), None)
    if submit is None:
        return None
    after = [call for call in calls if call.at >= submit.at and call is not submit]
    claim = next((call for call in after if call.client != submit.client), None)
    if claim is None:
        return None
    release = next(
        (call for call in after if call.at >= claim.at and call is not claim and job in call.line), None
    )
    if release is None:
        return None
    return {
        "enqueue": submit.at - sent,
        "wake": claim.at - submit.at,
        "claim to start": started - claim.at,
        "run and release": release.at - started,
        "pickup (enqueue to start)": started - sent,
    }


async def stamp_at_idle(
    system: System, counter: CountingRedis, ids: list[str], samples: int
) -> dict[str, float]:
    """``samples`` stamp jobs, one at a time, 50 to 150 ms apart, each run before the next is sent; when
    each was sent."""
    sent: dict[str, float] = {}
    for _ in range(samples):
        await asyncio.sleep(random.uniform(0.05, 0.15))
        at = time.time()
        job = await system.enqueue("stamp")
        sent[job] = at
        ids.append(job)
        await until_done(system, counter, ids, timeout_s=30)
    return sent


async def script_times(counter: CountingRedis, jobs: Sequence[str]) -> dict[str, list[float]]:
    """Each job's submit, claim and release as the server ran them (``SLOWLOG``, µs), told apart as
    ``split`` tells them: the submit and the release name the job, the claim is the first call from
    another connection after the submit."""
    entries = await counter.execute_command("SLOWLOG", "GET", "-1")
    calls = []
    for entry in reversed(entries):  # oldest first
        args = [arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg) for arg in entry[3]]
        if args and _runs_a_script(args[0]):
            client = entry[4].decode() if isinstance(entry[4], bytes) else str(entry[4])
            calls.append((client, " ".join(args), int(entry[2])))
    times: dict[str, list[float]] = {"submit": [], "claim": [], "release": []}
    for job in jobs:
        named = [i for i, (_, line, _) in enumerate(calls) if job in line]
        if len(named) < 2:
            continue
        submit, release = named[0], named[-1]
        client = calls[submit][0]
        claim = next((i for i in range(submit + 1, release) if calls[i][0] != client), None)
        if claim is None:
            continue
        for name, index in (("submit", submit), ("claim", claim), ("release", release)):
            times[name].append(calls[index][2])
    return times


async def measure(
    system: System, stack: Stack, samples: int
) -> tuple[list[dict[str, float]], dict[str, list[float]]]:
    async with connected(stack, system) as (url, counter):
        stack.spawn(system.worker_args(), system.worker_env(url), f"{system.name}-stages-worker")
        ids = [await system.enqueue("stamp")]  # warm-up: the worker is up once it has run one
        await until_done(system, counter, ids, timeout_s=60)
        calls: list[ScriptCall] = []
        ready = asyncio.Event()
        watcher = asyncio.create_task(monitor(url, calls, ready))
        await ready.wait()
        sent = await stamp_at_idle(system, counter, ids, samples)
        await asyncio.sleep(0.2)  # the last release reaches the monitor
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        started = await system.started_at(list(sent))
        # the scripts' own time, without a monitor to feed
        await counter.config_set("slowlog-log-slower-than", 0)
        await counter.config_set("slowlog-max-len", 100 * samples + 1000)
        await counter.slowlog_reset()
        timed = await stamp_at_idle(system, counter, ids, samples)
        await asyncio.sleep(0.2)  # the last release is in
        times = await script_times(counter, list(timed))
    stages = [split(job, at, started[job], calls) for job, at in sent.items() if job in started]
    return [stage for stage in stages if stage is not None], times


@dataclass(frozen=True)
class ScriptShare:
    name: str
    calls_per_job: float
    p50_us: float
    us_per_job: float


@dataclass(frozen=True)
class SteadyScripts:
    jobs: int
    shares: list[ScriptShare]
    #: µs a job in the commands the scripts ran (the rest of the scripts' time is Lua's own), from
    #: ``INFO commandstats``, which counts a script's commands one by one
    commands_us_per_job: float


#: what commandstats counts that no script runs: the scripts themselves, the worker's waits and the
#: harness's own reads of the figures
NOT_IN_SCRIPTS = SCRIPT_CALLS | {"blpop", "info", "config|set", "config|resetstat", "slowlog|reset"}


async def steady_scripts(system: System, stack: Stack, rate: float) -> SteadyScripts:
    """At ``rate`` jobs a second for 3 s, where the server's time in scripts went per job."""
    async with connected(stack, system) as (url, counter):
        stack.spawn(system.worker_args(), system.worker_env(url), f"{system.name}-steady-worker")
        ids = [await system.enqueue("stamp")]
        await until_done(system, counter, ids, timeout_s=60)
        # Valkey logs the commands a script runs too: room for all of them (each job's few dozen)
        await counter.config_set("slowlog-max-len", int(rate * 3 * 100))
        await counter.config_set("slowlog-log-slower-than", 0)
        await counter.slowlog_reset()
        await counter.config_resetstat()
        jobs: list[str] = []
        await steady_pickup(system, counter, jobs, Options(steady_rate=rate, steady_s=3.0))
        await counter.config_set("slowlog-log-slower-than", 10_000)
        stats = await counter.info("commandstats")
        entries = await counter.execute_command("SLOWLOG", "GET", "-1")
    scripts: dict[str, list[int]] = {}
    for entry in entries:
        command = entry[3]
        if len(command) > 1 and _runs_a_script(bytes(command[0]).decode()):
            scripts.setdefault(_script_name(bytes(command[1]).decode()), []).append(int(entry[2]))
    # the harness's few reads (a ZCARD every 5 ms, the stamps' records) count here too: a fraction of a µs
    commands_us = sum(
        float(entry["usec"])
        for name, entry in stats.items()
        if name.removeprefix("cmdstat_") not in NOT_IN_SCRIPTS
    )
    n = max(1, len(jobs))
    shares = [
        ScriptShare(name, len(values) / n, statistics.median(values), sum(values) / n)
        for name, values in sorted(scripts.items(), key=lambda item: -sum(item[1]))
    ]
    return SteadyScripts(len(jobs), shares, commands_us / n)


def _runs_a_script(command: str) -> bool:
    return command.lower() in SCRIPT_CALLS


def _script_name(called: str) -> str:
    """The name of the script with this SHA-1, or of the function with this name, when this checkout's
    engine names its scripts."""
    try:
        from jobs.engine import lua  # an older checkout has no such module
    except ImportError:
        return called[:12]
    names = {hashlib.sha1(source.encode()).hexdigest(): name for name, source in lua.SCRIPTS.items()}
    hot_path = getattr(lua, "HOT_PATH", None)  # an earlier checkout calls every script by SHA-1
    if hot_path is not None:
        names.update({function: name for name, function in hot_path.functions.items()})
    return names.get(called, called[:12])


def render_steady(steady: SteadyScripts, rate: float) -> str:
    lines = [f"the scripts at {rate:g} jobs/s ({steady.jobs} jobs; SLOWLOG and commandstats, µs)", ""]
    lines.append(f"{'script':28s} calls/job  p50 a call  a job")
    for share in steady.shares:
        calls, p50, per_job = share.calls_per_job, share.p50_us, share.us_per_job
        lines.append(f"{share.name:28s} {calls:9.2f} {p50:11.0f} {per_job:6.1f}")
    total = sum(share.us_per_job for share in steady.shares)
    commands = steady.commands_us_per_job
    for name, per_job in (
        ("all scripts", total),
        ("  their commands", commands),
        ("  Lua's own", total - commands),
    ):
        lines.append(f"{name:28s} {'':21s} {per_job:6.1f}")
    return "\n".join(lines)


def render(stages: list[dict[str, float]], times: dict[str, list[float]], samples: int) -> str:
    lines = [f"{len(stages)} of {samples} stamp jobs split into stages (ms, under MONITOR)", ""]
    lines.append(f"{'stage':28s}  p50     p90")
    for name in STAGES:
        lines.append(_row(name, [stage[name] * 1000 for stage in stages], "5.2f"))
    lines += ["", f"the scripts' own time on the server (µs, {len(times['submit'])} jobs, no MONITOR)", ""]
    lines.append(f"{'script':28s}  p50     p90")
    for name, values in times.items():
        lines.append(_row(name, values, "5.0f"))
    return "\n".join(lines)


def _row(name: str, values: Sequence[float], spec: str) -> str:
    ordered = sorted(values) or [float("nan")]
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{name:28s} {statistics.median(ordered):{spec}}  {p90:6{spec[1:]}}"


async def _main(samples: int, steady_rate: float, redis_url: str | None, work_dir: Path) -> str:
    system = load("jobsvc")
    if isinstance(system, str):
        raise SystemExit(system)
    stack = Stack(work_dir, redis_url)
    try:
        stages, times = await measure(system, stack, samples)
        steady = await steady_scripts(system, stack, steady_rate) if steady_rate else None
    finally:
        stack.stop_all()
    if not stages or not times["submit"]:
        raise SystemExit("no job could be split into stages: see the worker's log in " + str(work_dir))
    report = render(stages, times, samples)
    return report if steady is None else f"{report}\n\n{render_steady(steady, steady_rate)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200, help="stamp jobs at idle (200)")
    parser.add_argument(
        "--steady-rate", type=float, default=1100.0, help="jobs/s of the scripts' steady run (1100; 0: none)"
    )
    parser.add_argument("--redis-url", help="use this server (FLUSHALL!) instead of an embedded one")
    options = parser.parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="jobsvc-stages-"))
    try:
        print(asyncio.run(_main(options.samples, options.steady_rate, options.redis_url, work_dir)))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
