"""The dead letters: jobs that failed for good, kept to be read, run again or deleted.

A worker adds a job that fails for good to its tenant's ``jobsvc:dead:<tenant>`` (id -> failed_at ms)
and gives its result, meta and attempts the dead-letter retention (``jobs/engine/lua/release_claim.lua``);
this module is the one place in the API that reads and changes those sets. A dead letter whose records
expired is dropped from the set when met.

Running a job again, as a dead letter's replay or as ``POST /v1/jobs/{id}/retry``, makes a NEW job with
the same type, params, queue, priority, attempts and backoff, linked both ways (``replay_of`` on the new
job, ``replayed_as`` on the old). One script marks the old job before the new one is enqueued: it sets
``replayed_as`` and takes the job out of the dead letters, so two concurrent replays run it once.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arq import ArqRedis
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.codec import deserialize
from jobs.engine.queue_ops import (
    NewJob,
    decode_delete_dead_letters,
)
from jobs.engine.records import JobSnapshot, read_snapshots
from jobs.registry import AnyJobType
from jobs.status import JobStatus
from service.api.auth import OPERATOR
from service.api.errors import (
    DeadLetterNotFound,
    JobNotFound,
    JobNotRetryable,
    QuotaExceeded,
    UnknownJobType,
)
from service.api.schemas import JobSubmit
from service.api.submissions import prepare
from service.config import Settings
from service.stores.job_store import JobStore, decode_cursor, encode_cursor

logger = logging.getLogger("jobsvc.dead_letters")

#: dead letters read per round trip by listings and bulk operations
BATCH = 500
RETRYABLE_STATUSES = frozenset({JobStatus.failed, JobStatus.cancelled})


@dataclass(frozen=True)
class DeadLetterRecord:
    """One dead letter: the job, when it failed for good, its failed attempts and the final traceback."""

    job: JobSnapshot
    failed_at: int
    #: ``{"attempt", "started_at"?, "finished_at"?, "error": {"type", "message"}}`` each, times in ms
    attempts: list[dict[str, Any]]
    traceback: str


def as_seen_by(record: DeadLetterRecord, scopes: Collection[str]) -> DeadLetterRecord:
    """The dead letter as a caller with ``scopes`` may read it: every failure's type and message, and the
    final traceback (it shows the worker's files and code) only for operators, who run the workers;
    empty for the others, tenant admins included. The worker's log has it too."""
    return record if OPERATOR in scopes else dataclasses.replace(record, traceback="")


class DeadLetterStore:
    """List, read, replay and delete dead letters, one at a time or in bulk; run failed jobs again."""

    def __init__(self, redis: ArqRedis, jobs: JobStore) -> None:
        self.redis = redis
        self.jobs = jobs
        self._delete_dead_letters = redis.register_script(scripts.DELETE_DEAD_LETTERS)

    async def list(
        self,
        tenant: str,
        *,
        type: str | None = None,
        queue: str | None = None,
        limit: int,
        cursor: str | None = None,
        scan_budget: int = 5_000,
    ) -> tuple[builtins.list[DeadLetterRecord], str | None]:
        """Newest first. Filters are applied while scanning, at most ``scan_budget`` entries per page; a page
        may then hold fewer than ``limit`` dead letters and still have a next cursor."""
        position = decode_cursor(cursor) if cursor else None
        found: builtins.list[tuple[JobSnapshot, int]] = []
        scanned = 0
        batch = max(limit, 100)
        while len(found) < limit and scanned < scan_budget:
            entries = await self.jobs.index_page(keys.dead_letters(tenant), position, batch)
            if not entries:
                return await self._details(found), None
            snapshots = await self._snapshots([job_id for job_id, _ in entries], tenant)
            for (job_id, failed_at), snapshot in zip(entries, snapshots, strict=True):
                scanned += 1
                position = (failed_at, job_id)
                if snapshot is not None and _selected(snapshot, type, queue):
                    found.append((snapshot, failed_at))
                    if len(found) == limit:
                        break
            else:
                if len(entries) < batch:
                    return await self._details(found), None
        return await self._details(found), encode_cursor(position) if position else None

    async def get(self, job_id: str, tenant: str) -> DeadLetterRecord:
        failed_at = await self.redis.zscore(keys.dead_letters(tenant), job_id)
        snapshot = (await self._snapshots([job_id], tenant))[0] if failed_at is not None else None
        if failed_at is None or snapshot is None:
            raise DeadLetterNotFound(f"No dead letter with id {job_id}.")
        return (await self._details([(snapshot, int(failed_at))]))[0]

    async def replay(
        self, job_id: str, tenant: str, job_types: Mapping[str, AnyJobType], settings: Settings
    ) -> JobSnapshot:
        """Run the dead letter again as a new linked job; it leaves the dead letters. Returns the new job."""
        if await self.redis.zscore(keys.dead_letters(tenant), job_id) is None:
            raise DeadLetterNotFound(f"No dead letter with id {job_id}.")
        snapshot = (await self._snapshots([job_id], tenant))[0]
        if snapshot is None:
            raise DeadLetterNotFound(f"No dead letter with id {job_id}.")
        try:
            return await self.run_again(snapshot, job_types, settings)
        except JobNotFound:
            raise DeadLetterNotFound(f"No dead letter with id {job_id}.") from None

    async def retry(
        self, job_id: str, tenant: str, job_types: Mapping[str, AnyJobType], settings: Settings
    ) -> JobSnapshot:
        """Run a failed or cancelled job again as a new linked job (``POST /v1/jobs/{id}/retry``)."""
        snapshot = await self.jobs.get(job_id, tenant)
        if snapshot.status not in RETRYABLE_STATUSES:
            raise JobNotRetryable(
                f"Job {job_id} is {snapshot.status.value}; only failed or cancelled jobs run again."
            )
        return await self.run_again(snapshot, job_types, settings)

    async def run_again(
        self, snapshot: JobSnapshot, job_types: Mapping[str, AnyJobType], settings: Settings
    ) -> JobSnapshot:
        """Enqueue ``snapshot``'s job again as a new job linked to it; the old one leaves the dead letters.

        Raises UnknownJobType when its type is gone, JobNotRetryable when its params no longer fit the type
        or it already ran again, JobNotFound when its records expired meanwhile."""
        old_id, tenant = snapshot.id, snapshot.tenant
        if snapshot.replayed_as is not None:
            raise JobNotRetryable(f"Job {old_id} already ran again as {snapshot.replayed_as}.")
        new_job = dataclasses.replace(
            _resubmission(snapshot, job_types, settings), links={"replay_of": old_id}, tenant=tenant
        )
        new_id = uuid.uuid4().hex
        # one script: the new job written, the old one marked as run again by it and out of the dead
        # letters, or nothing at all (submit.lua)
        created, _ = await self.jobs.submit(
            new_job, job_id=new_id, quotas=settings.default_quotas, runs_again=old_id
        )
        return created

    async def delete(self, job_id: str, tenant: str) -> None:
        """Remove the dead letter and its records (result, meta, attempts)."""
        if not await self._delete_records([job_id], tenant):
            raise DeadLetterNotFound(f"No dead letter with id {job_id}.")

    async def replay_where(
        self,
        tenant: str,
        job_types: Mapping[str, AnyJobType],
        settings: Settings,
        *,
        type: str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> builtins.list[tuple[str, JobSnapshot]]:
        """Replay up to ``limit`` dead letters, newest first; returns (dead letter id, new job) pairs.
        Those that cannot run again (their type is gone, their params no longer fit) stay and are skipped."""
        replayed: builtins.list[tuple[str, JobSnapshot]] = []
        position: tuple[int, str] | None = None
        while len(replayed) < limit:
            entries = await self.jobs.index_page(keys.dead_letters(tenant), position, BATCH)
            if not entries:
                break
            position = entries[-1][1], entries[-1][0]
            snapshots = await self._snapshots([job_id for job_id, _ in entries], tenant)
            for snapshot in snapshots:
                if snapshot is None or not _selected(snapshot, type, queue):
                    continue
                try:
                    replayed.append((snapshot.id, await self.run_again(snapshot, job_types, settings)))
                except QuotaExceeded:
                    if not replayed:
                        raise
                    logger.info("bulk replay stopped after %d: the tenant's quota is reached", len(replayed))
                    return replayed
                except (UnknownJobType, JobNotRetryable, JobNotFound) as exc:
                    logger.info("dead letter %s not replayed: %s", snapshot.id, exc.detail)
                    continue
                if len(replayed) == limit:
                    break
            if len(entries) < BATCH:
                break
        return replayed

    async def purge_where(self, tenant: str, *, type: str | None = None, queue: str | None = None) -> int:
        """Delete every dead letter of ``type`` and/or ``queue`` (all when neither is given), a batch at a
        time; returns how many."""
        purged = 0
        position: tuple[int, str] | None = None
        while True:
            entries = await self.jobs.index_page(keys.dead_letters(tenant), position, BATCH)
            if not entries:
                return purged
            position = entries[-1][1], entries[-1][0]
            snapshots = await self._snapshots([job_id for job_id, _ in entries], tenant)
            chosen = [s.id for s in snapshots if s is not None and _selected(s, type, queue)]
            if chosen:
                purged += await self._delete_records(chosen, tenant)
            if len(entries) < BATCH:
                return purged

    # -- reading -------------------------------------------------------------------------------------

    async def _snapshots(self, job_ids: Sequence[str], tenant: str) -> builtins.list[JobSnapshot | None]:
        """The jobs behind dead-letter ids; ids whose records expired leave the dead letters."""
        snapshots = await read_snapshots(self.redis, job_ids)
        expired = [job_id for job_id, snapshot in zip(job_ids, snapshots, strict=True) if snapshot is None]
        if expired:
            await self.redis.zrem(keys.dead_letters(tenant), *expired)
        return snapshots

    async def _details(self, found: Sequence[tuple[JobSnapshot, int]]) -> builtins.list[DeadLetterRecord]:
        """Add each job's attempts and final traceback, in one round trip."""
        if not found:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for snapshot, _ in found:
                pipe.lrange(keys.job_attempts(snapshot.id), 0, -1)
                pipe.get(keys.arq_result(snapshot.id))
            replies = await pipe.execute()
        return [
            DeadLetterRecord(
                job=snapshot,
                failed_at=failed_at,
                attempts=[json.loads(raw) for raw in replies[2 * i]],
                traceback=_traceback(replies[2 * i + 1]),
            )
            for i, (snapshot, failed_at) in enumerate(found)
        ]

    # -- writing -------------------------------------------------------------------------------------

    async def _delete_records(self, job_ids: Sequence[str], tenant: str) -> int:
        """Remove ``job_ids`` from the dead letters with their records; returns how many were still there."""
        record_keys = [
            key
            for job_id in job_ids
            for key in (keys.arq_result(job_id), keys.job_meta(job_id), keys.job_attempts(job_id))
        ]
        return decode_delete_dead_letters(
            await self._delete_dead_letters(
                keys=[keys.dead_letters(tenant), *record_keys], args=list(job_ids)
            )
        )


def _resubmission(snapshot: JobSnapshot, job_types: Mapping[str, AnyJobType], settings: Settings) -> NewJob:
    """The job as a new submission, checked against its type as it is now (404 when the type is gone)."""
    body: dict[str, Any] = {
        "type": snapshot.type,
        "params": snapshot.params,
        "queue": snapshot.queue,
        "priority": snapshot.priority,
        "max_attempts": snapshot.max_attempts,
        "backoff": snapshot.backoff,
    }
    try:
        return prepare(JobSubmit.model_validate(body), job_types, settings, tenant=snapshot.tenant)
    except (ValidationError, RequestValidationError):
        raise JobNotRetryable(
            f"Job {snapshot.id} cannot run again: its params no longer fit job type {snapshot.type!r}."
        ) from None


def _selected(snapshot: JobSnapshot, job_type: str | None, queue: str | None) -> bool:
    return (job_type is None or snapshot.type == job_type) and (queue is None or snapshot.queue == queue)


def _traceback(result_raw: bytes | None) -> str:
    if result_raw is None:
        return ""
    try:
        error = deserialize(result_raw).get("r")
    except ValueError:
        return ""
    return str(error.get("traceback") or "") if isinstance(error, dict) else ""
