"""taskiq with taskiq-redis's stream broker (consumer group, acknowledged after the result is saved) and
Redis result backend: three tasks and the client side.

    BENCH_REDIS_URL=redis://… taskiq worker bench.peers.taskiq_app:broker --workers 1 --max-async-tasks 100
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskiq import AsyncTaskiqDecoratedTask
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from bench.measure import CountingRedis
from bench.peers.base import BIN, SLEEP_S, Kind, System

STREAM = GROUP = "taskiq"


def make_broker(url: str) -> RedisStreamBroker:
    return RedisStreamBroker(url).with_result_backend(RedisAsyncResultBackend(url))


broker = make_broker(os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379"))


@broker.task(task_name="noop")
async def noop() -> None:
    return None


@broker.task(task_name="sleep")
async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@broker.task(task_name="stamp")
async def stamp() -> float:
    return time.time()


TASKS: dict[Kind, tuple[AsyncTaskiqDecoratedTask[Any, Any], dict[str, Any]]] = {
    "noop": (noop, {}),
    "sleep": (sleep, {"seconds": SLEEP_S}),
    "stamp": (stamp, {}),
}


class TaskiqSystem(System):
    name = "taskiq"
    concurrency = 100
    describe = "taskiq + taskiq-redis stream broker: --max-async-tasks 100, ack when saved"

    def worker_args(self) -> list[str | Path]:
        args: list[str | Path] = [BIN / "taskiq", "worker", "bench.peers.taskiq_app:broker", "--workers", "1"]
        return [*args, "--max-async-tasks", str(self.concurrency), "--ack-type", "when_saved"]

    async def connect(self, redis_url: str) -> None:
        # the module's broker reads its URL from the environment; the client talks to this server
        self._broker = make_broker(redis_url)
        await self._broker.startup()  # creates the consumer group before anything is enqueued

    async def close(self) -> None:
        await self._broker.shutdown()

    async def enqueue(self, kind: Kind) -> str:
        task, kwargs = TASKS[kind]
        sent = await task.kicker().with_broker(self._broker).kiq(**kwargs)
        return str(sent.task_id)

    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        # not yet delivered to a consumer (lag) plus delivered but not acknowledged (pending)
        for group in await redis.xinfo_groups(STREAM):
            if group["name"] in (GROUP, GROUP.encode()):
                return int(group["lag"] or 0) + int(group["pending"])
        return len(ids)

    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        backend = self._broker.result_backend
        found: dict[str, float] = {}
        for task_id in ids:
            if await backend.is_result_ready(task_id):
                result = await backend.get_result(task_id)
                value: Any = result.return_value
                if not result.is_err:
                    found[task_id] = float(value)
        return found
