"""What operators read about the queues and the schedules, from the queue structures in Redis.

Counts come from sorted-set cardinalities and the per-minute outcome counters the release script keeps,
so reading them costs a few pipelined round trips whatever the backlog.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from jobs.engine import keys
from jobs.engine.cron import next_run
from jobs.engine.records import read_snapshots
from jobs.schedules import Schedule
from jobs.status import JobStatus

#: how many waiting entries are looked at to find the oldest one that is not running
OLDEST_PROBE = 50


@dataclass(frozen=True)
class QueueStats:
    name: str
    #: due and waiting: ready, waiting for a free limit slot, or waiting for the jobs it depends on
    queued: int
    deferred: int
    in_progress: int
    succeeded_last_hour: int
    failed_last_hour: int
    cancelled_last_hour: int
    #: seconds since the oldest waiting job fell due (None: nothing waits)
    oldest_waiting_s: float | None
    #: (succeeded, failed) per minute over the last hour, oldest first: throughput and failures over time
    per_minute: tuple[tuple[int, int], ...] = ()


async def read_queue_stats(redis: Redis, queue_names: Iterable[str]) -> list[QueueStats]:
    names = list(queue_names)
    now = int(time.time() * 1000)
    minute = now // 60_000
    minutes = range(minute - 59, minute + 1)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zcard(keys.arq_queue(name))
            pipe.zcard(keys.running(name))
            pipe.zcard(keys.deferred(name))
            pipe.zrangebyscore(keys.arq_queue(name), "-inf", now, start=0, num=OLDEST_PROBE, withscores=True)
            for m in minutes:
                pipe.hgetall(keys.queue_stats(name, m))
        replies = await pipe.execute()
    per_queue = 4 + len(minutes)
    stats: list[QueueStats] = []
    for i, name in enumerate(names):
        total, running, deferred, due, *buckets = replies[i * per_queue : (i + 1) * per_queue]
        outcomes: dict[bytes, int] = {}
        for bucket in buckets:
            for outcome, count in bucket.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + int(count)
        per_minute = tuple((int(b.get(b"succeeded", 0)), int(b.get(b"failed", 0))) for b in buckets)
        oldest = await _oldest_not_running(redis, name, due, now)
        stats.append(
            QueueStats(
                name=name,
                queued=max(0, total - running - deferred),
                deferred=deferred,
                in_progress=running,
                succeeded_last_hour=outcomes.get(b"succeeded", 0),
                failed_last_hour=outcomes.get(b"failed", 0),
                cancelled_last_hour=outcomes.get(b"cancelled", 0),
                oldest_waiting_s=None if oldest is None else max(0.0, (now - oldest) / 1000),
                per_minute=per_minute,
            )
        )
    return stats


async def _oldest_not_running(
    redis: Redis, queue: str, due: list[tuple[bytes, float]], now: int
) -> float | None:
    """The due time of the oldest due job that is not running (ARQ's queue also holds running ones)."""
    if not due:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _ in due:
            pipe.zscore(keys.running(queue), job_id)
        running = await pipe.execute()
    for (_, score), lease in zip(due, running, strict=True):
        if lease is None:
            return score
    return None


@dataclass(frozen=True)
class ScheduleState:
    schedule: Schedule
    next_run: datetime
    last_run: datetime | None
    last_job_id: str | None
    last_status: JobStatus | None
    skipped_ticks: int


async def read_schedules(redis: Redis, schedules: Mapping[str, Schedule]) -> list[ScheduleState]:
    async with redis.pipeline(transaction=False) as pipe:
        for name in schedules:
            pipe.hgetall(keys.schedule_state(name))
        records: list[dict[bytes, bytes]] = await pipe.execute()
    last_ids = [record.get(b"job_id", b"").decode() or None for record in records]
    snapshots = await read_snapshots(redis, [job_id for job_id in last_ids if job_id])
    status_of = {s.id: s.status for s in snapshots if s is not None}
    states: list[ScheduleState] = []
    for (_, schedule), record, job_id in zip(schedules.items(), records, last_ids, strict=True):
        enqueued = record.get(b"enqueued_at")
        states.append(
            ScheduleState(
                schedule=schedule,
                next_run=next_run(schedule),
                last_run=datetime.fromtimestamp(int(enqueued) / 1000, tz=UTC) if enqueued else None,
                last_job_id=job_id,
                last_status=status_of.get(job_id) if job_id else None,
                skipped_ticks=int(record.get(b"skipped", 0)),
            )
        )
    return states
