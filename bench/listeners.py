"""What open event streams and ``?wait=`` requests cost Redis: flat, whatever their number.

    .venv/bin/python -m bench.listeners [--listeners 1000] [--seconds 5] [--redis-url URL]

The app runs in-process (its real lifespan, over ASGI) against an embedded Valkey unless ``--redis-url``
names a server (which it then flushes). For each case it opens that many ``GET /v1/events`` streams or
``GET /v1/jobs/{id}?wait=60`` requests, submits jobs at up to 50/s for ``--seconds`` (each submit writes
an event every stream receives), and prints, from ``INFO commandstats``, the commands per second that
reading the event streams cost (XREAD, XRANGE, XREVRANGE, XINFO, CLIENT) and the submits achieved.
(Commands run inside the scripts count in ``commandstats`` too, so the total per second follows the
submit rate, not the listeners.)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from bench.in_process import bench_settings
from bench.measure import calls_between, command_calls, run_against_server
from service.api.app import create_app

ADMIN_KEY = "bench-listeners-admin-key-" + "k" * 32
SUBMITS_PER_S = 50
#: the commands listening costs: the hub's blocking read, catching up, and cutting a read short
READING = ("xread", "xrange", "xrevrange", "xinfo", "client")


async def measure(redis_url: str, listeners: int, seconds: float) -> list[tuple[str, float, float, int]]:
    settings = bench_settings(redis_url, ADMIN_KEY, max_wait_s=120)
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    rows: list[tuple[str, float, float, int]] = []
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers, timeout=120
        ) as http,
    ):
        redis = app.state.arq
        await redis.flushdb()

        async def stream(_: int) -> None:
            await http.get("/v1/events")  # over ASGI the answer never completes: it listens until cancelled

        async def waiter(_: int) -> None:
            job = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}, "delay_seconds": 3600})
            await http.get(f"/v1/jobs/{job.json()['id']}?wait=60")

        cases: list[tuple[str, int, Callable[[int], Coroutine[Any, Any, None]]]] = [
            ("no listener", 0, stream),
            ("1 event stream", 1, stream),
            (f"{listeners:,} event streams", listeners, stream),
            (f"{listeners:,} ?wait= requests", listeners, waiter),
        ]
        for label, count, open_one in cases:
            tasks = [asyncio.create_task(open_one(n)) for n in range(count)]
            # every listener subscribed (and caught up); the hub offers no event for it
            while app.state.events.listeners < count:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            before = await command_calls(redis)
            started = time.perf_counter()
            submits = 0
            while time.perf_counter() - started < seconds:
                await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
                submits += 1
                await asyncio.sleep(1 / SUBMITS_PER_S)
            elapsed = time.perf_counter() - started
            delta = calls_between(before, await command_calls(redis))
            reading = sum(calls for name, calls in delta.items() if name.split("|")[0] in READING)
            rows.append((label, reading / elapsed, submits / elapsed, app.state.events.listeners))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.2)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--redis-url")
    args = parser.parse_args(argv)
    rows = run_against_server(args.redis_url, lambda url: measure(url, args.listeners, args.seconds))
    print("what reading the event streams costs Redis, while jobs are submitted (each one an event):")
    for label, per_s, submits, subscribed in rows:
        print(
            f"  {label:<26} {per_s:7.1f} stream commands/s   {submits:5.1f} submits/s   "
            f"{subscribed:,} subscribed in the hub"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
