"""Wire models of the REST API. The Python client imports these too, so no FastAPI here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from jobs.definition import MAX_ATTEMPTS_LIMIT
from jobs.engine.keys import MAX_TENANT_WEIGHT, TENANT_NAME
from jobs.engine.webhook_secrets import MAX_GRACE_S
from jobs.queues import QUEUE_NAMES
from jobs.status import JobStatus


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]

JOB_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
QUEUE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
TENANT_PATTERN = TENANT_NAME.pattern
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_DELAY_S = 365 * 86_400
#: how far in the past ``run_at`` may lie (clock skew between client and server)
RUN_AT_SKEW_S = 5.0


class Backoff(BaseModel):
    """Exponential backoff with full jitter: attempt n waits a random time up to min(cap, base * 2**(n-1))."""

    model_config = ConfigDict(extra="forbid")

    base_s: float = Field(gt=0, le=3600)
    cap_s: float = Field(gt=0, le=86_400, description="Not below base_s.")

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> Backoff:
        if self.cap_s < self.base_s:
            raise ValueError("cap_s must not be below base_s")
        return self


MAX_DEPENDENCIES = 100


#: ``delay_seconds`` and ``run_at`` are not both given (a null counts as not given)
_ONE_SCHEDULE: JsonDict = {
    "not": {
        "required": ["delay_seconds", "run_at"],
        "properties": {"delay_seconds": {"type": "number"}, "run_at": {"type": "string"}},
    }
}


class JobSubmit(BaseModel):
    """A job to run: its type, its params, and when and how often to try."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SCHEDULE)

    type: str = Field(max_length=100, pattern=JOB_TYPE_PATTERN, examples=["email.send"])
    params: dict[str, Any] = Field(
        default_factory=dict, description="Checked against the type's params_schema."
    )
    queue: str | None = Field(None, pattern=QUEUE_PATTERN, description="Defaults to the type's queue.")
    priority: int = Field(5, ge=0, le=9, description="0-9, 9 first.")
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_DELAY_S,
        description="Run no earlier than this many seconds from now; not with run_at.",
    )
    run_at: AwareDatetime | None = Field(
        None,
        description=f"Run no earlier than this instant (RFC 3339, with a zone): at most {RUN_AT_SKEW_S:g} s "
        "in the past and 365 days ahead; not with delay_seconds.",
    )
    max_attempts: int | None = Field(None, ge=1, le=MAX_ATTEMPTS_LIMIT, description="Defaults to the type's.")
    backoff: Backoff | None = Field(None, description="Waits between attempts; defaults to the type's retry.")
    depends_on: list[Annotated[str, Field(pattern=JOB_ID_PATTERN, max_length=128)]] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="Ids of jobs of the same tenant that must succeed first (422 when one names no job); the "
        "job is cancelled if one fails for good or is cancelled. Their results are in the job's ctx.",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> JobSubmit:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        return self


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
    """A job as clients see it."""

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
    replay_of: str | None = Field(None, description="The failed or cancelled job this one runs again.")
    replayed_as: str | None = Field(None, description="The job that ran this one again.")
    depends_on: list[str] = Field(
        default_factory=list, description="Jobs that must succeed before it starts."
    )
    waiting_for: int = Field(0, description="How many of `depends_on` have not succeeded yet.")
    schedule: str | None = Field(None, description="The schedule that enqueued it.")


MAX_BATCH = 1_000


class JobBatchSubmit(BaseModel):
    """Up to 1,000 jobs, all validated before any is enqueued."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmit] = Field(min_length=1, max_length=MAX_BATCH)


class JobBatchItems(BaseModel):
    """The wire shape of a batch before its items are checked one by one, so that a 422 can name every
    bad item at once (the documented schema is JobBatchSubmit)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class JobBatch(BaseModel):
    jobs: list[Job]


class JobList(BaseModel):
    jobs: list[Job]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


