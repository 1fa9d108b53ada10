"""The one place in the API that reads and writes jobs in Redis, in ARQ's formats.

Submitting writes ARQ's job record and queue entry exactly as ``ArqRedis.enqueue_job`` would, plus
jobsvc's own record and listing indexes, in one atomic server-side script: one round trip, and an
Idempotency-Key can never point at a job that was not enqueued.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from arq import ArqRedis
from fastapi.exceptions import RequestValidationError

from jobs.engine import keys, tracing
from jobs.engine.queue_ops import (
    NO_REPLICA_ACKS,
    EnqueueCall,
    JobQueues,
    NewJob,
    QuotaRefused,
    Quotas,
    ReplicaAcks,
    enqueue_call,
    settle_dependents,
)
from jobs.engine.records import JobSnapshot, read_snapshot, read_snapshots
from jobs.queues import QUEUE_NAMES
from jobs.status import TERMINAL_STATUSES, JobStatus
from service.api.errors import (
    DependencyFailed,
    IdempotencyConflict,
    InvalidRequest,
    JobAlreadyFinished,
    JobNotFound,
    JobNotRetryable,
    LargerThanBudget,
    NotAllowedForTenant,
    QuotaExceeded,
    StorageBudgetExceeded,
)
from service.stores.event_hub import EventHub


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ListFilter:
    status: JobStatus | None = None
    type: str | None = None
    queue: str | None = None


@dataclass(frozen=True)
class CancelTally:
    """What a cancel by filter did: jobs cancelled before they started, running jobs asked to abort."""

    cancelled: int = 0
    aborting: int = 0


#: jobs a cancel by filter reads and cancels per step
CANCEL_STEP = 500


class JobStore:
    """Submit, read, wait for, cancel and list jobs."""

    def __init__(
        self,
        redis: ArqRedis,
        *,
        queued_job_expiry_s: int,
        idempotency_ttl_s: int,
        retention_s: Callable[[str], int],
        events: EventHub,
        acks: ReplicaAcks = NO_REPLICA_ACKS,
    ) -> None:
        self.redis = redis
        self.events = events
        self._retention_s = retention_s
        self._queued_job_expiry_ms = queued_job_expiry_s * 1000
        self._idempotency_ttl_ms = idempotency_ttl_s * 1000
        self.queues = JobQueues(redis, acks=acks)

    async def submit(
        self,
        job: NewJob,
        *,
        job_id: str,
        quotas: Quotas | None = None,
        idempotency_key: str | None = None,
        request_hash: str = "",
        runs_again: str = "",
    ) -> tuple[JobSnapshot, bool]:
        """Enqueue ``job`` (see ``_submit``), in a producer span whose context the job carries when
        tracing is on."""
        with tracing.sending(job.queue, job_id=job_id, job_type=job.type, tenant=job.tenant) as fields:
            return await self._submit(
                tracing.carry(job, fields),
                job_id=job_id,
                quotas=quotas,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                runs_again=runs_again,
            )

    async def _submit(
        self,
        job: NewJob,
        *,
        job_id: str,
        quotas: Quotas | None,
        idempotency_key: str | None,
        request_hash: str,
        runs_again: str = "",
    ) -> tuple[JobSnapshot, bool]:
        """Enqueue ``job`` in one round trip, within its tenant's ``quotas`` when given; returns its
        snapshot and whether it was created (False: an idempotent replay of an earlier submit). With
        ``runs_again`` (an ended job's id), that job is marked as run again by this one, and leaves the
        dead letters, in the same step; JobNotFound when it expired, JobNotRetryable when it ran again
        already."""
        call = enqueue_call(job, job_id, queued_expiry_ms=self._queued_job_expiry_ms)
        outcome, detail = await self.queues.submit(
            call,
            quotas=quotas,
            idempotency_key=idempotency_key,
            idempotency_value=f"{job_id} {request_hash}",
            idempotency_ttl_ms=self._idempotency_ttl_ms,
            runs_again=runs_again,
        )
        if outcome == "gone":
            raise JobNotFound(f"No job with id {runs_again}.")
        if outcome == "replayed":
            raise JobNotRetryable(f"Job {runs_again} already ran again as {detail}.")
        if outcome == "duplicate":
            prior_id, _, prior_hash = detail.partition(" ")
            if prior_hash != request_hash:
                raise IdempotencyConflict("This Idempotency-Key was used with a different request body.")
            snapshot = await read_snapshot(self.redis, prior_id)
            if snapshot is None or snapshot.tenant != job.tenant:
                raise IdempotencyConflict("This Idempotency-Key was used by a job that no longer exists.")
            return snapshot, False
        _raise_unless_created(outcome, detail, job, job_id, ("body",))
        return _snapshot_of_new(job, job_id, call, waiting_for=int(detail)), True

    async def submit_many(
        self, jobs: Sequence[tuple[NewJob, str]], *, tenant: str, quotas: Quotas | None = None
    ) -> list[JobSnapshot]:
        """Enqueue a batch (see ``_submit_many``) in one producer span, which its jobs link to when
        tracing is on."""
        with tracing.sending_batch([job.queue for job, _ in jobs], tenant=tenant) as fields:
            traced = [(tracing.carry(job, fields), job_id) for job, job_id in jobs]
            return await self._submit_many(traced, tenant=tenant, quotas=quotas)

    async def _submit_many(
        self, jobs: Sequence[tuple[NewJob, str]], *, tenant: str, quotas: Quotas | None
    ) -> list[JobSnapshot]:
        """Enqueue ``(job, id)`` pairs of one tenant in one pipelined round trip, after reserving their
        quotas in one more; each job is written atomically. Jobs of the batch may depend on jobs
        submitted before it, not on each other."""
        dependent = [(index, job, job_id) for index, (job, job_id) in enumerate(jobs) if job.depends_on]
        if dependent:  # refuse the whole batch before writing any of it
            verdicts = await self.queues.check_parents(tenant, [job.depends_on for _, job, _ in dependent])
            for (index, job, job_id), verdict in zip(dependent, verdicts, strict=True):
                if verdict.outcome != "ok":
                    _raise_unless_created(
                        verdict.outcome, verdict.detail, job, job_id, ("body", "jobs", index)
                    )
        calls = [
            enqueue_call(job, job_id, queued_expiry_ms=self._queued_job_expiry_ms) for job, job_id in jobs
        ]
        try:
            replies = await self.queues.submit_many(calls, quotas=quotas)
        except QuotaRefused as refused:
            _raise_over_quota(*refused.refusal)
        for index, ((job, job_id), (outcome, detail)) in enumerate(zip(jobs, replies, strict=True)):
            _raise_unless_created(outcome, detail, job, job_id, ("body", "jobs", index))
        return [
            _snapshot_of_new(job, job_id, call, waiting_for=int(detail))
            for (job, job_id), call, (_, detail) in zip(jobs, calls, replies, strict=True)
        ]

    async def get(self, job_id: str, tenant: str) -> JobSnapshot:
        """The job, if it exists and belongs to ``tenant``; another tenant's job is as unknown as a
        missing one (the same answer, after the same work)."""
        snapshot = await read_snapshot(self.redis, job_id, tenant=tenant)
        if snapshot is None:
            raise JobNotFound(f"No job with id {job_id}.")
        return snapshot

    async def wait(self, job_id: str, tenant: str, timeout_s: float) -> JobSnapshot:
        """The job once it has finished, or as it is when ``timeout_s`` has passed. Woken by the job's end
        event (one reader per process for all waiters), never by polling."""
        async with self.events.subscribe(tenant, job_id=job_id) as events:
            snapshot = await self.get(job_id, tenant)  # after subscribing: an end now cannot be missed
            if snapshot.is_finished:
                return snapshot
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    async for event in events:
                        if event.data.get("status") in TERMINAL_STATUSES:
                            break
        return await self.get(job_id, tenant)

    async def cancel(self, job_id: str, tenant: str, *, wait_s: float) -> JobSnapshot:
        """Cancel: a waiting job never starts; a running one is aborted (waiting up to ``wait_s`` for it)."""
        snapshot = await self.get(job_id, tenant)
        if snapshot.is_finished:
            raise JobAlreadyFinished(f"Job {job_id} already {snapshot.status.value}.")
        if snapshot.status in (JobStatus.queued, JobStatus.deferred):
            outcome = await self._cancel_before_start(snapshot)
            if outcome == "cancelled":
                return await self.get(job_id, tenant)
        await self._request_abort(job_id)
        snapshot = await self.wait(job_id, tenant, wait_s)
        if snapshot.status in (JobStatus.succeeded, JobStatus.failed):
            raise JobAlreadyFinished(f"Job {job_id} {snapshot.status.value} before it could be cancelled.")
        return snapshot

    async def cancel_matching(
        self, tenant: str, filters: ListFilter, *, created_before_ms: int | None = None
    ) -> CancelTally:
        """Cancel every unfinished job of ``tenant`` that ``filters`` match (and created before
        ``created_before_ms``): the waiting ones never start, the running ones are asked to abort. In
        steps of ``CANCEL_STEP`` jobs, each a few pipelined round trips, so Redis never blocks long."""
        index = _index_for(tenant, filters)
        position = None if created_before_ms is None else (created_before_ms, "")
        tally = CancelTally()
        while entries := await self.index_page(index, position, CANCEL_STEP):
            position = entries[-1][1], entries[-1][0]
            snapshots = await read_snapshots(self.redis, [job_id for job_id, _ in entries])
            matching = [s for s in snapshots if s is not None and not s.is_finished and _matches(s, filters)]
            waiting = [s for s in matching if s.status in (JobStatus.queued, JobStatus.deferred)]
            outcomes = await self.queues.cancel_waiting_many(
                [(s.id, self._retention_s(s.type) * 1000) for s in waiting],
                message="cancelled before it started",
            )
            cancelled = [s.id for s, outcome in zip(waiting, outcomes, strict=True) if outcome == "cancelled"]
            if cancelled:
                await settle_dependents(self.queues, cancelled, self._retention_s)
            started = [s.id for s, outcome in zip(waiting, outcomes, strict=True) if outcome == "running"]
            aborting = [s.id for s in matching if s.status is JobStatus.in_progress] + started
            await self._request_aborts(aborting)
            tally = CancelTally(tally.cancelled + len(cancelled), tally.aborting + len(aborting))
        return tally

    async def _cancel_before_start(self, snapshot: JobSnapshot) -> str:
        outcome = await self.queues.cancel_waiting(
            snapshot.id,
            message="cancelled before it started",
            retention_ms=self._retention_s(snapshot.type) * 1000,
        )
        if outcome == "cancelled":
            await settle_dependents(self.queues, [snapshot.id], self._retention_s)
        return outcome

    async def _request_abort(self, job_id: str) -> None:
        await self._request_aborts([job_id])

    async def _request_aborts(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        at = now_ms()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.ABORT_SET, dict.fromkeys(job_ids, at))
            for job_id in job_ids:
                pipe.hset(keys.job_meta(job_id), "cancel_requested", str(at))
            await pipe.execute()

    async def list_jobs(
        self, tenant: str, filters: ListFilter, *, limit: int, cursor: str | None, scan_budget: int = 5_000
    ) -> tuple[list[JobSnapshot], str | None]:
        """Newest first. Filters that no index answers are applied while scanning, at most ``scan_budget``
        entries per page; a page may then hold fewer than ``limit`` jobs and still have a next cursor."""
        index = _index_for(tenant, filters)
        position = decode_cursor(cursor) if cursor else None
        found: list[JobSnapshot] = []
        scanned = 0
        batch = max(limit, 100)
        while len(found) < limit and scanned < scan_budget:
            if filters.status is JobStatus.in_progress:
                entries = await self.running_page(tenant, position, batch)
            else:
                entries = await self.index_page(index, position, batch)
            if not entries:
                return found, None
            last_batch = len(entries) < batch
            snapshots = await read_snapshots(self.redis, [job_id for job_id, _ in entries])
            for (job_id, score), snapshot in zip(entries, snapshots, strict=True):
                scanned += 1
                position = (score, job_id)
                if snapshot is not None and _matches(snapshot, filters):
                    found.append(snapshot)
                    if len(found) == limit:
                        break
            else:
                if last_batch:
                    return found, None
        return found, encode_cursor(position) if position else None

    async def index_page(
        self, index: str, after: tuple[int, str] | None, count: int
    ) -> list[tuple[str, int]]:
        """Up to ``count`` entries of the sorted set ``index`` strictly after ``after``, newest first."""
        top: float | str = "+inf" if after is None else after[0]
        entries: list[tuple[str, int]] = []
        offset = 0
        while len(entries) < count:
            rows: Sequence[tuple[bytes, float]] = await self.redis.zrevrangebyscore(
                index, top, "-inf", start=offset, num=count, withscores=True
            )
            if not rows:
                break
            for member, score in rows:
                job_id, at = member.decode(), int(score)
                if after is not None and at == after[0] and job_id >= after[1]:
                    continue
                entries.append((job_id, at))
            offset += len(rows)
        return entries[:count]

    async def running_page(
        self, tenant: str, after: tuple[int, str] | None, count: int
    ) -> list[tuple[str, int]]:
        """As ``index_page`` for the tenant's running jobs, read from the queues' running sets (as many
        entries as jobs run in the whole cluster, never the tenant's whole index)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in QUEUE_NAMES:
                pipe.zrange(keys.running(queue), 0, -1)
            running = [member.decode() for members in await pipe.execute() for member in members]
        if not running:
            return []
        created = await self.redis.zmscore(keys.index_all(tenant), running)
        theirs = sorted(
            (
                (job_id, int(score))
                for job_id, score in zip(running, created, strict=True)
                if score is not None
            ),
            key=lambda entry: (entry[1], entry[0]),
            reverse=True,
        )
        if after is not None:
            theirs = [(job_id, at) for job_id, at in theirs if (at, job_id) < after]
        return theirs[:count]

    async def live_workers(self, stale_after_s: float) -> list[dict[str, str]]:
        """Workers whose last heartbeat is fresher than ``stale_after_s``; forgets the others."""
        cutoff = now_ms() - int(stale_after_s * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.WORKERS, "-inf", f"({cutoff}")
            pipe.zrange(keys.WORKERS, 0, -1)
            _, worker_ids = await pipe.execute()
        if not worker_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.hgetall(keys.worker_record(worker_id.decode()))
            records = await pipe.execute()
        return [{k.decode(): v.decode() for k, v in record.items()} for record in records if record]


def _raise_unless_created(
    outcome: str, detail: str, job: NewJob, job_id: str, loc: tuple[str | int, ...]
) -> None:
    """Nothing was written unless the outcome is ``created``: say why in the client's terms."""
    if outcome in ("created", "exists"):
        # ``exists``: a fresh random id can only exist because this very submit was written once already
        # and retried after its answer was lost on a dead connection
        return
    if outcome == "unknown_parent":
        position = job.depends_on.index(detail) if detail in job.depends_on else 0
        raise RequestValidationError(
            [
                {
                    "loc": (*loc, "depends_on", position),
                    "msg": f"no job {detail} is waiting, running or finished",
                    "type": "unknown_job",
                }
            ]
        )
    if outcome.startswith("over_") or outcome.endswith("_not_allowed"):
        _raise_over_quota(outcome, detail)
    if outcome.startswith("parent_"):
        raise DependencyFailed(
            f"Job {detail}, which this one depends on, {outcome.removeprefix('parent_')}: it could never run."
        )
    raise RuntimeError(f"job id {job_id} already exists")  # a random 128-bit id collided: practically never


def _raise_over_quota(outcome: str, detail: str) -> NoReturn:
    if outcome == "queue_not_allowed":
        raise NotAllowedForTenant(f"This tenant may not submit to queue {detail}.")
    if outcome == "priority_not_allowed":
        raise NotAllowedForTenant(f"This tenant may submit at priorities up to {detail} only.")
    if outcome == "over_budget":
        raise LargerThanBudget(
            f"These jobs' records are larger than all this tenant may keep in Redis ({detail} bytes)."
        )
    if outcome in ("over_kept_jobs", "over_kept_bytes"):
        budget = f"{detail} jobs" if outcome == "over_kept_jobs" else f"{detail} bytes of jobs and results"
        raise StorageBudgetExceeded(
            f"This tenant keeps as much in Redis as its storage budget allows ({budget}). Ended jobs leave "
            "it as their results expire; deleting the tenant's jobs frees it at once.",
            headers={"Retry-After": "60"},
        )
    if outcome == "over_rate":
        retry_after = max(1, math.ceil(int(detail) / 1000))
        raise QuotaExceeded(
            "This tenant submits more jobs per second than its quota allows.",
            headers={"Retry-After": str(retry_after)},
        )
    raise QuotaExceeded(
        "This tenant has as many open (waiting or running) jobs as its quota allows.",
        headers={"Retry-After": "5"},
    )


def _snapshot_of_new(job: NewJob, job_id: str, call: EnqueueCall, *, waiting_for: int) -> JobSnapshot:
    """The job as it reads right after it was written."""
    written = call.written
    deferred = written.due_ms > written.created_ms
    return JobSnapshot(
        id=job_id,
        type=job.type,
        queue=job.queue,
        priority=job.priority,
        status=JobStatus.deferred if deferred else JobStatus.queued,
        params=job.params,
        result=None,
        error=None,
        attempts=0,
        max_attempts=job.max_attempts,
        progress=None,
        created_at=written.created_ms,
        scheduled_for=written.due_ms if job.run_at_ms is not None else None,
        started_at=None,
        finished_at=None,
        cancel_requested=False,
        replay_of=job.links.get("replay_of"),
        backoff=job.backoff,
        depends_on=list(job.depends_on),
        waiting_for=waiting_for,
        tenant=job.tenant,
    )


def _index_for(tenant: str, filters: ListFilter) -> str:
    """The narrowest listing index that holds every job ``filters`` can match."""
    if filters.status in TERMINAL_STATUSES:
        return keys.index_by_status(tenant, filters.status)
    if filters.type is not None:
        return keys.index_by_type(tenant, filters.type)
    if filters.queue is not None:
        return keys.index_by_queue(tenant, filters.queue)
    return keys.index_all(tenant)


def _matches(snapshot: JobSnapshot, filters: ListFilter) -> bool:
    return (
        (filters.status is None or snapshot.status is filters.status)
        and (filters.type is None or snapshot.type == filters.type)
        and (filters.queue is None or snapshot.queue == filters.queue)
    )


#: A page's position: the score of its last entry, a dot, the id of that entry in hex (UTF-8). A regular
#: language, so the OpenAPI document states exactly which cursors are well-formed: any that matches
#: decodes to a position (a forged one merely starts the page elsewhere).
CURSOR_PATTERN = r"^[0-9]{1,19}\.(?:[0-9a-f]{2}){1,140}$"
_CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))


def encode_cursor(position: tuple[int, str]) -> str:
    score, job_id = position
    return f"{score}.{job_id.encode().hex()}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidRequest("The cursor is not one this service returned.")
    score, _, job_id = cursor.partition(".")
    return int(score), bytes.fromhex(job_id).decode(errors="replace")
