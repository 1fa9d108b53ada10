"""What one request costs the API process itself: CPU time and Python function calls per request, the app
called straight over ASGI (no server, socket or client library in between) against a real server. Beside
it, the minimal FastAPI + ARQ endpoint of the REST benchmark (``bench.peers.arq_api``), the floor #13 holds
the single submit to.

    .venv/bin/python -m bench.api_cost [--requests 2000] [--rounds 5] [--redis-url URL] [--json PATH]

CPU is ``time.process_time`` over each round (the server's own work is not in it), the median of
``--rounds`` rounds; Python calls are counted by cProfile over one more round, and are the same on every
run of a checkout, so they tell two checkouts apart where this noisy machine's CPU times cannot.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message

from bench.in_process import bench_settings
from bench.measure import run_against_server
from bench.peers.arq_api import app as minimal_app
from jobs.engine import keys
from service.api.app import create_app

ADMIN_KEY = "bench-api-cost-admin-key-" + "k" * 32
BATCH = 100


@dataclass(frozen=True)
class Cost:
    request: str
    cpu_us: float
    python_calls: int


def _caller(
    app: ASGIApp, method: str, path: str, body: bytes, authorization: str | None
) -> Callable[[], Awaitable[int]]:
    """One request to ``app`` as a server on loopback would pass it; returns the answer's status."""
    headers = [(b"host", b"bench"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))

    async def call() -> int:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        sent = False
        status = 0

        async def receive() -> Message:
            nonlocal sent
            if sent:  # the app never reads past the body of these requests
                raise RuntimeError("read past the request's body")
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    return call


async def _cost(
    name: str, call: Callable[[], Awaitable[int]], expect: int, requests: int, rounds: int
) -> Cost:
    for _ in range(min(requests, 200)):  # warm caches, connections and the server
        status = await call()
        if status != expect:
            raise SystemExit(f"{name}: answered {status}, not {expect}")
    cpu: list[float] = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            await call()
        cpu.append((time.process_time() - started) / requests * 1e6)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        await call()
    profile.disable()
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return Cost(name, round(statistics.median(cpu), 1), round(calls / requests))


async def _jobsvc(url: str, requests: int, rounds: int) -> list[Cost]:
    app = create_app(bench_settings(url, ADMIN_KEY))
    bearer = f"Bearer {ADMIN_KEY}"
    job = {"type": "diag.noop", "params": {}}
    single = json.dumps(job).encode()
    batch = json.dumps({"jobs": [job] * BATCH}).encode()
    async with LifespanManager(app):
        await app.state.arq.flushdb()
        submit = _caller(app, "POST", "/v1/jobs", single, bearer)
        await submit()
        job_id = (await app.state.arq.zrange(keys.arq_queue(keys.DEFAULT_QUEUE), 0, 0))[0].decode()
        return [
            await _cost("jobsvc POST /v1/jobs", submit, 202, requests, rounds),
            await _cost(
                "jobsvc GET /v1/jobs/{id}",
                _caller(app, "GET", f"/v1/jobs/{job_id}", b"", bearer),
                200,
                requests,
                rounds,
            ),
            await _cost(
                f"jobsvc POST /v1/jobs:batch ({BATCH} jobs)",
                _caller(app, "POST", "/v1/jobs:batch", batch, bearer),
                202,
                max(1, requests // BATCH),
                rounds,
            ),
        ]


async def _minimal(url: str, requests: int, rounds: int) -> list[Cost]:
    os.environ["BENCH_REDIS_URL"] = url  # the minimal app reads it in its lifespan

    body = json.dumps({"function": "noop", "params": {}}).encode()
    async with LifespanManager(minimal_app):
        return [
            await _cost(
                "minimal POST /v1/jobs",
                _caller(minimal_app, "POST", "/v1/jobs", body, None),
                202,
                requests,
                rounds,
            )
        ]


async def measure(url: str, requests: int, rounds: int) -> list[Cost]:
    costs = await _jobsvc(url, requests, rounds)
    async with Redis.from_url(url) as redis:
        await redis.flushdb()
    return costs + await _minimal(url, requests, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests per round (batches: a hundredth)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    costs = run_against_server(args.redis_url, lambda url: measure(url, args.requests, args.rounds))
    print(f"API cost per request (CPU: median of {args.rounds} rounds of {args.requests}; calls: one round)")
    print(f"{'request':<40} {'CPU µs':>8} {'Python calls':>13}")
    for cost in costs:
        print(f"{cost.request:<40} {cost.cpu_us:>8,.0f} {cost.python_calls:>13,}")
    if args.json:
        args.json.write_text(json.dumps([asdict(cost) for cost in costs], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
