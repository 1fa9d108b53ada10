"""What the suite needs from each queue system it measures: how to start its workers (and API), how to
enqueue the three benchmark jobs, how many jobs are not finished yet, and when a stamp job started."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from bench.measure import BIN, ROOT, CountingRedis

#: enqueues in flight at once when a system's client has no batch call
CONCURRENT_ENQUEUES = 50

#: the three jobs every system implements: do nothing; sleep 10 ms; return time.time() at start
Kind = Literal["noop", "sleep", "stamp"]
SLEEP_S = 0.01
__all__ = ["BIN", "ROOT", "SLEEP_S", "Kind", "System"]


class System(ABC):
    """One queue system as configured for the benchmark. Jobs are enqueued from the suite's process through
    the system's own client; workers (and the API, if any) run as separate processes."""

    #: key in tables and JSON, e.g. ``arq-default``
    name: str
    #: one line on how it is configured
    describe: str
    #: jobs one worker process runs at once (None: the system's default, named in `describe`)
    concurrency: int | None = None

    @abstractmethod
    def worker_args(self) -> list[str | Path]:
        """The command line of one worker process (run in the repository root)."""

    def worker_env(self, redis_url: str) -> dict[str, str]:
        """Environment added to the workers' (and the API's)."""
        return {"BENCH_REDIS_URL": redis_url}

    def api_args(self, port: int, processes: int = 1) -> list[str | Path] | None:
        """The command line of the REST API for the submit benchmark, served by ``processes`` processes;
        None if the system has none here."""
        return None

    def authorization(self) -> str | None:
        """The Authorization header its REST API wants, if any."""
        return None

    def rest_job(self, kind: Kind) -> dict[str, object]:
        """The JSON body of one job as the REST API takes it."""
        raise NotImplementedError

    @abstractmethod
    async def connect(self, redis_url: str) -> None:
        """Open the client (called once per fresh server)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def enqueue(self, kind: Kind) -> str:
        """Enqueue one job the way an application would; returns its id."""

    async def enqueue_many(self, kind: Kind, count: int) -> list[str]:
        """Enqueue `count` jobs as fast as the client allows; returns their ids. By default
        `CONCURRENT_ENQUEUES` single enqueues at a time; a system with a batch call overrides this."""
        ids: list[str] = []
        for start in range(0, count, CONCURRENT_ENQUEUES):
            chunk = min(CONCURRENT_ENQUEUES, count - start)
            ids += await asyncio.gather(*(self.enqueue(kind) for _ in range(chunk)))
        return ids

    @abstractmethod
    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        """How many of `ids` (all enqueued since the server was fresh) have not finished; reads through
        `redis` so that the suite can leave its own commands out of the server's counts."""

    @abstractmethod
    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        """The ``time.time()`` each finished stamp job among `ids` returned."""


def uvicorn_workers(processes: int) -> list[str]:
    """uvicorn's arguments for an API served by ``processes`` processes (one: uvicorn's own default)."""
    return ["--workers", str(processes)] if processes > 1 else []
