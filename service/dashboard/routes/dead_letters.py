"""The dead letters: read them (filtered, paged), replay one or all that match, delete one or all that
match. Replaying needs the ``submit`` scope and deleting the ``cancel`` scope, as under ``/v1``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from jobs.queues import QUEUE_NAMES
from service.api.deps import ServicesDep
from service.api.schemas import JOB_ID_PATTERN, JOB_TYPE_PATTERN
from service.dashboard.deps import CancelAction, DashboardRoute, SessionDep, SubmitAction
from service.dashboard.notices import notice_job, notice_text, notice_url
from service.dashboard.render import page, pager
from service.stores.dead_letter_store import as_seen_by

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

DeadLetterId = Annotated[str, Path(pattern=JOB_ID_PATTERN, max_length=128)]
LIST_URL = "/dashboard/dead-letters"
PAGE_SIZE = 50
#: the most a "replay all" replays at once; the page says so
BULK_REPLAY_LIMIT = 500
_JOB_TYPE = re.compile(JOB_TYPE_PATTERN)


def selection(values: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The (type, queue) a filter form names; anything that is not a choice counts as no filter."""
    job_type, queue = values.get("type", ""), values.get("queue", "")
    return (
        job_type if _JOB_TYPE.fullmatch(job_type) and len(job_type) <= 100 else None,
        queue if queue in QUEUE_NAMES else None,
    )


@router.get(LIST_URL)
async def dead_letters_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    query = request.query_params
    job_type, queue = selection(query)
    cursor = query.get("cursor", "")[:300] or None
    letters, next_cursor = await services.dead_letters.list(
        session.tenant, type=job_type, queue=queue, limit=PAGE_SIZE, cursor=cursor
    )
    return page(
        request,
        "dead_letters.html",
        {
            "title": "Dead letters",
            "nav": "dead_letters",
            "letters": [as_seen_by(letter, session.principal.scopes) for letter in letters],
            "type": job_type,
            "queue": queue,
            "filtered": job_type is not None or queue is not None,
            "first_page": cursor is None,
            **pager(LIST_URL, {"type": job_type, "queue": queue}, next_cursor),
            "type_names": sorted(services.job_types),
            "queue_names": QUEUE_NAMES,
            "bulk_limit": BULK_REPLAY_LIMIT,
            "notice": notice_text(query),
            "notice_job": notice_job(query),
        },
    )


@router.post(f"{LIST_URL}/replay")
async def replay_matching(sent: SubmitAction, services: ServicesDep) -> Response:
    job_type, queue = selection(sent.form)
    replayed = await services.dead_letters.replay_where(
        sent.session.tenant,
        services.job_types,
        services.settings,
        type=job_type,
        queue=queue,
        limit=BULK_REPLAY_LIMIT,
    )
    return RedirectResponse(notice_url(LIST_URL, "replayed_all", count=len(replayed)), status_code=303)


@router.post(f"{LIST_URL}/purge")
async def delete_matching(sent: CancelAction, services: ServicesDep) -> Response:
    job_type, queue = selection(sent.form)
    purged = await services.dead_letters.purge_where(sent.session.tenant, type=job_type, queue=queue)
    return RedirectResponse(notice_url(LIST_URL, "purged", count=purged), status_code=303)


@router.post(LIST_URL + "/{job_id}/replay")
async def replay_one(
    job_id: DeadLetterId,
    sent: SubmitAction,
    services: ServicesDep,
) -> Response:
    new_job = await services.dead_letters.replay(
        job_id, sent.session.tenant, services.job_types, services.settings
    )
    return RedirectResponse(notice_url(LIST_URL, "replayed", job=new_job.id), status_code=303)


@router.post(LIST_URL + "/{job_id}/delete")
async def delete_one(job_id: DeadLetterId, sent: CancelAction, services: ServicesDep) -> Response:
    await services.dead_letters.delete(job_id, sent.session.tenant)
    return RedirectResponse(notice_url(LIST_URL, "deleted"), status_code=303)
