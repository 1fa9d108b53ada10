"""What a job type is, the typed context its function receives, and the adapter that runs it on ARQ.

A job type is a stable dotted name, an async function ``(ctx, params) -> result`` whose params and
result are Pydantic models, and its options::

    @job_type("email.send", timeout_s=60)
    async def send_email(ctx: Ctx, params: EmailParams) -> EmailResult: ...

What crosses Redis is plain data: ``params`` arrive as a dict and are validated into the model; the
result leaves as ``model_dump(mode="json")``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar

import httpx
from arq import ArqRedis, Retry
from arq.worker import Function
from pydantic import BaseModel, ValidationError

from jobs import keys
from jobs.attempts import begin_attempt, end_attempt
from jobs.codec import deserialize
from jobs.config import JobsConfig
from jobs.connection import REDIS_DOWN, until_redis_answers
from jobs.cpu import CpuPool
from jobs.errors import JobTimeoutError, PermanentJobError, RetryableJobError
from jobs.limits import Limit, partition_of
from jobs.progress import ProgressReporter
from jobs.queueing import NewJob
from jobs.queues import QUEUE_NAMES

logger = logging.getLogger("jobsvc.jobs")

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

#: The hard cap on attempts a submit may ask for.
MAX_ATTEMPTS_LIMIT = 25
#: ARQ's own timeout fires this long after the job type's, which the adapter enforces
TIMEOUT_BACKSTOP_S = 10.0
#: failures worth another attempt unless a type says otherwise (timeouts always count as attempts)
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (RetryableJobError, TimeoutError, *REDIS_DOWN)


class WorkerState(TypedDict):
    """What the worker puts into ARQ's ``ctx`` once, at start."""

    redis: ArqRedis
    #: settings job functions need (SMTP, webhook signing, storage)
    config: JobsConfig
    #: one HTTP client per worker process, shared by all jobs (connection pooling)
    http: httpx.AsyncClient
    #: processes for CPU-bound work, so the event loop never blocks
    process_pool: CpuPool


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
    progress: ProgressReporter
    #: the results of the jobs this one depended on (``depends_on`` at submit), by their ids
    dependencies: dict[str, Any]
    #: the tenant that submitted it: what a job reads of the service's records should be its own
    tenant: str


