"""Running a job type on ARQ: the ``Function`` ARQ calls, and the adapter around the type's function.

The adapter records each attempt, validates the params, hands the function its typed ``Ctx``, enforces
the type's timeout itself (so that a timeout is a failed attempt that can be retried; ARQ's own timeout
stays a backstop a little later) and turns a retryable failure into ARQ's ``Retry``.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from typing import Any

from arq import ArqRedis, Retry
from arq.worker import Function
from pydantic import ValidationError

from jobs.context import Ctx, JobsConfig
from jobs.definition import MAX_ATTEMPTS_LIMIT, JobType, RetryPolicy
from jobs.engine import keys, log_context, tracing
from jobs.engine.attempts import begin_attempt, end_attempt
from jobs.engine.codec import deserialize
from jobs.engine.connection import redis_unavailable, until_redis_answers
from jobs.engine.history import TenantHistory
from jobs.engine.progress import ProgressReporter
from jobs.engine.queue_ops import attempt_lease_token
from jobs.errors import JobTimeoutError, PermanentJobError, RetryableJobError

logger = logging.getLogger("jobsvc.jobs")

#: ARQ's own timeout fires this long after the job type's, which the adapter enforces
TIMEOUT_BACKSTOP_S = 10.0


def arq_function(job_type: JobType[Any, Any]) -> Function:
    """The ARQ ``Function`` that runs ``job_type``; ARQ's retry cap is the hard limit."""

    async def run(arq_ctx: dict[str, Any], **arguments: Any) -> Any:
        return await run_attempt(job_type, arq_ctx, **arguments)

    return Function(
        name=job_type.name,
        coroutine=run,  # type: ignore[arg-type]
        timeout_s=job_type.timeout_s + TIMEOUT_BACKSTOP_S if job_type.timeout_s else None,
        keep_result_s=job_type.keep_result_s,
        keep_result_forever=None,
        max_tries=MAX_ATTEMPTS_LIMIT,
    )


def is_retryable(job_type: JobType[Any, Any], exc: BaseException) -> bool:
    """The type's own rule, plus: Redis being unavailable is always worth another attempt."""
    if redis_unavailable(exc) and not isinstance(exc, PermanentJobError):
        return True
    return job_type.is_retryable(exc)


async def run_attempt(
    job_type: JobType[Any, Any],
    arq_ctx: dict[str, Any],
    params: Any = None,
    max_attempts: int | None = None,
    backoff: dict[str, float] | None = None,
    depends_on: list[str] | None = None,
    tenant: str = keys.DEFAULT_TENANT,
) -> Any:
    """One attempt of a job: what ARQ runs for every job of ``job_type``. Its log lines name the job; with
    tracing on, it runs in a consumer span that continues the trace of the request that enqueued it."""
    job_id: str = arq_ctx["job_id"]
    attempt: int = arq_ctx["job_try"]
    fields = log_context.bind(job_id=job_id, attempt=attempt, job_type=job_type.name, tenant=tenant)
    if not tracing.ON:
        return await _attempt(job_type, arq_ctx, params, max_attempts, backoff, depends_on, tenant)
    async with tracing.processing(
        arq_ctx["redis"], job_id=job_id, job_type=job_type.name, attempt=attempt, tenant=tenant
    ) as trace_id:
        fields.trace_id = trace_id
        return await _attempt(job_type, arq_ctx, params, max_attempts, backoff, depends_on, tenant)


async def _attempt(
    job_type: JobType[Any, Any],
    arq_ctx: dict[str, Any],
    params: Any,
    max_attempts: int | None,
    backoff: dict[str, float] | None,
    depends_on: list[str] | None,
    tenant: str,
) -> Any:
    job_id: str = arq_ctx["job_id"]
    attempt: int = arq_ctx["job_try"]
    config: JobsConfig = arq_ctx["config"]
    redis: ArqRedis = arq_ctx["redis"]
    budget = max_attempts or job_type.max_attempts
    policy = RetryPolicy(**backoff) if backoff else job_type.retry
    timeout_s = job_type.timeout_s or config.default_timeout_s
    ttl_s = timeout_s + config.result_retention_s
    started = await until_redis_answers(
        lambda: begin_attempt(redis, job_id, attempt, ttl_s=ttl_s), f"starting job {job_id}"
    )
    if attempt > budget:
        raise PermanentJobError(f"gave up after {budget} attempts")
    try:
        model = job_type.params_model.model_validate(params or {})
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
            "progress": ProgressReporter(arq_ctx["queues"], job_id, attempt_lease_token.get()),
            "dependencies": dependencies,
            "tenant": tenant,
            "history": TenantHistory(redis, tenant),
        },
    )
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            try:
                result = await job_type.function(ctx, model)
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
        if attempt < budget and is_retryable(job_type, failure):
            delay = policy.delay_s(attempt)
            logger.info(
                "%s %s attempt %d failed (%s); retry in %.1fs", job_type.name, job_id, attempt, failure, delay
            )
            raise Retry(defer=delay) from exc
        if failure is exc:
            raise
        raise failure from None
    return job_type.result_model.model_validate(result).model_dump(mode="json")


async def read_results(redis: ArqRedis, parent_ids: list[str]) -> dict[str, Any]:
    """The results of the jobs a job waited for, by id."""
    records = await redis.mget([keys.arq_result(parent) for parent in parent_ids])
    results: dict[str, Any] = {}
    for parent, raw in zip(parent_ids, records, strict=True):
        results[parent] = deserialize(raw).get("r") if raw is not None else None
    return results
