"""Scale with depth: the same figures at 1,000 queued jobs and at 1,000,000, to show that nothing on a
request path scans a whole queue, index or keyspace.

    .venv/bin/python -m bench.depth [--depth 1000000] [--probes 200] [--redis-url URL]

The app runs in-process (its real lifespan, over ASGI) against an embedded Valkey in a temporary directory
unless ``--redis-url`` names a server (which it then flushes). It fills the default queue with ``diag.noop``
jobs through ``POST /v1/jobs:batch`` (1,000 a batch) to 1,000 jobs, measures, fills on to ``--depth``, and
measures again:

- enqueue rate: ten batches of 100 jobs, one after the other (jobs/s; the median of three rounds);
- claim rate: the claim script taking 500 jobs (100 a call) from the head of the queue, as a worker's
  claims do (jobs/s; the median of three rounds); the jobs it took then end as a worker's runs would;
- bytes per job: the server's ``used_memory`` over the jobs written so far;
- what each command took a call while the two rates were measured (``INFO commandstats``, a script's own
  commands counted one by one), for the commands that took the most time at depth: which grew;
- the same two rates again once no background save runs, when one ran while they were measured: the
  server's append-only file grows by gigabytes during the fill, so a rewrite of it (a forked child
  copying the whole dataset, during which each page the parent writes is copied first) may still be
  running; these are the figures without that, which is the server's background work, not a request's;
- p99 of ``GET /v1/jobs`` (the first page; the tenth page, followed by cursor; filtered by type, by queue,
  and by status: failed, from its own index; in_progress, from the running sets; queued, by a bounded
  scan), ``GET /v1/queues`` and ``GET /metrics``, ``--probes`` times each, one after the other.

The target (#13): every figure at 1,000,000 within 1.5x of its value at 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from bench.in_process import bench_settings, in_process_api
from bench.measure import poll_until, run_against_server, saving_in_background, summary_ms, used_memory
from jobs.engine import keys
from jobs.engine.queue_ops import Claim, JobQueues
from service.config import Settings

ADMIN_KEY = "bench-depth-admin-key-" + "k" * 32
NOOP = {"type": "diag.noop", "params": {}}
FILL_BATCH = 1000
CLAIMED = 500
#: rounds of the rate measurements, of which the median counts (the machine is small and noisy)
ROUNDS = 3
#: how long a background save may take to finish before the rates are measured again without it
SAVE_TIMEOUT_S = 900.0
SETTLED = " (no background save)"
Figures = dict[str, float]
#: per command: calls and µs a call while the rates were measured
Commands = dict[str, tuple[int, float]]


@dataclass
class AtDepth:
    """What one depth measured."""

    figures: Figures
    commands: Commands
    #: whether a background save ran while the rates were measured (they were measured again without)
    saving: bool


#: commands in the per-command table
COMMANDS_SHOWN = 12


def settings_for(redis_url: str, depth: int) -> Settings:
    """Quotas and budgets wide enough for the whole fill: the figures are the engine's, not the limits'."""
    return bench_settings(
        redis_url,
        ADMIN_KEY,
        environment="development",
        tenant_max_kept_jobs=depth * 4,
        tenant_max_kept_bytes=depth * 16_384,
    )


async def fill(http: httpx.AsyncClient, jobs: int) -> None:
    body = {"jobs": [NOOP] * FILL_BATCH}
    for done in range(0, jobs, FILL_BATCH):
        if jobs - done < FILL_BATCH:
            body = {"jobs": [NOOP] * (jobs - done)}
        response = await http.post("/v1/jobs:batch", json=body)
        if response.status_code != 202:
            raise SystemExit(f"the fill was refused: {response.status_code} {response.text}")


async def enqueue_rate(http: httpx.AsyncClient) -> float:
    """Jobs a second, the median of three rounds of ten batches of 100."""
    body = {"jobs": [NOOP] * 100}
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(10):
            response = await http.post("/v1/jobs:batch", json=body)
            assert response.status_code == 202, response.text
        rates.append(1000 / (time.perf_counter() - started))
    return statistics.median(rates)


async def claim_rate(queues: JobQueues) -> float:
    """Jobs a second the claim script takes from the head of the default queue, the median of three
    rounds; what it took then ends as a worker's run would end it."""
    return statistics.median([await claim_round(queues) for _ in range(ROUNDS)])