class CancelMatching(BaseModel):
    """Which of the caller's unfinished jobs to cancel; every filter left out matches all."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, pattern=JOB_TYPE_PATTERN, max_length=100)
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)
    status: Literal[JobStatus.queued, JobStatus.deferred, JobStatus.in_progress] | None = Field(
        None, description="Only jobs in this status (finished jobs are never cancelled)."
    )
    created_before: AwareDatetime | None = Field(
        None, description="Only jobs submitted before this instant (with its UTC offset)."
    )


class CancelledJobs(BaseModel):
    cancelled: int = Field(description="Jobs that had not started: they never will.")
    aborting: int = Field(
        description="Running jobs asked to stop: each ends cancelled, unless it finishes first."
    )


class AttemptView(BaseModel):
    """One failed attempt; an attempt lost with its worker has no times."""

    attempt: int
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    error: JobError


class DeadLetter(BaseModel):
    """A job that failed for good, with how each attempt failed."""

    id: str
    job: Job
    failed_at: Timestamp
    attempts: list[AttemptView]
    traceback: str = Field(description="The final failure's traceback, as stored (capped); may be empty.")
    replayed_as: str | None = None


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


class DeadLetterSelection(BaseModel):
    """Which dead letters a bulk operation touches: all of them, or those of one type and/or queue."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, max_length=100, pattern=JOB_TYPE_PATTERN)
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)


class DeadLetterReplay(DeadLetterSelection):
    limit: int = Field(100, ge=1, le=1000, description="Replay at most this many, newest first.")


class ReplayedDeadLetter(BaseModel):
    dead_letter_id: str
    job: Job


class DeadLetterReplayResult(BaseModel):
    replayed: list[ReplayedDeadLetter]
    count: int


class DeadLetterPurgeResult(BaseModel):
    purged: int


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
    name: str
    description: str
    queue: str
    queues: list[str] = Field(description="The queues a submit may send it to (its own first).")
    timeout_s: float
    max_attempts: int
    retry: RetryPolicyView
    limit: LimitView | None = Field(None, description="Rate and concurrency limits across all workers.")
    params_schema: dict[str, Any]
    result_schema: dict[str, Any]


class JobTypeList(BaseModel):
    job_types: list[JobTypeView]


class FieldProblem(BaseModel):
    pointer: str = Field(description="JSON pointer into the request, e.g. /params/to.")
    location: str
    message: str
    code: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


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

    @classmethod
    def from_record(cls, record: dict[str, str]) -> WorkerView:
        def moment(ms: str) -> datetime:
            return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)

        return cls(
            id=record["id"],
            host=record["host"],
            pid=int(record["pid"]),
            queues=[q for q in record.get("queues", "").split(",") if q],
            jobs_running=int(record.get("running", 0)),
            jobs_done=int(record.get("done", 0)),
            jobs_failed=int(record.get("failed", 0)),
            started_at=moment(record["started_at"]),
            last_heartbeat=moment(record["heartbeat_at"]),
        )


class WorkerList(BaseModel):
    workers: list[WorkerView]


class QueueView(BaseModel):
    name: str
    description: str
    default_weight: int = Field(
        description="Share of a worker's free slots unless JOBSVC_QUEUES says otherwise."
    )
    queued: int = Field(description="Due and waiting (for a worker, a limit slot or the jobs it depends on).")
    deferred: int = Field(description="Waiting for their time: delays, retries' backoff, rate limits.")
    in_progress: int
    succeeded_last_hour: int
    failed_last_hour: int
    cancelled_last_hour: int
    oldest_waiting_s: float | None = Field(
        description="How long the oldest due job has waited; null if none."
    )
    paused_at: Timestamp | None = Field(
        None,
        description="When an operator paused the queue (POST /v1/queues/{name}:pause): its jobs are accepted "
        "and wait, no worker starts one, running ones finish. Null while it runs.",
    )


class QueueList(BaseModel):
    queues: list[QueueView]


class ScheduleView(BaseModel):
    name: str
    job_type: str
    schedule: str = Field(description="Cron expression, UTC (weekday 0 is Monday).")
    description: str
    overlap: bool = Field(description="Whether a run may start while the previous one has not ended.")
    next_run: Timestamp
    last_run: Timestamp | None = Field(description="The tick of the last run enqueued.")
    last_job_id: str | None
    last_status: JobStatus | None
    skipped_ticks: int = Field(description="Ticks skipped because the previous run had not ended.")


class ScheduleList(BaseModel):
    schedules: list[ScheduleView]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(pattern=TENANT_PATTERN, description="Whose jobs the key submits and sees.")
    scopes: list[Literal["submit", "read", "cancel", "admin", "operator"]] = Field(
        min_length=1,
        max_length=5,
        description="`admin` manages the key's own tenant; `operator` (minted by the bootstrap admin key "
        "only) sees and manages every tenant and the cluster.",
    )
    name: str = Field("", max_length=100, description="A note for people: who or what uses the key.")


