"""Jobs: what you submit, what you read back, and the events a job sends while it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator


def rfc3339(moment: datetime) -> str:
    """``2025-01-31T12:00:00.000Z``: UTC, milliseconds, as the API writes times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]


class JobStatus(StrEnum):
    deferred = "deferred"
    queued = "queued"
    in_progress = "in_progress"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


#: the statuses of a job that has not ended
UnfinishedStatus = Literal[JobStatus.queued, JobStatus.deferred, JobStatus.in_progress]

#: a job in one of these has ended and never changes status again
TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class JobError(BaseModel):
    type: str
    message: str


class JobProgress(BaseModel):
    current: int
    total: int | None = None
    message: str | None = None


class JobLinks(BaseModel):
    self: str


class Job(BaseModel):
    """A job as the service reports it::

    job.status in TERMINAL_STATUSES    # or job.is_finished
    job.result                         # the job type's result, once succeeded
    """

    id: str
    type: str
    queue: str
    priority: int
    status: JobStatus
    params: dict[str, Any]
    result: Any = None
    error: JobError | None = None
    attempts: int
    max_attempts: int | None
    progress: JobProgress | None = None
    cancel_requested: bool = False
    created_at: Timestamp
    scheduled_for: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    links: JobLinks
    replay_of: str | None = None
    replayed_as: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    waiting_for: int = 0
    schedule: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobList(BaseModel):
    """One page of jobs, newest first; ``next_cursor`` asks for the next (None: this was the last)."""

    jobs: list[Job]
    next_cursor: str | None = None


class CancelMatching(BaseModel):
    """Which of your unfinished jobs a bulk cancel touches; a filter left out matches all."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    queue: str | None = None
    status: UnfinishedStatus | None = None
    created_before: Timestamp | None = None


class CancelledJobs(BaseModel):
    #: jobs that had not started: they never will
    cancelled: int
    #: running jobs asked to stop: each ends cancelled, unless it finishes first
    aborting: int


class JobBatch(BaseModel):
    jobs: list[Job]


class Backoff(BaseModel):
    """Waits between attempts: attempt n waits a random time up to ``min(cap_s, base_s * 2**(n-1))``."""

    model_config = ConfigDict(extra="forbid")

    base_s: float
    cap_s: float


class JobSubmit(BaseModel):
    """A job to submit; :meth:`~jobsvc_client.JobsClient.submit` builds one from its arguments, and
    :meth:`~jobsvc_client.JobsClient.submit_batch` takes a list::

        JobSubmit(type="email.send", params={"to": ["a@example.com"], ...}, priority=9)
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    priority: int = Field(5, description="0-9, 9 first.")
    delay_seconds: float | None = None
    run_at: Timestamp | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    depends_on: list[str] = Field(default_factory=list)

    @field_validator("run_at")
    @classmethod
    def _aware(cls, run_at: datetime | None) -> datetime | None:
        if run_at is not None and run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")
        return run_at


class JobBatchSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmit]


class JobEvent(BaseModel):
    """One Server-Sent Event of :meth:`~jobsvc_client.JobsClient.events` or ``job_events``.

    ``event`` is ``status`` (a job's status changed), ``progress`` (it reported progress) or ``trimmed``
    (the stream no longer holds events after the ``last_event_id`` you resumed from). Pass ``id`` as
    ``last_event_id`` to resume after this event.
    """

    id: str | None = None
    event: str = "message"
    data: dict[str, Any]

    @property
    def job_id(self) -> str | None:
        job_id = self.data.get("id")
        return job_id if isinstance(job_id, str) else None

    def job(self) -> Job:
        """The job a ``status`` event of ``job_events`` carries."""
        return Job.model_validate(self.data)