async def claim_round(queues: JobQueues) -> float:
    taken: list[Claim] = []
    credits: dict[str, int] = {}
    started = time.perf_counter()
    while len(taken) < CLAIMED:
        claims, _ = await queues.claim(
            lease_ms=600_000, free=100, limits="{}", queues=[(keys.DEFAULT_QUEUE, 1)], credits=credits
        )
        if not claims:
            break
        taken += claims
    elapsed = time.perf_counter() - started
    await asyncio.gather(
        *(
            queues.release(claim, ended=True, result=b"{}", result_ttl_ms=3_600_000, outcome="succeeded")
            for claim in taken
        )
    )
    return len(taken) / elapsed


async def rates(http: httpx.AsyncClient, queues: JobQueues) -> Figures:
    return {"enqueue jobs/s": await enqueue_rate(http), "claim jobs/s": await claim_rate(queues)}


async def _not_saving(queues: JobQueues) -> bool:
    return not await saving_in_background(queues.redis)


async def p99_ms(probe: Callable[[], Awaitable[httpx.Response]], probes: int) -> float:
    seconds = []
    for _ in range(probes):
        started = time.perf_counter()
        response = await probe()
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return float(summary_ms(seconds)["p99"])


async def tenth_page_cursor(http: httpx.AsyncClient) -> str:
    cursor = ""
    for _ in range(9):
        page = (
            await http.get("/v1/jobs", params={"limit": 50, **({"cursor": cursor} if cursor else {})})
        ).json()
        cursor = page["next_cursor"]
    return cursor


async def command_times(queues: JobQueues) -> Commands:
    stats = await queues.redis.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(entry["calls"]), float(entry["usec_per_call"]))
        for name, entry in stats.items()
    }


async def measure_at(http: httpx.AsyncClient, queues: JobQueues, depth: int, probes: int) -> AtDepth:
    memory = await used_memory(queues.redis)
    figures: Figures = {"depth": depth, "bytes per job": memory / depth}
    saving = await saving_in_background(queues.redis)
    await queues.redis.config_resetstat()
    figures.update(await rates(http, queues))
    commands = await command_times(queues)
    saving = saving or await saving_in_background(queues.redis)
    if saving:
        await poll_until(
            lambda: _not_saving(queues), timeout_s=SAVE_TIMEOUT_S, interval_s=1.0, what="a background save"
        )
        settled = await rates(http, queues)
    else:
        settled = {name: value for name, value in figures.items() if name.endswith("jobs/s")}
    figures.update({name + SETTLED: value for name, value in settled.items()})
    tenth = await tenth_page_cursor(http)
    requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "GET /v1/jobs p99 ms": lambda: http.get("/v1/jobs", params={"limit": 50}),
        "GET /v1/jobs 10th page p99 ms": lambda: http.get("/v1/jobs", params={"limit": 50, "cursor": tenth}),
        "GET /v1/jobs?type= p99 ms": lambda: http.get("/v1/jobs", params={"limit": 50, "type": "diag.noop"}),
        "GET /v1/jobs?queue= p99 ms": lambda: http.get("/v1/jobs", params={"limit": 50, "queue": "default"}),
        "GET /v1/jobs?status=failed p99 ms": lambda: http.get(
            "/v1/jobs", params={"limit": 50, "status": "failed"}
        ),
        "GET /v1/jobs?status=in_progress p99 ms": lambda: http.get(
            "/v1/jobs", params={"limit": 50, "status": "in_progress"}
        ),
        "GET /v1/jobs?status=queued p99 ms": lambda: http.get(
            "/v1/jobs", params={"limit": 50, "status": "queued"}
        ),
        "GET /v1/queues p99 ms": lambda: http.get("/v1/queues"),
        "GET /metrics p99 ms": lambda: http.get("/metrics"),
    }
    for name, probe in requests.items():
        figures[name] = await p99_ms(probe, probes)
    return AtDepth(figures, commands, saving)


