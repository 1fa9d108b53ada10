"""Where a job's bytes go: the server's memory per queued and per kept finished job, key by key, and what
one more job adds once the structures of fixed size are full.

    .venv/bin/python -m bench.memory [--jobs 20000] [--redis-url URL] [--json PATH]

One worker (``arq worker_settings.WorkerSettings``, as the suite starts it) and an embedded Valkey in a
temporary directory, unless ``--redis-url`` names a server (which it then flushes). ``diag.noop`` jobs go in
through ``JobStore.submit_many`` (the code behind ``POST /v1/jobs:batch``) in two equal halves, and the
worker runs each half, and stops, before the next goes in:

- per queued job (the first half), per kept finished job (all): the server's ``used_memory`` over the
  jobs, as the suite's commands section measures it (2,000 jobs there). That includes what does not grow
  with the jobs: the tenant's event stream, trimmed at ``EVENTS_RETAINED`` entries (three a no-op job),
  counters, the worker's own keys;
- what one more job adds: the second half's growth of ``used_memory`` over its jobs, queued and then kept.
  With each half larger than a third of ``EVENTS_RETAINED`` the stream is full before the second half, so
  this is the cost a job adds at depth;
- the same growth key by key: ``MEMORY USAGE`` of every key once the second half is in (queued) and once
  it has ended (kept), less that once the first half had ended, summed over keys named alike (a job id in
  the name becomes ``<id>``), a job. ``MEMORY USAGE`` counts a key's name and value, not its entries in the
  keyspace's tables: the difference to ``used_memory`` is those and the allocator's rounding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio

from bench.measure import CountingRedis, Stack, used_memory
from bench.peers import load
from bench.peers.base import System
from bench.suite import connected, until_done
from jobs.engine import keys

#: keys named alike once job ids (32 hex digits) and numbers (buckets, minutes) are masked
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_NUMBER = re.compile(r"(?<=:)\d{4,}$")
#: keys read with one pipeline
_PIPELINE = 1000


def kind_of(key: str) -> str:
    """The key's name with job ids and trailing numbers masked, so that keys made alike sum together."""
    return _NUMBER.sub("<n>", _JOB_ID.sub("<id>", key))


@dataclass
class Census:
    """``MEMORY USAGE`` summed per kind of key, and how many keys of each kind."""

    bytes: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)

    def minus(self, earlier: Census) -> Census:
        """What was added since ``earlier`` (a kind that shrank counts as shrunk)."""
        added = Census()
        for kind in self.bytes.keys() | earlier.bytes.keys():
            added.bytes[kind] = self.bytes[kind] - earlier.bytes[kind]
            added.keys[kind] = self.keys[kind] - earlier.keys[kind]
        return added


async def census(client: redis.asyncio.Redis) -> Census:
    found = Census()
    names = [name.decode() async for name in client.scan_iter(count=_PIPELINE)]
    for start in range(0, len(names), _PIPELINE):
        chunk = names[start : start + _PIPELINE]
        async with client.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.memory_usage(name, samples=0)
            sizes = await pipe.execute()
        for name, size in zip(chunk, sizes, strict=True):
            found.bytes[kind_of(name)] += size or 0
            found.keys[kind_of(name)] += 1
    return found


@dataclass
class Measured:
    jobs: int  # in each half
    figures: dict[str, float]
    queued: Census  # what the second half added, queued
    kept: Census  # what it added, ended and kept


async def _run(system: System, stack: Stack, url: str, counter: CountingRedis, ids: list[str]) -> None:
    """A worker runs every job and stops (SIGTERM: it ends its runs and writes its tally on the way out;
    its own keys stay, as a stopped worker's do)."""
    worker = stack.spawn(system.worker_args(), system.worker_env(url), "jobsvc-memory-worker")
    await until_done(system, counter, ids, timeout_s=600)
    await asyncio.to_thread(stack.stop, [worker])


async def _read(counter: CountingRedis) -> tuple[int, Census]:
    """The census, then ``used_memory``: read after the census's own replies, so that the buffers it
    grows weigh the same in every reading compared."""
    found = await census(counter)
    return await used_memory(counter), found


async def measure(system: System, stack: Stack, jobs: int) -> Measured:
    """Each half enqueued with no worker running, then run by one; memory read between the steps."""
    half = jobs // 2
    async with connected(stack, system) as (url, counter):
        empty = await used_memory(counter)
        first = await system.enqueue_many("noop", half)
        queued_first = await used_memory(counter)
        await _run(system, stack, url, counter, first)
        kept_first, kept_first_census = await _read(counter)
        second = await system.enqueue_many("noop", half)
        queued_second, queued_census = await _read(counter)
        await _run(system, stack, url, counter, second)
        kept_all, kept_census = await _read(counter)
    figures = {
        "bytes per queued job (the first half, as the suite)": (queued_first - empty) / half,
        "bytes per kept job (all jobs)": (kept_all - empty) / (2 * half),
        "bytes one more queued job adds (the second half)": (queued_second - kept_first) / half,
        "bytes one more kept job adds (the second half)": (kept_all - kept_first) / half,
    }
    return Measured(
        half, figures, queued_census.minus(kept_first_census), kept_census.minus(kept_first_census)
    )


def render(measured: Measured) -> str:
    jobs = measured.jobs
    lines = [f"{jobs:,} diag.noop jobs in each of two halves; bytes a job", ""]
    lines += [f"{name:52s} {value:9,.1f}" for name, value in measured.figures.items()]
    for title, added in (("queued", measured.queued), ("kept, once ended", measured.kept)):
        lines += ["", f"what the second half added a job, by kind of key (MEMORY USAGE), {title}", ""]
        lines.append(f"{'key':56s} {'keys':>7s} {'bytes a job':>12s}")
        for kind, size in sorted(added.bytes.items(), key=lambda item: -item[1]):
            if abs(size) / jobs >= 0.5:
                lines.append(f"{kind:56s} {added.keys[kind]:7,d} {size / jobs:12,.1f}")
        total = sum(added.bytes.values())
        lines.append(f"{'all keys':56s} {sum(added.keys.values()):7,d} {total / jobs:12,.1f}")
    lines += [
        "",
        f"(the tenant's event stream keeps about {keys.EVENTS_RETAINED:,} entries: three a no-op job)",
    ]
    return "\n".join(lines)


def as_json(measured: Measured) -> dict[str, object]:
    return {
        "jobs": measured.jobs,
        "figures": measured.figures,
        "queued": {
            kind: {"keys": measured.queued.keys[kind], "bytes": size}
            for kind, size in measured.queued.bytes.items()
        },
        "kept": {
            kind: {"keys": measured.kept.keys[kind], "bytes": size}
            for kind, size in measured.kept.bytes.items()
        },
    }


async def _main(jobs: int, redis_url: str | None, work_dir: Path) -> Measured:
    system = load("jobsvc")
    if isinstance(system, str):
        raise SystemExit(system)
    stack = Stack(work_dir, redis_url)
    try:
        return await measure(system, stack, jobs)
    finally:
        stack.stop_all()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs in all, in two halves (20,000)")
    parser.add_argument("--redis-url", help="use this server (FLUSHALL!) instead of an embedded one")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args(argv)
    if options.jobs < 2:
        parser.error("--jobs must be at least 2")
    work_dir = Path(tempfile.mkdtemp(prefix="jobsvc-memory-"))
    try:
        measured = asyncio.run(_main(options.jobs, options.redis_url, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(render(measured))
    if options.json:
        Path(options.json).write_text(json.dumps(as_json(measured), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
