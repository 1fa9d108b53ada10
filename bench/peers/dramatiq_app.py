"""Dramatiq with its Redis broker and the Results middleware (Redis backend, every result stored, as the
other systems do): three actors and the client side.

    BENCH_REDIS_URL=redis://… dramatiq bench.peers.dramatiq_app --processes 1 --threads 100

Dramatiq's actors are synchronous and run in threads; its client is synchronous, so the suite calls it in
a thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import ResultMissing, Results
from dramatiq.results.backends import RedisBackend

from bench.measure import CountingRedis
from bench.peers.base import BIN, SLEEP_S, Kind, System

QUEUE = "default"


def make_broker(url: str) -> tuple[RedisBroker, RedisBackend]:
    backend = RedisBackend(url=url)
    broker = RedisBroker(url=url)
    broker.add_middleware(Results(backend=backend, store_results=True))
    return broker, backend


broker, _ = make_broker(os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379"))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", queue_name=QUEUE)
def noop() -> None:
    return None


@dramatiq.actor(actor_name="sleep", queue_name=QUEUE)
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@dramatiq.actor(actor_name="stamp", queue_name=QUEUE)
def stamp() -> float:
    return time.time()


ACTORS: dict[Kind, tuple[dramatiq.Actor[Any, Any], dict[str, Any]]] = {
    "noop": (noop, {}),
    "sleep": (sleep, {"seconds": SLEEP_S}),
    "stamp": (stamp, {}),
}


class DramatiqSystem(System):
    name = "dramatiq"
    concurrency = 100
    describe = "Dramatiq Redis broker + Results: 1 process x 100 threads per worker"

    def __init__(self) -> None:
        self._messages: dict[str, dramatiq.Message[Any]] = {}

    def worker_args(self) -> list[str | Path]:
        return [BIN / "dramatiq", "bench.peers.dramatiq_app", "--processes", "1", "--threads", "100"]

    async def connect(self, redis_url: str) -> None:
        self._broker, self._backend = make_broker(redis_url)
        self._broker.declare_queue(QUEUE)
        self._messages.clear()

    async def close(self) -> None:
        await asyncio.to_thread(self._broker.close)

    def _send(self, kind: Kind) -> str:
        actor, kwargs = ACTORS[kind]
        message = self._broker.enqueue(actor.message(**kwargs))
        self._messages[message.message_id] = message
        return str(message.message_id)

    async def enqueue(self, kind: Kind) -> str:
        return await asyncio.to_thread(self._send, kind)

    async def enqueue_many(self, kind: Kind, count: int) -> list[str]:
        return await asyncio.to_thread(lambda: [self._send(kind) for _ in range(count)])

    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        # a message stays in this hash until a worker acknowledges it, after running it
        return await redis.number("HLEN", f"dramatiq:{QUEUE}.msgs")

    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        def read() -> dict[str, float]:
            found: dict[str, float] = {}
            for message_id in ids:
                try:
                    result = self._messages[message_id].get_result(backend=self._backend)
                except ResultMissing:
                    continue
                found[message_id] = float(result)
            return found

        return await asyncio.to_thread(read)