async def measure(redis_url: str, depth: int, probes: int) -> tuple[AtDepth, AtDepth]:
    async with in_process_api(settings_for(redis_url, depth), timeout_s=120) as (app, http):
        queues = JobQueues(app.state.arq)
        baseline = await used_memory(queues.redis)
        started = time.perf_counter()
        await fill(http, 1000)
        shallow = await measure_at_depth(http, queues, 1000, probes, baseline)
        await fill(http, depth - 1000)
        deep = await measure_at_depth(http, queues, depth, probes, baseline)
        deep.figures["fill s"] = time.perf_counter() - started
    return shallow, deep


async def measure_at_depth(
    http: httpx.AsyncClient, queues: JobQueues, depth: int, probes: int, baseline: int
) -> AtDepth:
    """``measure_at``, with the memory the empty server used taken out of bytes per job."""
    measured = await measure_at(http, queues, depth, probes)
    figures = measured.figures
    figures["bytes per job"] = (figures["bytes per job"] * depth - baseline) / depth
    print(f"at {depth:,} jobs: " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()), flush=True)
    return measured


def render(shallow: Figures, deep: Figures) -> str:
    lower_is_better = {"bytes per job"} | {name for name in shallow if name.endswith("ms")}
    at = f"| at {int(shallow['depth']):,} | at {int(deep['depth']):,} |"
    lines = [
        f"| figure {at} ratio (worse / better) | ≤ 1.5x |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, low in shallow.items():
        if name == "depth":
            continue
        high = deep[name]
        ratio = high / low if name in lower_is_better else low / high
        lines.append(
            f"| {name} | {low:,.2f} | {high:,.2f} | {ratio:.2f} | {'yes' if ratio <= 1.5 else 'NO'} |"
        )
    return "\n".join(lines)


def render_commands(shallow: Commands, deep: Commands, depths: tuple[float, float]) -> str:
    """The commands that took the most time at depth while the rates were measured, a call at each depth."""
    low, high = (f"{int(depth):,}" for depth in depths)
    lines = [
        f"| command (while the rates ran) | calls | µs a call at {low} | at {high} | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    common = [name for name in deep if name in shallow and shallow[name][1] > 0]
    for name in sorted(common, key=lambda name: -deep[name][0] * deep[name][1])[:COMMANDS_SHOWN]:
        calls, at_depth = deep[name]
        at_start = shallow[name][1]
        lines.append(
            f"| {name} | {calls:,} | {at_start:,.2f} | {at_depth:,.2f} | {at_depth / at_start:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--redis-url", default=None, help="use this server (FLUSHDB first!)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.depth < 10_000:
        parser.error("--depth must be at least 10,000")

    async def run(url: str) -> tuple[AtDepth, AtDepth]:
        return await measure(url, args.depth, args.probes)

    shallow, deep = run_against_server(args.redis_url, run)
    print(render(shallow.figures, deep.figures))
    print(render_commands(shallow.commands, deep.commands, (shallow.figures["depth"], deep.figures["depth"])))
    for measured in (shallow, deep):
        ran = "ran" if measured.saving else "did not run"
        print(f"at {int(measured.figures['depth']):,} jobs a background save {ran} while the rates ran")
    print(f"fill and measurement: {deep.figures['fill s']:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "shallow": shallow.figures,
                    "deep": deep.figures,
                    "background_save": {"shallow": shallow.saving, "deep": deep.saving},
                    "commands": {"shallow": shallow.commands, "deep": deep.commands},
                },
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
