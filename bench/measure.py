"""Measuring helpers shared by the suite and the peers: percentiles, the server's command and memory
counters, a Redis client that counts its own commands, process groups (CPU, stop/continue), fresh servers
and the children started against them, and the open-loop HTTP load generator run in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio

from service.devtools.embedded import EmbeddedRedis
from service.devtools.processes import parent_death_preexec, spawn, stop_processes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: commands the suite itself sends to read and reset the counters; left out of every count
HARNESS_COMMANDS = frozenset({"info", "config|resetstat", "config", "flushall", "client|setname"})
#: the commands that run a script: by its text, by its SHA-1, or as a function of a loaded library
SCRIPT_CALLS = frozenset({"eval", "evalsha", "fcall"})


T = TypeVar("T")


def run_against_server(redis_url: str | None, measure: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """``measure(url)`` against ``redis_url``, or against an embedded Valkey in a temporary directory."""
    if redis_url:
        return asyncio.run(measure(redis_url))
    with tempfile.TemporaryDirectory() as scratch, EmbeddedRedis(Path(scratch)) as server:
        return asyncio.run(measure(server.url))


class LoopbackValkey(EmbeddedRedis):
    """The embedded Valkey on a free loopback TCP port instead of a unix socket: every peer's client takes a
    ``redis://host:port`` URL (SAQ refuses ``unix://``), and deployments talk TCP."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        # EmbeddedRedis listens on TCP when its socket path could not go into a URL unescaped
        self.socket_path = self.redis_dir / "tcp#"


class CountingRedis(redis.asyncio.Redis):
    """A client that counts the commands it sends, so they can be subtracted from the server's counts."""

    calls: int = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.calls += 1
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def number(self, *command: str) -> int:
        """A command answering an integer (ZCARD, LLEN, HLEN, EXISTS …)."""
        return int(await self.execute_command(*command))


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p99, mean and max of durations given in seconds, in milliseconds (nearest-rank percentiles)."""
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50": round(rank(0.50) * 1000, 2),
        "p99": round(rank(0.99) * 1000, 2),
        "mean": round(statistics.fmean(ordered) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


async def command_calls(client: redis.asyncio.Redis) -> dict[str, int]:
    """Calls per command since the server started or its stats were reset (``INFO commandstats``)."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def calls_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Per-command call deltas, without the harness's own counter reads."""
    delta = {name: after[name] - before.get(name, 0) for name in after if name not in HARNESS_COMMANDS}
    return {name: calls for name, calls in sorted(delta.items()) if calls}


async def used_memory(client: redis.asyncio.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def aof_size(client: redis.asyncio.Redis) -> int | None:
    """Bytes in the server's append-only file, or None when it keeps none. Every write a script makes is
    appended there (and sent to each replica) as a command of its own: what durability costs per job."""
    persistence = await client.info("persistence")
    if not persistence.get("aof_enabled"):
        return None
    return int(persistence["aof_current_size"])


async def saving_in_background(client: redis.asyncio.Redis) -> bool:
    """Whether the server is rewriting its append-only file or writing a snapshot, in a forked child:
    meanwhile every write the parent makes copies a page of memory the child still reads."""
    persistence = await client.info("persistence")
    return bool(persistence.get("aof_rewrite_in_progress") or persistence.get("rdb_bgsave_in_progress"))


async def server_version(client: redis.asyncio.Redis) -> str:
    info = await client.info("server")
    if "valkey_version" in info:
        return f"Valkey {info['valkey_version']}"
    return f"Redis {info.get('redis_version', '?')}"


async def poll_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.01, what: str
) -> float:
    """Call `check` every `interval_s` until it returns True; returns ``time.time()`` of that moment."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout_s:g} s")
        await asyncio.sleep(interval_s)
    return time.time()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group `pgid` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


async def wait_idle(processes: Sequence[subprocess.Popen[bytes]], *, timeout_s: float = 30.0) -> bool:
    """Until every process group has used under 15% of a core for 0.3 s: imported, connected and waiting for
    work (a worker polling every 10 ms uses a few percent). False if that did not happen within `timeout_s`;
    a process that exits meanwhile is an error."""
    deadline = time.monotonic() + timeout_s
    await asyncio.sleep(0.5)
    while True:
        before = [group_cpu_s(p.pid) for p in processes]
        await asyncio.sleep(0.3)
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        used = [group_cpu_s(p.pid) - cpu for p, cpu in zip(processes, before, strict=True)]
        if max(used) < 0.045:
            return True
        if time.monotonic() > deadline:
            return False


def signal_groups(processes: Sequence[subprocess.Popen[bytes]], sig: signal.Signals) -> None:
    """Send `sig` to each process's group (spawn() puts every child in a group of its own)."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


class Stack:
    """The servers and processes of one suite run: a fresh server per scenario (embedded Valkey in a temp
    dir, or a FLUSHALL of ``--redis-url``) and the children started against it, all stopped at the end."""

    def __init__(self, work_dir: Path, redis_url: str | None) -> None:
        self.work_dir = work_dir
        self.redis_url = redis_url
        self.logs = work_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: list[subprocess.Popen[bytes]] = []
        self._servers = 0

    @contextlib.asynccontextmanager
    async def server(self) -> AsyncIterator[str]:
        """A server with nothing in it and fresh counters; its URL. Children started meanwhile are stopped
        on the way out."""
        self._servers += 1
        embedded = None
        if self.redis_url is None:
            embedded = LoopbackValkey(self.work_dir / f"server-{self._servers}")
            url = embedded.start()  # main thread: the server dies with this process
        else:
            url = self.redis_url
            async with redis.asyncio.Redis.from_url(url) as client:
                await client.flushall()
        async with redis.asyncio.Redis.from_url(url) as client:
            await client.config_resetstat()
        started = len(self.children)
        try:
            yield url
        finally:
            self.stop(self.children[started:])
            del self.children[started:]
            if embedded is not None:
                embedded.stop()

    def spawn(self, args: Sequence[str | Path], env: Mapping[str, str], log: str) -> subprocess.Popen[bytes]:
        """Start a child in the repository root, its output appended to ``logs/<log>.log``."""
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSVC_")} | dict(env)
        with (self.logs / f"{log}.log").open("ab") as out:
            child = spawn(list(args), cwd=ROOT, env=child_env, stdout=out)
        self.children.append(child)
        return child

    def stop(self, children: Sequence[subprocess.Popen[bytes]]) -> None:
        signal_groups(children, signal.SIGCONT)  # a stopped child cannot act on SIGTERM
        stop_processes(children, timeout_s=10.0)
        for child in children:  # whatever the workers forked
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        self.stop(self.children)
        self.children.clear()


async def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Until something answers HTTP at `url` (any status)."""
    host, _, port = url.removeprefix("http://").partition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answers at {url}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


async def open_loop(
    url: str,
    path: str,
    body: object,
    *,
    rate: float,
    duration_s: float,
    connections: int = 256,
    authorization: str | None = None,
) -> dict[str, Any]:
    """Run ``python -m bench.loadgen`` (its own process, so it shares no event loop with the API) and return
    what it measured."""
    args = ["-m", "bench.loadgen", "--url", url, "--path", path, "--rate", f"{rate:g}"]
    args += ["--duration", f"{duration_s:g}", "--connections", str(connections)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=parent_death_preexec(),
        env={**os.environ, **({"BENCH_AUTHORIZATION": authorization} if authorization else {})},
    )
    try:
        out, _ = await process.communicate(json.dumps(body).encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator exited with {process.returncode}")
    figures: dict[str, Any] = json.loads(out)
    return figures
