"""The catalogue of job types, queues, workers, schedules and health: what operators look at."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from jobsvc_client.models.jobs import JobStatus, Timestamp


class RetryPolicyView(BaseModel):
    backoff: str = "exponential, full jitter"
    base_s: float
    cap_s: float


class LimitView(BaseModel):
    rate: int | None = Field(description="At most this many starts per `per_s` seconds.")
    per_s: float
    concurrency: int | None = Field(description="At most this many running at once.")
    keyed: bool = Field(description="Whether the limit holds per partition of the params (e.g. per host).")


class JobTypeView(BaseModel):
    """A job type: where it runs, its limits, and the JSON Schemas of its params and result."""

    name: str
    description: str
    queue: str
    queues: list[str] = Field(description="The queues a submit may send it to (its own first).")
    timeout_s: float
    max_attempts: int
    retry: RetryPolicyView
    limit: LimitView | None = None
    params_schema: dict[str, Any]
    result_schema: dict[str, Any]


class JobTypeList(BaseModel):
    job_types: list[JobTypeView]


class QueueView(BaseModel):
    name: str
    description: str
    default_weight: int
    queued: int
    deferred: int
    in_progress: int
    succeeded_last_hour: int
    failed_last_hour: int
    cancelled_last_hour: int
    oldest_waiting_s: float | None
    paused_at: Timestamp | None = Field(
        None, description="When an operator paused the queue (its jobs wait); null while it runs."
    )


class QueueList(BaseModel):
    queues: list[QueueView]


class WorkerView(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    jobs_running: int
    jobs_done: int
    jobs_failed: int
    started_at: Timestamp
    last_heartbeat: Timestamp


class WorkerList(BaseModel):
    workers: list[WorkerView]


class ScheduleView(BaseModel):
    name: str
    job_type: str
    schedule: str = Field(description="Cron expression, UTC (weekday 0 is Monday).")
    description: str
    overlap: bool
    next_run: Timestamp
    last_run: Timestamp | None
    last_job_id: str | None
    last_status: JobStatus | None
    skipped_ticks: int


class ScheduleList(BaseModel):
    schedules: list[ScheduleView]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
