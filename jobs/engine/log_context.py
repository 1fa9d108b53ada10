"""Which job an attempt's log lines belong to: a context variable the log formatter reads.

ARQ's ``run_job`` decodes the job's record (:func:`naming_jobs` wraps the decoder and notes its type and
tenant), calls the ``on_job_start`` hook (:func:`job_started`, which sets the variable in the task that
runs the job), and only then logs the start: so ARQ's own lines about the job name it too. The runner
(:func:`bind`) adds the trace id from the job function's task; both tasks share one
:class:`JobLogFields`, so ARQ's end line carries it as well. Never params or results: only these names.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.engine.keys import DEFAULT_TENANT


@dataclass
class JobLogFields:
    """What every line logged during a job's attempt says about it."""

    job_id: str
    attempt: int
    job_type: str = ""
    tenant: str = ""
    #: 32 hex digits, when tracing is on
    trace_id: str = ""


_current: contextvars.ContextVar[JobLogFields | None] = contextvars.ContextVar("jobsvc_job_log", default=None)
#: type and tenant of the job record this task decoded last (ARQ decodes it just before ``on_job_start``)
_decoded: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "jobsvc_job_decoded", default=("", "")
)


def current_job() -> JobLogFields | None:
    """The job whose attempt this code runs for, if any."""
    return _current.get()


def naming_jobs(deserializer: Callable[[bytes], dict[str, Any]]) -> Callable[[bytes], dict[str, Any]]:
    """ARQ's ``job_deserializer``: ``deserializer``, noting the type and tenant of each job it decodes."""

    def decode(raw: bytes) -> dict[str, Any]:
        record = deserializer(raw)
        arguments = record.get("k")
        if isinstance(arguments, dict):
            _decoded.set((str(record.get("f", "")), str(arguments.get("tenant", DEFAULT_TENANT))))
        return record

    return decode


async def job_started(ctx: dict[str, Any]) -> None:
    """ARQ's ``on_job_start`` hook: the lines of this job's task name the job."""
    job_type, tenant = _decoded.get()
    _current.set(JobLogFields(job_id=ctx["job_id"], attempt=ctx["job_try"], job_type=job_type, tenant=tenant))


def bind(*, job_id: str, attempt: int, job_type: str, tenant: str) -> JobLogFields:
    """The running attempt's fields (those ARQ's hook made, when it did), with its type and tenant."""
    fields = _current.get()
    if fields is None or (fields.job_id, fields.attempt) != (job_id, attempt):
        fields = JobLogFields(job_id=job_id, attempt=attempt)
        _current.set(fields)
    fields.job_type = job_type
    fields.tenant = tenant
    return fields