class ApiKeyView(BaseModel):
    id: str
    tenant: str
    scopes: list[str]
    name: str
    created_at: Timestamp

    @field_validator("created_at", mode="before")
    @classmethod
    def _from_ms(cls, value: Any) -> Any:
        return datetime.fromtimestamp(value / 1000, tz=UTC) if isinstance(value, int) else value


class NewApiKey(ApiKeyView):
    key: str = Field(description="The key itself, shown this once: only its hash is kept.")
    webhook_secret: str | None = Field(
        None,
        description="The tenant's webhook signing secret (whsec_…), in the answer that gave the tenant its "
        "first key only: its webhook.deliver jobs are signed with it, the Standard Webhooks way. Rotate it "
        "(POST /v1/admin/tenants/{tenant}/webhook-secrets) to see a new one.",
    )


class ApiKeyList(BaseModel):
    keys: list[ApiKeyView]


#: one of the queues this service has (jobs.queues)
QueueName = Literal[QUEUE_NAMES]  # type: ignore[valid-type]


class TenantQuotas(BaseModel):
    tenant: str
    open_jobs: int = Field(description="Its jobs that wait or run now.")
    kept_jobs: int = Field(
        description="Its jobs kept in Redis: open ones, and ended ones until their results expire."
    )
    kept_bytes: int = Field(description="Bytes of its job and result records kept in Redis.")
    max_open_jobs: int
    submits_per_s: int
    max_kept_jobs: int = Field(description="Its storage budget in jobs (429 beyond).")
    max_kept_bytes: int = Field(
        description="Its storage budget in bytes (429 beyond; 413 for a submit larger than all of it)."
    )
    weight: int = Field(
        description="Its share of the workers beside other tenants with ready jobs in the same queue and "
        "priority: they take turns, this many of its jobs per turn of a tenant of weight 1."
    )
    max_priority: int = Field(description="The highest priority it may submit at (403 beyond).")
    queues: list[str] | None = Field(description="The queues it may submit to (403 others); null: all.")

    class Update(BaseModel):
        model_config = ConfigDict(extra="forbid")

        max_open_jobs: int | None = Field(None, ge=1, le=100_000_000)
        submits_per_s: int | None = Field(None, ge=1, le=1_000_000)
        max_kept_jobs: int | None = Field(None, ge=1, le=1_000_000_000)
        max_kept_bytes: int | None = Field(None, ge=1024, le=1 << 40)
        weight: int | None = Field(None, ge=1, le=MAX_TENANT_WEIGHT)
        max_priority: int | None = Field(None, ge=0, le=9)
        queues: list[QueueName] | None = Field(None, min_length=1, max_length=len(QUEUE_NAMES))

    @classmethod
    def from_view(cls, view: Any) -> TenantQuotas:
        return cls(
            tenant=view.name,
            open_jobs=view.open_jobs,
            kept_jobs=view.kept.jobs,
            kept_bytes=view.kept.bytes,
            max_open_jobs=view.quotas.max_open_jobs,
            submits_per_s=view.quotas.submits_per_s,
            max_kept_jobs=view.quotas.max_kept_jobs,
            max_kept_bytes=view.quotas.max_kept_bytes,
            weight=view.policy.weight,
            max_priority=view.policy.max_priority,
            queues=list(view.policy.queues) if view.policy.queues is not None else None,
        )


class TenantList(BaseModel):
    tenants: list[TenantQuotas]


class WebhookSecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int | None = Field(
        None,
        ge=0,
        le=MAX_GRACE_S,
        description="How long the secret it replaces goes on signing beside it, so that receivers can move "
        "over without refusing a delivery (default JOBSVC_WEBHOOK_SECRET_GRACE_S; 0: stops at once).",
    )


class WebhookSecret(BaseModel):
    tenant: str
    secret: str = Field(description="The new signing secret (whsec_…), shown this once: kept encrypted.")
    previous_valid_until: datetime | None = Field(
        description="Until when the secret it replaced still signs beside it (null: there was none)."
    )


class AuditEntry(BaseModel):
    at: datetime
    key_id: str = Field(description="The key that acted (`admin`: the bootstrap admin key).")
    tenant: str = Field(description="That key's tenant.")
    action: str = Field(description="`key.create`, `key.revoke`, `tenant.quotas`, `queue.pause`, …")
    target: str = Field(description="The tenant (or queue) acted on.")
    details: dict[str, Any]


class AuditList(BaseModel):
    entries: list[AuditEntry]


class TenantDeletion(BaseModel):
    tenant: str
    deleted_jobs: int
