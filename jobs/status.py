"""The statuses a job moves through, as the API and the job types name them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    deferred = "deferred"
    queued = "queued"
    in_progress = "in_progress"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
