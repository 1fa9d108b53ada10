"""What a job function receives: the typed ``ctx``, and the slice of settings it may read.

The worker builds a :class:`JobsConfig` from the service settings at start; job functions never read
the environment and never see settings they do not use. Nothing here imports the engine: what the
engine hands a job (a Redis pool, a progress reporter, the history of jobs) is typed by what a job
may do with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

if TYPE_CHECKING:  # for the type checker only: a job module imports neither at run time
    import httpx
    from redis.asyncio import Redis

    from jobs.cpu import CpuPool
    from jobs.status import JobStatus


@dataclass(frozen=True, repr=False)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: Literal["none", "starttls", "tls"]
    sender: str
    timeout_s: float

    def __repr__(self) -> str:  # never print the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, user={self.user!r}, tls={self.tls!r})"


@dataclass(frozen=True)
class WebhookConfig:
    timeout_s: float


@dataclass(frozen=True)
class JobsConfig:
    smtp: SmtpConfig
    webhook: WebhookConfig
    storage_dir: Path
    allow_private_addresses: bool
    result_retention_s: int
    #: the run-time limit of an attempt of a type that sets none
    default_timeout_s: float
    #: (host, port) of the service's own Redis: outbound calls never reach it
    redis_endpoints: tuple[tuple[str, int], ...] = ()


class WebhookSigning(Protocol):
    """The secrets a tenant's webhook deliveries are signed with now (``whsec_…``; two during a
    rotation's grace period)."""

    async def signing(self, tenant: str) -> list[str]: ...


class Progress(Protocol):
    """Reports how far a job has come; best effort, never fails the job."""

    async def report(self, current: int, total: int | None = None, message: str | None = None) -> None: ...


@dataclass(frozen=True)
class PastJob:
    """What a job may read of another job of its tenant (``ctx["history"]``). Times are epoch ms."""

    id: str
    type: str
    status: JobStatus
    started_at: int | None
    finished_at: int | None


@dataclass(frozen=True)
class HistoryBatch:
    """One read of the history: how many index entries it covered, and the jobs still on record."""

    entries_read: int
    jobs: list[PastJob]


class JobHistory(Protocol):
    """The jobs of the running job's tenant, read by creation time."""

    async def count_created_between(self, start_ms: int, end_ms: int) -> int: ...

    def created_between(self, start_ms: int, end_ms: int) -> AsyncIterator[HistoryBatch]:
        """Batches of jobs created in ``[start_ms, end_ms]``, oldest first; expired jobs are left out but
        counted in ``entries_read``."""
        ...


class WorkerState(TypedDict):
    """What the worker puts into ARQ's ``ctx`` once, at start."""

    redis: Redis
    #: settings job functions need (SMTP, webhooks, storage)
    config: JobsConfig
    #: one HTTP client per worker process, shared by all jobs (connection pooling)
    http: httpx.AsyncClient
    #: processes for CPU-bound work, so the event loop never blocks
    process_pool: CpuPool
    #: each tenant's webhook signing secrets
    webhook_secrets: WebhookSigning


class Ctx(WorkerState):
    """What a job function receives: the worker state plus this attempt's facts."""

    #: the stable id of the job, the same on every attempt: use it to make effects idempotent
    job_id: str
    #: this attempt's number, from 1
    job_try: int
    #: when the job was submitted
    enqueue_time: datetime
    #: this job's attempt budget
    max_attempts: int
    #: report progress: ``await ctx["progress"].report(3, 10, "resizing")``
    progress: Progress
    #: the results of the jobs this one depended on (``depends_on`` at submit), by their ids
    dependencies: dict[str, Any]
    #: the tenant that submitted it: what a job reads of the service's records should be its own
    tenant: str
    #: the tenant's jobs, for job types that report on them
    history: JobHistory
