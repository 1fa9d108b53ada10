"""How long ``POST /v1/jobs:batch`` of 1,000 jobs takes, end to end through the app, against a real server.

    .venv/bin/python -m bench.batch [--size 1000] [--runs 10] [--redis-url URL]

The app runs in-process (its real lifespan, over ASGI) against an embedded Valkey in a temporary directory
unless ``--redis-url`` names a server (which it then flushes). Each run submits one batch of ``diag.noop``
jobs and times the answer; the jobs are deleted between runs so every batch meets an empty server. Also
how much of that the server spent running the batch's scripts (``INFO commandstats`` around each
request): the rest is the app's Python (validation, records, replies) and the round trips.
"""

from __future__ import annotations

import argparse
import statistics
import time

import redis.asyncio

from bench.in_process import bench_settings, in_process_api
from bench.measure import SCRIPT_CALLS, run_against_server
from jobs.engine import keys

ADMIN_KEY = "bench-batch-admin-key-" + "k" * 32


async def measure(redis_url: str, size: int, runs: int) -> tuple[list[float], list[float]]:
    """Each counted run's time, and the server's time in scripts during it (s)."""
    settings = bench_settings(redis_url, ADMIN_KEY)
    body = {"jobs": [{"type": "diag.noop", "params": {}}] * size}
    seconds: list[float] = []
    scripts_s: list[float] = []
    async with (
        in_process_api(settings, timeout_s=60) as (_, http),
        redis.asyncio.Redis.from_url(redis_url) as stats,
    ):
        for _ in range(runs + 1):  # the first run warms up and is not counted
            before = await script_seconds(stats)
            started = time.perf_counter()
            response = await http.post("/v1/jobs:batch", json=body)
            elapsed = time.perf_counter() - started
            if response.status_code != 202:
                raise SystemExit(f"the batch was refused: {response.status_code} {response.text}")
            seconds.append(elapsed)
            scripts_s.append(await script_seconds(stats) - before)
            await http.delete(f"/v1/admin/tenants/{keys.DEFAULT_TENANT}/jobs")
    return seconds[1:], scripts_s[1:]


async def script_seconds(client: redis.asyncio.Redis) -> float:
    """The server's time in scripts and functions since its start (``INFO commandstats``: their own
    commands included)."""
    stats = await client.info("commandstats")
    return sum(float(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) for name in SCRIPT_CALLS) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--redis-url")
    args = parser.parse_args(argv)
    seconds, scripts_s = run_against_server(args.redis_url, lambda url: measure(url, args.size, args.runs))
    ms = sorted(s * 1000 for s in seconds)
    print(
        f"batch of {args.size}: median {statistics.median(ms):.0f} ms, fastest {ms[0]:.0f} ms, "
        f"slowest {ms[-1]:.0f} ms over {len(ms)} runs ({args.size / statistics.median(seconds):,.0f} "
        f"jobs/s); the server's scripts: median {statistics.median(scripts_s) * 1000:.1f} ms a batch"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
