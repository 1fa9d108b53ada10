"""Job types for operators and benchmarks; registered only when JOBSVC_DIAGNOSTICS is on."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs.context import Ctx
from jobs.definition import RetryPolicy, job_type
from jobs.errors import RetryableJobError
from jobs.limits import Limit

#: list that ``diag.record`` appends to, in the order its jobs ran (under jobsvc's key prefix)
DIAG_LOG = "jobsvc:diag:log"


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Empty(BaseModel):
    pass


class SleepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=3600, description="How long to sleep.")
    tag: str | None = Field(
        None, max_length=100, description="Partitions the type's limits, when JOBSVC_JOB_LIMITS sets any."
    )


class RecordParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(max_length=100, description="Appended to the diagnostics log when the job runs.")


class RecordResult(BaseModel):
    position: int
    #: the results of the jobs this one depended on, by id
    dependencies: dict[str, Any]


class SleepResult(BaseModel):
    slept_s: float


class FailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: int = Field(ge=0, le=25, description="How many first attempts fail.")


class FailResult(BaseModel):
    attempts: int


class StampResult(BaseModel):
    started_at: float = Field(description="time.time() when the function started, in epoch seconds.")


@job_type("diag.noop", description="Does nothing; measures the engine's own cost.", timeout_s=30)
async def noop(ctx: Ctx, params: NoParams) -> Empty:
    return Empty()


@job_type(
    "diag.sleep",
    description="Sleeps, reporting progress every second.",
    timeout_s=3700,
    limit=Limit(key=lambda params: params.tag),
)
async def sleep(ctx: Ctx, params: SleepParams) -> SleepResult:
    remaining = params.seconds
    total = max(1, round(params.seconds))
    while remaining > 0:
        step = min(1.0, remaining)
        await asyncio.sleep(step)
        remaining -= step
        await ctx["progress"].report(round(params.seconds - remaining), total)
    return SleepResult(slept_s=params.seconds)


@job_type(
    "diag.record",
    description="Appends its label to a list in Redis: shows the order in which jobs started.",
    timeout_s=30,
)
async def record(ctx: Ctx, params: RecordParams) -> RecordResult:
    async with ctx["redis"].pipeline(transaction=True) as pipe:
        pipe.rpush(DIAG_LOG, params.label)
        pipe.expire(DIAG_LOG, 3600)
        position, _ = await pipe.execute()
    return RecordResult(position=position, dependencies=ctx["dependencies"])


@job_type(
    "diag.fail",
    description="Fails its first `times` attempts with a retryable error, then succeeds.",
    timeout_s=30,
    retry=RetryPolicy(base_s=0.05, cap_s=1.0),
)
async def fail(ctx: Ctx, params: FailParams) -> FailResult:
    if ctx["job_try"] <= params.times:
        raise RetryableJobError(f"failing attempt {ctx['job_try']} of {params.times} on purpose")
    return FailResult(attempts=ctx["job_try"])


@job_type(
    "diag.crash", description="Kills its own worker process with SIGKILL.", timeout_s=30, max_attempts=3
)
async def crash(ctx: Ctx, params: NoParams) -> Empty:
    os.kill(os.getpid(), signal.SIGKILL)
    return Empty()  # pragma: no cover - the process is gone


@job_type(
    "diag.stamp",
    description="Returns the worker's clock when the function started; measures enqueue-to-start latency.",
    timeout_s=30,
)
async def stamp(ctx: Ctx, params: NoParams) -> StampResult:
    return StampResult(started_at=time.time())


DIAGNOSTIC_TYPES = (noop, sleep, record, fail, crash, stamp)
