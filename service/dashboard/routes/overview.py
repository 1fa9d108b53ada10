"""The overview (the tenant's own numbers; per queue for keys that see the cluster, with pause and
resume), schedules, workers.

Queues, workers and schedules span tenants, so, as under ``/v1``, only a key with the ``admin`` scope
sees them; every key sees its own tenant's open jobs and dead letters.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from jobs import registry
from jobs.engine import keys
from jobs.queues import QUEUE_NAMES, QUEUES
from service.api.deps import ServicesDep
from service.api.schemas import QUEUE_PATTERN, WorkerView
from service.dashboard.deps import (
    HOME,
    DashboardRefusal,
    DashboardRoute,
    OperatorAction,
    SessionDep,
    session_store,
)
from service.dashboard.notices import notice_text, notice_url
from service.dashboard.render import page
from service.dashboard.routes.signin import sign_in_page
from service.dashboard.session import CLUSTER_SCOPE, SESSION_COOKIE, DashboardSession
from service.stores.queue_pauses import pause_queue, paused_queues, resume_queue
from service.stores.queue_stats import read_queue_stats, read_schedules
from service.stores.tenant_store import TenantStore

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
logger = logging.getLogger("jobsvc.dashboard")


QueueName = Annotated[str, Path(pattern=QUEUE_PATTERN)]


def known_queue(name: str) -> str:
    if name not in QUEUE_NAMES:
        raise DashboardRefusal(404, "Not found", "There is no queue of that name.")
    return name


def _cluster_only(session: DashboardSession, what: str) -> None:
    if not session.sees_cluster:
        raise DashboardRefusal(
            403,
            "Not allowed",
            f"{what} span every tenant: they need an API key with the `{CLUSTER_SCOPE}` scope.",
        )


@router.get(HOME)
async def overview(request: Request, services: ServicesDep) -> Response:
    """The overview when signed in; the sign-in form otherwise (the contract's ``GET /dashboard``)."""
    session = await session_store(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return sign_in_page(request)
    request.state.dashboard_session = session
    tenants: TenantStore = request.app.state.tenants
    tenant = await tenants.get(session.tenant)
    async with services.store.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.index_all(session.tenant))
        pipe.zcard(keys.dead_letters(session.tenant))
        listed, dead = await pipe.execute()
    context: dict[str, Any] = {
        "title": "Overview",
        "nav": "overview",
        "open_jobs": tenant.open_jobs,
        "max_open_jobs": tenant.quotas.max_open_jobs,
        "kept": tenant.kept,
        "quotas": tenant.quotas,
        "listed_jobs": listed,
        "dead_letters": dead,
        "notice": notice_text(request.query_params),
    }
    if session.sees_cluster:
        stats = await read_queue_stats(services.store.redis, (spec.name for spec in QUEUES))
        workers = await services.store.live_workers(services.settings.worker_stale_after_s)
        serving: Counter[str] = Counter(q for w in workers for q in w.get("queues", "").split(",") if q)
        paused = await paused_queues(services.store.redis)
        context["queues"] = [
            {"spec": spec, "stats": s, "workers": serving[spec.name], "paused": spec.name in paused}
            for spec, s in zip(QUEUES, stats, strict=True)
        ]
        context["worker_count"] = len(workers)
    return page(request, "overview.html", context)


@router.post("/dashboard/queues/{name}/pause")
async def pause(name: QueueName, sent: OperatorAction, services: ServicesDep) -> Response:
    await pause_queue(services.store.redis, known_queue(name))
    principal = sent.session.principal
    logger.warning("queue %s paused from the dashboard by key %s", name, principal.key_id)
    await services.audit.record(
        key_id=principal.key_id, tenant=principal.tenant, action="queue.pause", target=name
    )
    return RedirectResponse(notice_url(HOME, "queue_paused"), status_code=303)


@router.post("/dashboard/queues/{name}/resume")
async def resume(name: QueueName, sent: OperatorAction, services: ServicesDep) -> Response:
    await resume_queue(services.store.redis, known_queue(name))
    principal = sent.session.principal
    logger.warning("queue %s resumed from the dashboard by key %s", name, principal.key_id)
    await services.audit.record(
        key_id=principal.key_id, tenant=principal.tenant, action="queue.resume", target=name
    )
    return RedirectResponse(notice_url(HOME, "queue_resumed"), status_code=303)


@router.get("/dashboard/schedules")
async def schedules(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    _cluster_only(session, "Schedules")
    states = await read_schedules(services.store.redis, registry.schedules())
    return page(request, "schedules.html", {"title": "Schedules", "nav": "schedules", "schedules": states})


@router.get("/dashboard/workers")
async def workers(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    _cluster_only(session, "Workers")
    records = await services.store.live_workers(services.settings.worker_stale_after_s)
    views = sorted((WorkerView.from_record(r) for r in records), key=lambda w: w.started_at)
    return page(
        request,
        "workers.html",
        {
            "title": "Workers",
            "nav": "workers",
            "workers": views,
            "stale_after_s": services.settings.worker_stale_after_s,
        },
    )
