"""Open-loop HTTP load: POST one JSON body (read from stdin) at a fixed rate for a fixed time, each request
sent at its scheduled moment whatever the earlier ones are doing, and its latency counted from that moment.
Prints its figures as JSON. Run by the suite in a process of its own::

    echo '{"type": "diag.noop"}' | python -m bench.loadgen --url http://127.0.0.1:8000 --path /v1/jobs \\
        --rate 500 --duration 5

HTTP/1.1 over raw asyncio streams with keep-alive: far less CPU per request than a full client, so the
generator is not what limits the rate. A request that finds every one of ``--connections`` busy waits
for one, and that wait counts in its latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.measure import summary_ms

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    send_lag_max: float = 0.0
    last_done: float = 0.0


async def _exchange(conn: Connection, request: bytes) -> int:
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def generate(
    url: str,
    path: str,
    body: bytes,
    *,
    rate: float,
    duration_s: float,
    connections: int,
    timeout_s: float,
    authorization: str | None = None,
) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth_line = f"Authorization: {authorization}\r\n" if authorization else ""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth_line}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    idle: list[Connection] = []
    slots = asyncio.Semaphore(connections)
    tally = Tally()

    async def one(scheduled: float) -> None:
        async with slots:
            tally.send_lag_max = max(tally.send_lag_max, time.perf_counter() - scheduled)
            conn = idle.pop() if idle else await asyncio.open_connection(host, port)
            try:
                status = await asyncio.wait_for(_exchange(conn, request), timeout_s)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                tally.statuses[type(exc).__name__] += 1
                conn[1].close()
                return
            done = time.perf_counter()
            idle.append(conn)
            tally.statuses[str(status)] += 1
            tally.last_done = max(tally.last_done, done)
            if 200 <= status < 300:
                tally.latencies.append(done - scheduled)

    count = max(1, round(rate * duration_s))
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    ok = len(tally.latencies)
    elapsed = max(tally.last_done - start, duration_s) if ok else duration_s
    return {
        "offered_rate": rate,
        "duration_s": duration_s,
        "sent": count,
        "ok": ok,
        "statuses": dict(tally.statuses),
        "throughput": round(ok / elapsed, 1),
        "latency_ms": summary_ms(tally.latencies),
        "send_lag_max_ms": round(tally.send_lag_max * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sending")
    parser.add_argument("--connections", type=int, default=256, help="most connections open at once")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds before a request counts as failed"
    )
    args = parser.parse_args(argv)
    body = sys.stdin.buffer.read()
    authorization = os.environ.get("BENCH_AUTHORIZATION")  # not on the command line: it is a secret
    figures = asyncio.run(
        generate(
            args.url,
            args.path,
            body,
            rate=args.rate,
            duration_s=args.duration,
            connections=args.connections,
            timeout_s=args.timeout,
            authorization=authorization,
        )
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
