"""A job's state, read from ARQ's records by id, plus the little that jobsvc keeps beside them.

ARQ reports ``complete`` for a job that raised and has no cancelled state; :func:`derive_status` maps
its records to the statuses clients see::

    result record, success           -> succeeded
    result record, CancelledError    -> cancelled
    result record, any other failure -> failed
    in-progress lock                 -> in_progress
    in its queue, due later          -> deferred
    in its queue, due                -> queued
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.codec import deserialize
from jobs.status import TERMINAL_STATUSES, JobStatus

CANCELLED_ERROR_TYPE = "CancelledError"
UNREADABLE_TYPE = "<unreadable>"


@dataclass(frozen=True)
class JobSnapshot:
    """Everything known about one job at one instant. Times are epoch milliseconds."""

    id: str
    type: str
    queue: str
    priority: int
    status: JobStatus
    params: dict[str, Any]
    result: Any
    error: dict[str, str] | None
    attempts: int
    max_attempts: int | None
    progress: dict[str, Any] | None
    created_at: int
    scheduled_for: int | None
    started_at: int | None
    finished_at: int | None
    cancel_requested: bool
    #: the job this one runs again (a retry or a dead letter's replay), and the job that ran this one again
    replay_of: str | None = None
    replayed_as: str | None = None
    #: the backoff the submit chose ({"base_s", "cap_s"}), if it overrode the type's
    backoff: dict[str, float] | None = None
    #: the jobs that had to succeed before this one could start, and how many it still waits for
    depends_on: list[str] = field(default_factory=list)
    waiting_for: int = 0
    #: the schedule that enqueued it, for a job of a schedule
    schedule: str | None = None
    #: who it belongs to
    tenant: str = keys.DEFAULT_TENANT

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def _int(value: bytes | None) -> int | None:
    return int(value) if value is not None else None


def attempts_started(tries: bytes | None, legacy: bytes | None) -> int:
    """The attempts claims have started: the job's meta ``tries`` (claim.lua), or, for a job last claimed
    before the count moved there, ARQ's own counter (``arq:retry:<id>``)."""
    return _int(tries if tries is not None else legacy) or 0


def derive_snapshot(
    job_id: str,
    meta: dict[bytes, bytes],
    job_raw: bytes | None,
    result_raw: bytes | None,
    in_progress: bool,
    pickups: bytes | None,
    score: float | None,
    now_ms: int,
) -> JobSnapshot | None:
    """Combine the records read for one job; None when nothing is left of it."""
    raw = result_raw if result_raw is not None else job_raw
    if raw is None:
        return None
    try:
        record = deserialize(raw)
    except ValueError:  # not msgpack (a planted pickle, say): shown, never executed
        record = {"f": UNREADABLE_TYPE}

    kwargs: dict[str, Any] = record.get("k") or {}
    error: dict[str, str] | None = None
    result: Any = None
    finished_at: int | None = None
    started_at = _int(meta.get(b"started_at"))
    attempts = attempts_started(meta.get(b"tries"), pickups)
    if result_raw is not None:
        attempts = int(record.get("t") or attempts)
        started_at, finished_at = record.get("st"), record.get("ft")
        if record.get("s") is True:
            status, result = JobStatus.succeeded, record.get("r")
        else:
            error = _error_view(record.get("r", "unreadable result record"))
            status = JobStatus.cancelled if error["type"] == CANCELLED_ERROR_TYPE else JobStatus.failed
    elif in_progress:
        status = JobStatus.in_progress
    elif score is not None and score > now_ms:
        status = JobStatus.deferred
    else:
        status = JobStatus.queued

    if error is None and status not in TERMINAL_STATUSES and b"last_error" in meta:
        error = _error_view(meta[b"last_error"].decode())

    progress_raw = meta.get(b"progress")
    scheduled = (
        score if (score is not None and status is JobStatus.deferred) else _int(meta.get(b"scheduled_for"))
    )
    return JobSnapshot(
        id=job_id,
        type=str(record.get("f")),
        queue=_text(meta.get(b"queue")) or keys.DEFAULT_QUEUE,
        priority=_int(meta.get(b"priority")) or 0,
        status=status,
        params=kwargs.get("params") or {},
        result=result,
        error=error,
        attempts=attempts,
        max_attempts=kwargs.get("max_attempts") or _int(meta.get(b"max_attempts")),
        progress=json.loads(progress_raw) if progress_raw else None,
        created_at=int(record.get("et") or 0),
        scheduled_for=int(scheduled) if scheduled is not None else None,
        started_at=started_at,
        finished_at=finished_at,
        cancel_requested=b"cancel_requested" in meta,
        replay_of=_text(meta.get(b"replay_of")),
        replayed_as=_text(meta.get(b"replayed_as")),
        backoff=kwargs.get("backoff"),
        depends_on=list(kwargs.get("depends_on") or []),
        waiting_for=_int(meta.get(b"waiting_for")) or 0,
        schedule=_text(meta.get(b"schedule")),
        tenant=_text(meta.get(b"tenant")) or kwargs.get("tenant") or keys.DEFAULT_TENANT,
    )


