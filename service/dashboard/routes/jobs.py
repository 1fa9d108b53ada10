"""The jobs page (filtered, newest first, paged by the listing's cursor), a job's page, cancel and retry.

Two fragments serve the live updates: ``/row`` (a new job's table row, fetched when the event stream
names a job the page does not show) and ``/outcome`` (the part of a job's page that changes when it ends).
"""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from jobs.engine.attempts import read_attempts
from jobs.engine.records import JobSnapshot, read_snapshots
from jobs.queues import QUEUE_NAMES
from jobs.status import TERMINAL_STATUSES, JobStatus
from service.api.deps import ServicesDep
from service.api.errors import DeadLetterNotFound, JobNotFound
from service.api.routes.jobs import CANCEL_WAIT_S
from service.api.schemas import JOB_ID_PATTERN, JOB_TYPE_PATTERN
from service.dashboard.deps import CancelAction, DashboardRoute, SessionDep, SubmitAction
from service.dashboard.live import stream_position
from service.dashboard.notices import notice_job, notice_text, notice_url
from service.dashboard.render import STATUSES, page, pager
from service.dashboard.session import DashboardSession
from service.dashboard.timeline import timeline
from service.stores.dead_letter_store import DeadLetterStore, as_seen_by
from service.stores.job_store import ListFilter

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, max_length=128)]
PAGE_SIZE = 50
_JOB_ID = re.compile(JOB_ID_PATTERN)
_JOB_TYPE = re.compile(JOB_TYPE_PATTERN)


def _job_url(job_id: str) -> str:
    return f"/dashboard/jobs/{job_id}"


@router.get("/dashboard/jobs")
async def jobs_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    status: str = "",
    type: str = "",
    queue: str = "",
    cursor: str = "",
    id: str = "",
) -> Response:
    """Filters that are not one of the choices are dropped rather than refused: the form offers only those."""
    wanted = id.strip()
    missing_id = None
    if wanted:
        if _JOB_ID.fullmatch(wanted):
            try:
                await services.store.get(wanted, session.tenant)
                return RedirectResponse(_job_url(wanted), status_code=303)
            except JobNotFound:
                pass
        missing_id = wanted[:128]
    filters = chosen_filters(status, type, queue)
    after = await stream_position(services.store.redis, session.tenant)
    jobs, next_cursor = await services.store.list_jobs(
        session.tenant, filters, limit=PAGE_SIZE, cursor=cursor[:300] or None
    )
    return page(
        request,
        "jobs.html",
        {
            "title": "Jobs",
            "nav": "jobs",
            "jobs": jobs,
            "filters": filters,
            "filtered": filters != ListFilter(),
            "first_page": not cursor,
            **pager(
                "/dashboard/jobs",
                {"status": filters.status, "type": filters.type, "queue": filters.queue},
                next_cursor,
            ),
            "type_names": sorted(services.job_types),
            "queue_names": QUEUE_NAMES,
            "missing_id": missing_id,
            "can_cancel_matching": session.can("cancel") and filters.status not in TERMINAL_STATUSES,
            "notice": notice_text(request.query_params),
            "events_after": after,
            "example_type": "diag.noop"
            if "diag.noop" in services.job_types
            else min(services.job_types, default="email.send"),
        },
    )


def chosen_filters(status: str, job_type: str, queue: str) -> ListFilter:
    """The filters a form names; one that is not among the choices counts as no filter."""
    return ListFilter(
        status=JobStatus(status) if status in STATUSES else None,
        type=job_type if _JOB_TYPE.fullmatch(job_type) and len(job_type) <= 100 else None,
        queue=queue if queue in QUEUE_NAMES else None,
    )


@router.post("/dashboard/jobs/cancel")
async def cancel_matching(sent: CancelAction, services: ServicesDep) -> Response:
    """Every unfinished job the page's filters match (``POST /v1/jobs:cancel``)."""
    form = sent.form
    filters = chosen_filters(form.get("status", ""), form.get("type", ""), form.get("queue", ""))
    count = 0
    if filters.status not in TERMINAL_STATUSES:
        tally = await services.store.cancel_matching(sent.session.tenant, filters)
        count = tally.cancelled + tally.aborting
    return RedirectResponse(notice_url("/dashboard/jobs", "cancelled_all", count=count), status_code=303)


@router.get("/dashboard/jobs/{job_id}/row")
async def job_row(request: Request, job_id: JobId, session: SessionDep, services: ServicesDep) -> Response:
    job = await services.store.get(job_id, session.tenant)
    return page(request, "_job_row.html", {"job": job})


async def _detail(
    job: JobSnapshot, session: DashboardSession, dead_letters: DeadLetterStore
) -> dict[str, Any]:
    """What a job's page shows besides its params: attempts, dependencies, dead letter, allowed actions."""
    redis = dead_letters.redis
    attempts = await read_attempts(redis, job.id)
    parents = await read_snapshots(redis, job.depends_on, tenant=session.tenant) if job.depends_on else []
    dead_letter = None
    if job.status is JobStatus.failed:
        with contextlib.suppress(DeadLetterNotFound):
            dead_letter = as_seen_by(await dead_letters.get(job.id, session.tenant), session.principal.scopes)
    return {
        "job": job,
        "steps": timeline(job, attempts),
        "parents": list(zip(job.depends_on, parents, strict=True)),
        "dead_letter": dead_letter,
        "can_cancel": session.can("cancel") and not job.is_finished,
        "can_retry": session.can("submit")
        and job.status in (JobStatus.failed, JobStatus.cancelled)
        and job.replayed_as is None,
    }


@router.get("/dashboard/jobs/{job_id}")
async def job_page(request: Request, job_id: JobId, session: SessionDep, services: ServicesDep) -> Response:
    after = await stream_position(services.store.redis, session.tenant)
    job = await services.store.get(job_id, session.tenant)
    context = await _detail(job, session, services.dead_letters)
    query = request.query_params
    return page(
        request,
        "job.html",
        {
            **context,
            "title": f"Job {job.id}",
            "nav": "jobs",
            "notice": notice_text(query),
            "notice_job": notice_job(query),
            "events_after": after,
        },
    )


@router.get("/dashboard/jobs/{job_id}/outcome")
async def job_outcome(
    request: Request, job_id: JobId, session: SessionDep, services: ServicesDep
) -> Response:
    job = await services.store.get(job_id, session.tenant)
    return page(request, "_job_outcome.html", await _detail(job, session, services.dead_letters))


@router.post("/dashboard/jobs/{job_id}/cancel")
async def cancel(job_id: JobId, sent: CancelAction, services: ServicesDep) -> Response:
    await services.store.cancel(job_id, sent.session.tenant, wait_s=CANCEL_WAIT_S)
    return RedirectResponse(notice_url(_job_url(job_id), "cancelled"), status_code=303)


@router.post("/dashboard/jobs/{job_id}/retry")
async def retry(
    job_id: JobId,
    sent: SubmitAction,
    services: ServicesDep,
) -> Response:
    new_job = await services.dead_letters.retry(
        job_id, sent.session.tenant, services.job_types, services.settings
    )
    return RedirectResponse(notice_url(_job_url(new_job.id), "retried", job=job_id), status_code=303)
