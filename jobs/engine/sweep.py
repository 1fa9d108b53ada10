"""Every accepted job ends: the waiting jobs that can no longer run get an outcome.

A job not started within ``JOBSVC_QUEUED_JOB_EXPIRY_S`` of its due time (sent to a queue no worker
serves, a backlog that never drained) ends failed with
``JobExpired``, among the dead letters, its tenant's open-jobs quota given back and its place in every
queue given up: what ARQ's own worker does with a job it finds expired, but without waiting for a worker
of that queue to come along. Its record outlives that moment by ``queue_ops.EXPIRY_MARGIN_MS``, so the
sweep always has the job to write its result from. A dependent is not due until its parents end: its
records live as long as theirs, and its expiry counts from the moment they end (settle_dependents.lua).

At every heartbeat one worker (the one holding ``keys.SWEEP_LOCK``) looks at the queues, a step of
``SWEEP_STEP`` jobs each: a few commands when nothing is due to expire.
"""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from jobs.engine import keys
from jobs.engine.codec import deserialize
from jobs.engine.queue_ops import Claim, JobQueues, ReleaseOutcome, ended_record
from jobs.engine.records import attempts_started

#: jobs a sweep looks at per queue
SWEEP_STEP = 500
EXPIRED_ERROR_TYPE = "JobExpired"


@dataclass(frozen=True)
class Expired:
    """A job the sweep ended, and what ending it answered (``settle``: dependents wait for it)."""

    job_id: str
    job_type: str
    queue: str
    reply: ReleaseOutcome


async def sweep_expired(
    queues: JobQueues,
    queue_names: Iterable[str],
    *,
    queued_expiry_ms: int,
    now_ms: int,
    result_ttl_ms: int,
    dead_letter_ms: int,
    passed_over: dict[str, int],
) -> list[Expired]:
    """End, as expired, the jobs of ``queue_names`` still waiting ``queued_expiry_ms`` after they were due.

    ``passed_over`` (queue -> count, updated): how many of a queue's oldest overdue entries earlier steps
    left alone (running jobs, dependents waiting for their parents); the next step starts past them, so
    that more of those than a step holds never hide the expired jobs behind them. A step that reaches
    the end of the overdue entries starts the next one from the first again."""
    ended: list[Expired] = []
    for queue in queue_names:
        start = passed_over.get(queue, 0)
        overdue: list[bytes] = await queues.redis.zrangebyscore(
            keys.arq_queue(queue), "-inf", now_ms - queued_expiry_ms, start=start, num=SWEEP_STEP
        )
        expired = [
            (job_id.decode(), found)
            for job_id, found in zip(overdue, await _read(queues, overdue), strict=True)
            if found is not None
        ]
        passed_over[queue] = start + len(overdue) - len(expired) if len(overdue) == SWEEP_STEP else 0
        replies = await asyncio.gather(  # sent together: one round trip (ScriptBatcher)
            *(
                queues.release(
                    Claim(job_id=job_id, score=0, queue=queue, slot="", job_type=job_type),
                    ended=True,
                    result=record,
                    result_ttl_ms=result_ttl_ms,
                    outcome="failed",
                    bury_for_ms=dead_letter_ms,
                )
                for job_id, (job_type, record) in expired
            )
        )
        ended += [
            Expired(job_id, job_type, queue, reply)
            for (job_id, (job_type, _)), reply in zip(expired, replies, strict=True)
            if reply in ("ended", "settle")
        ]
    return ended


async def _read(queues: JobQueues, job_ids: list[bytes]) -> list[tuple[str, bytes] | None]:
    """For each job: its type and the result record to end it with, or None when it is not waiting
    (it runs, or has ended) and is none of the sweep's business."""
    async with queues.redis.pipeline(transaction=False) as pipe:
        for raw_id in job_ids:
            job_id = raw_id.decode()
            pipe.get(keys.arq_job(job_id))
            pipe.exists(keys.arq_result(job_id), keys.arq_in_progress(job_id))
            pipe.hmget(keys.job_meta(job_id), ["type", "queue", "outcome", "waiting_for", "tries"])
            pipe.get(keys.arq_retry(job_id))
        replies: list[Any] = await typing.cast(Awaitable[list[Any]], pipe.execute())
    found: list[tuple[str, bytes] | None] = []
    for n, raw_id in enumerate(job_ids):
        raw, busy, (job_type, queue, outcome, waiting_for, tries), legacy = replies[4 * n : 4 * n + 4]
        if busy or outcome or waiting_for:  # a dependent waits as long as its parents: they settle it
            found.append(None)
            continue
        name = (job_type or b"").decode()
        queue_name = (queue or keys.DEFAULT_QUEUE.encode()).decode()
        record = deserialize(raw) if raw else {"f": name, "k": {}, "et": 0}  # a record older than the margin
        message = f"not started within its queued expiry; does a worker serve queue {queue_name!r}?"
        found.append(
            (
                name or str(record["f"]),
                ended_record(
                    raw_id.decode(),
                    function=str(record["f"]),
                    kwargs=record.get("k") or {},
                    enqueued_ms=int(record.get("et") or 0),
                    attempts=attempts_started(tries, legacy),
                    arq_queue=keys.arq_queue(queue_name),
                    error={"type": EXPIRED_ERROR_TYPE, "message": message},
                ),
            )
        )
    return found
