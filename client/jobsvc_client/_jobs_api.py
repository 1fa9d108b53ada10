"""The jobs' endpoints, described once (sans-I/O): submit, read, wait for, cancel, list, retry, follow."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jobsvc_client._core import (
    STREAM_READ_TIMEOUT_S,
    Call,
    Paging,
    Pause,
    Program,
    Stream,
    job_event,
    model,
    request,
    segment,
    send,
)
from jobsvc_client.errors import JobTimeout
from jobsvc_client.models import (
    Backoff,
    CancelledJobs,
    CancelMatching,
    Job,
    JobBatch,
    JobBatchSubmit,
    JobEvent,
    JobList,
    JobStatus,
    JobSubmit,
    UnfinishedStatus,
)

#: the longest ``?wait=`` the API accepts; wait() asks again until its own timeout passes
MAX_WAIT_S = 60.0
#: pause before asking again when a server answered a wait early without the job having finished
EARLY_ANSWER_PAUSE_S = 0.25


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{segment(job_id)}"


def submit(
    job_type: str,
    params: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    delay_seconds: float | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    backoff: Backoff | None = None,
    depends_on: Iterable[str] = (),
    idempotency_key: str | None = None,
) -> Call[Job]:
    """Enqueue a job. With ``idempotency_key``, the same key and body again return the first job;
    ``depends_on`` names jobs that must succeed first. A naive ``run_at`` is a ``ValueError``."""
    options: dict[str, Any] = {"queue": queue, "priority": priority, "delay_seconds": delay_seconds}
    options |= {"run_at": run_at, "max_attempts": max_attempts, "backoff": backoff}
    job = JobSubmit(
        type=job_type,
        params=dict(params or {}),
        depends_on=list(depends_on),
        **{name: value for name, value in options.items() if value is not None},
    )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return send("POST", "/v1/jobs", Job, job, headers=headers)


def submit_batch(jobs: Iterable[JobSubmit]) -> Call[JobBatch]:
    """Up to 1,000 jobs, all validated before any is enqueued (a 422 names each bad item's index)."""
    return send("POST", "/v1/jobs:batch", JobBatch, JobBatchSubmit(jobs=list(jobs)))


def get(job_id: str) -> Call[Job]:
    return send("GET", _job_path(job_id), Job)


def _held(job_id: str, hold_s: float) -> Call[Job]:
    """Read the job, the service holding the answer up to ``hold_s`` for it to finish."""
    query = {"wait": hold_s} if hold_s > 0 else None
    return Call(request("GET", _job_path(job_id), query=query, extra_timeout_s=hold_s), model(Job))


def wait(job_id: str, timeout: float = 60) -> Program[Job]:
    """The job once it has finished; :class:`JobTimeout` (with the job) if ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        hold = round(min(max(0.0, deadline - time.monotonic()), MAX_WAIT_S), 3)
        asked_at = time.monotonic()
        job = yield from _held(job_id, hold)
        if job.is_finished:
            return job
        now = time.monotonic()
        if now >= deadline:
            raise JobTimeout(job, timeout)
        if now - asked_at < hold / 2:  # a server with a shorter wait limit: don't spin
            yield Pause(min(EARLY_ANSWER_PAUSE_S, deadline - now))


def cancel(job_id: str) -> Call[Job]:
    """Cancel: a waiting job never starts, a running one is aborted; :class:`Conflict` if it had ended."""
    return send("DELETE", _job_path(job_id), Job)


def cancel_matching(
    *,
    type: str | None = None,
    queue: str | None = None,
    status: UnfinishedStatus | None = None,
    created_before: datetime | None = None,
) -> Call[CancelledJobs]:
    """Cancel every unfinished job of yours that matches (no filter: all of them): waiting ones never
    start, running ones are asked to stop."""
    selection = CancelMatching(
        type=type,
        queue=queue,
        status=status,
        created_before=created_before,
    )
    return send("POST", "/v1/jobs:cancel", CancelledJobs, selection)


def retry(job_id: str) -> Call[Job]:
    """Run a failed or cancelled job again, as a new job (its ``replay_of`` names this one)."""
    return send("POST", f"{_job_path(job_id)}/retry", Job)


def list_jobs(
    *,
    status: JobStatus | str | None = None,
    type: str | None = None,
    queue: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Call[JobList]:
    """One page of jobs, newest first; pass its ``next_cursor`` as ``cursor`` for the next."""
    query = {"status": status, "type": type, "queue": queue, "limit": limit, "cursor": cursor}
    return send("GET", "/v1/jobs", JobList, query=query)


def iter_jobs(
    *,
    status: JobStatus | str | None = None,
    type: str | None = None,
    queue: str | None = None,
    page_size: int = 100,
) -> Paging[JobList, Job]:
    """Every matching job, newest first, fetching ``page_size`` at a time."""
    return Paging(
        page=lambda cursor: list_jobs(status=status, type=type, queue=queue, limit=page_size, cursor=cursor),
        items=lambda page: page.jobs,
    )


def _events(
    path: str, last_event_id: str | None, query: Mapping[str, object] | None = None
) -> Stream[JobEvent]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    follow = request("GET", path, query=query, headers=headers, min_read_timeout_s=STREAM_READ_TIMEOUT_S)
    return Stream(follow, job_event)


def job_events(job_id: str, *, last_event_id: str | None = None) -> Stream[JobEvent]:
    """The job's events until it finishes: the job as it is first, then each status change (``status``,
    ``event.job()`` is the job) and progress report (``progress``). Resume with ``last_event_id``."""
    return _events(f"{_job_path(job_id)}/events", last_event_id)


def events(
    *,
    type: str | None = None,
    queue: str | None = None,
    status: JobStatus | str | None = None,
    last_event_id: str | None = None,
) -> Stream[JobEvent]:
    """Every event of your tenant's jobs, as they happen, without end: ``status`` and ``progress``, each
    naming its job (``event.job_id``). Resume with ``last_event_id``: a ``trimmed`` event says when the
    service no longer holds the events after it."""
    return _events("/v1/events", last_event_id, {"type": type, "queue": queue, "status": status})