JobFunction = Callable[[Ctx, P], Awaitable[R]]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter between attempts."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay_s(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class JobType(Generic[P, R]):
    """A job type: name, function, models and options."""

    name: str
    function: JobFunction[P, R]
    params_model: type[P]
    result_model: type[R]
    description: str
    queue: str = keys.DEFAULT_QUEUE
    timeout_s: float | None = None
    max_attempts: int = 5
    keep_result_s: float | None = None
    retry: RetryPolicy = RetryPolicy()
    #: rate and concurrency limits, held across every worker
    limit: Limit | None = None
    #: the queues a submit may send it to besides its own (None: any queue)
    queues: tuple[str, ...] | None = None

    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON

    def arq_function(self) -> Function:
        """The ARQ ``Function`` that runs this type.

        The adapter enforces the type's timeout itself, so that a timeout is a failed attempt that can be
        retried; ARQ's own timeout stays a backstop a little later. ARQ's retry cap is the hard limit.
        """
        return Function(
            name=self.name,
            coroutine=self._run,  # type: ignore[arg-type]
            timeout_s=self.timeout_s + TIMEOUT_BACKSTOP_S if self.timeout_s else None,
            keep_result_s=self.keep_result_s,
            keep_result_forever=None,
            max_tries=MAX_ATTEMPTS_LIMIT,
        )

    @property
    def allowed_queues(self) -> tuple[str, ...]:
        if self.queues is None:
            return QUEUE_NAMES
        return (self.queue, *(q for q in self.queues if q != self.queue))

    def new_job(
        self,
        params: P,
        *,
        default_timeout_s: float,
        default_retention_s: int,
        queue: str | None = None,
        priority: int = 5,
        run_at_ms: int | None = None,
        max_attempts: int | None = None,
        backoff: dict[str, float] | None = None,
        depends_on: tuple[str, ...] = (),
        links: dict[str, str] | None = None,
        tenant: str = keys.DEFAULT_TENANT,
    ) -> NewJob:
        """A job of this type with validated ``params``, ready to enqueue."""
        return NewJob(
            type=self.name,
            params=params.model_dump(mode="json"),
            queue=queue or self.queue,
            priority=priority,
            run_at_ms=run_at_ms,
            max_attempts=max_attempts or self.max_attempts,
            backoff=backoff,
            timeout_s=self.timeout_s or default_timeout_s,
            retention_s=int(self.keep_result_s or default_retention_s),
            depends_on=depends_on,
            limit_key=partition_of(self.limit, params),
            links=links or {},
            tenant=tenant,
        )

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a failed attempt deserves another: never for permanent errors or invalid params."""
        if isinstance(exc, PermanentJobError | ValidationError):
            return False
        return isinstance(exc, self.retry_on)

    async def _run(
        self,
        arq_ctx: dict[str, Any],
        params: Any = None,
        max_attempts: int | None = None,
        backoff: dict[str, float] | None = None,
        depends_on: list[str] | None = None,
        tenant: str = keys.DEFAULT_TENANT,
    ) -> Any:
        job_id: str = arq_ctx["job_id"]
        attempt: int = arq_ctx["job_try"]
        config: JobsConfig = arq_ctx["config"]
        redis: ArqRedis = arq_ctx["redis"]
        budget = max_attempts or self.max_attempts
        policy = RetryPolicy(**backoff) if backoff else self.retry
        timeout_s = self.timeout_s or config.default_timeout_s
        ttl_s = timeout_s + config.result_retention_s
        started = await until_redis_answers(
            lambda: begin_attempt(redis, job_id, attempt, ttl_s=ttl_s), f"starting job {job_id}"
        )
        if attempt > budget:
            raise PermanentJobError(f"gave up after {budget} attempts")
        try:
            model = self.params_model.model_validate(params or {})
        except ValidationError as exc:
            raise PermanentJobError(f"invalid params: {exc.error_count()} error(s)") from None
        dependencies: dict[str, Any] = {}
        if depends_on:
            dependencies = await until_redis_answers(
                lambda: read_results(redis, depends_on), f"reading the dependencies of job {job_id}"
            )
        ctx = typing.cast(
            Ctx,
            {
                **arq_ctx,
                "max_attempts": budget,
                "progress": ProgressReporter(redis, job_id),
                "dependencies": dependencies,
                "tenant": tenant,
            },
        )
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                try:
                    result = await self.function(ctx, model)
                except TimeoutError:
                    if deadline.expired():
                        raise
                    raise RetryableJobError("an operation timed out") from None
        except asyncio.CancelledError:
            raise  # an abort, or a shutdown that hands the job back: not a failed attempt
        except BaseException as exc:
            failure = exc
            if isinstance(exc, TimeoutError):
                failure = JobTimeoutError(f"attempt {attempt} ran past its {timeout_s:g}s timeout")
            await until_redis_answers(
                lambda: end_attempt(redis, job_id, attempt, started, failure, ttl_s=ttl_s),
                f"recording job {job_id}",
            )
            if attempt < budget and self.is_retryable(failure):
                delay = policy.delay_s(attempt)
                logger.info(
                    "%s %s attempt %d failed (%s); retry in %.1fs", self.name, job_id, attempt, failure, delay
                )
                raise Retry(defer=delay) from exc
            if failure is exc:
                raise
            raise failure from None
        return self.result_model.model_validate(result).model_dump(mode="json")


def job_type(
    name: str,
    *,
    description: str | None = None,
    queue: str = keys.DEFAULT_QUEUE,
    timeout_s: float | None = None,
    max_attempts: int = 5,
    keep_result_s: float | None = None,
    retry: RetryPolicy | None = None,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    limit: Limit | None = None,
    queues: tuple[str, ...] | None = None,
) -> Callable[[JobFunction[P, R]], JobType[P, R]]:
    """Declare a job type; params and result models are read from the function's annotations."""

    def decorate(function: JobFunction[P, R]) -> JobType[P, R]:
        hints = typing.get_type_hints(function)
        params_model, result_model = hints.get("params"), hints.get("return")
        if not (_is_model(params_model) and _is_model(result_model)):
            raise TypeError(f"{name}: annotate `params` and the return type with Pydantic models")
        return JobType(
            name=name,
            function=function,
            params_model=typing.cast(type[P], params_model),
            result_model=typing.cast(type[R], result_model),
            description=description or (function.__doc__ or "").strip().split("\n")[0],
            queue=queue,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            keep_result_s=keep_result_s,
            retry=retry or RetryPolicy(),
            retry_on=retry_on,
            limit=limit,
            queues=queues,
        )

    return decorate


async def read_results(redis: ArqRedis, parent_ids: list[str]) -> dict[str, Any]:
    """The results of the jobs a job waited for, by id."""
    records = await redis.mget([keys.arq_result(parent) for parent in parent_ids])
    results: dict[str, Any] = {}
    for parent, raw in zip(parent_ids, records, strict=True):
        results[parent] = deserialize(raw).get("r") if raw is not None else None
    return results


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