def _error_view(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {"type": str(raw.get("type", "Error")), "message": str(raw.get("message", ""))}
    text = str(raw)
    kind, sep, message = text.partition(": ")
    return {"type": kind, "message": message} if sep else {"type": "Error", "message": text}


#: ids a read_jobs.lua call reads at most (a page of the listing, by default): each call holds the server
#: for its whole chunk, about 6 µs an id
READ_CHUNK = 50


async def read_snapshots(
    redis: Redis, job_ids: Sequence[str], *, tenant: str | None = None
) -> list[JobSnapshot | None]:
    """Read many jobs in one round trip (read_jobs.lua, a call per ``READ_CHUNK`` ids, sent at once):
    their records, and the queue positions of those that wait. With ``tenant``, another tenant's job
    reads as None, with the commands an unknown id costs."""
    if not job_ids:
        return []
    read_jobs = redis.register_script(scripts.READ_JOBS)
    chunks = [job_ids[start : start + READ_CHUNK] for start in range(0, len(job_ids), READ_CHUNK)]
    calls = [read_jobs(args=[tenant or "", *chunk]) for chunk in chunks]
    # a single call (a status read, a page) is awaited as it is: a task around it costs a turn of the loop
    replies = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
    rows = [
        [_pairs(meta), record, result, locked, attempts, score]
        for reply in replies
        for meta, record, result, locked, attempts, score in reply
    ]
    if tenant is not None:  # a meta without a tenant (a job of ARQ's own producers) is told by its record
        gone: list[Any] = [{}, None, None, 0, None, None]
        rows = [row if _tenant_of(row) == tenant else gone for row in rows]
    now_ms = int(time.time() * 1000)
    return [
        derive_snapshot(job_id, row[0], row[1], row[2], bool(row[3]), row[4], _float(row[5]), now_ms)
        for job_id, row in zip(job_ids, rows, strict=True)
    ]


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """HGETALL's reply inside a script: field, value, field, value..."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def _tenant_of(row: list[Any]) -> str:
    meta, job_raw, result_raw = row[0], row[1], row[2]
    owner = _text(meta.get(b"tenant"))
    if owner is not None:
        return owner
    raw = result_raw if result_raw is not None else job_raw
    try:
        kwargs = (deserialize(raw).get("k") or {}) if raw is not None else {}
    except ValueError:
        kwargs = {}
    return str(kwargs.get("tenant") or keys.DEFAULT_TENANT)


async def read_snapshot(redis: Redis, job_id: str, *, tenant: str | None = None) -> JobSnapshot | None:
    return (await read_snapshots(redis, [job_id], tenant=tenant))[0]
