"""Dead letters: jobs that failed for good, with how each attempt failed; replayed or deleted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jobsvc_client.models.jobs import Job, JobError, Timestamp


class AttemptView(BaseModel):
    """One failed attempt; an attempt lost with its worker has no times."""

    attempt: int
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    error: JobError


class DeadLetter(BaseModel):
    id: str
    job: Job
    failed_at: Timestamp
    attempts: list[AttemptView]
    traceback: str
    replayed_as: str | None = None


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter]
    next_cursor: str | None = None


class DeadLetterSelection(BaseModel):
    """Which dead letters a bulk purge touches: all of them, or those of one type and/or queue."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    queue: str | None = None


class DeadLetterReplay(DeadLetterSelection):
    limit: int = Field(100, description="Replay at most this many, newest first.")


class ReplayedDeadLetter(BaseModel):
    dead_letter_id: str
    job: Job


class DeadLetterReplayResult(BaseModel):
    replayed: list[ReplayedDeadLetter]
    count: int


class DeadLetterPurgeResult(BaseModel):
    purged: int
