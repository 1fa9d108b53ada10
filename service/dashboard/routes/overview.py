"""The overview (the tenant's own numbers; per queue for keys that see the cluster), schedules, workers.

Queues, workers and schedules span tenants, so, as under ``/v1``, only a key with the ``admin`` scope
sees them; every key sees its own tenant's open jobs and dead letters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from jobs import registry
from jobs.engine import keys
from jobs.queues import QUEUES
from service.api.deps import SettingsDep, StoreDep
from service.api.schemas import WorkerView
from service.dashboard.deps import HOME, DashboardRefusal, DashboardRoute, SessionDep, session_store
from service.dashboard.render import page
from service.dashboard.routes.signin import sign_in_page
from service.dashboard.session import SESSION_COOKIE, DashboardSession
from service.stores.queue_stats import read_queue_stats, read_schedules
from service.stores.tenant_store import TenantStore

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _cluster_only(session: DashboardSession, what: str) -> None:
    if not session.sees_cluster:
        raise DashboardRefusal(
            403, "Not allowed", f"{what} span every tenant: they need an API key with the `admin` scope."
        )


@router.get(HOME)
async def overview(request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """The overview when signed in; the sign-in form otherwise (the contract's ``GET /dashboard``)."""
    session = await session_store(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return sign_in_page(request)
    request.state.dashboard_session = session
    tenants: TenantStore = request.app.state.tenants
    tenant = await tenants.get(session.tenant)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.index_all(session.tenant))
        pipe.zcard(keys.dead_letters(session.tenant))
        listed, dead = await pipe.execute()
    context: dict[str, Any] = {
        "title": "Overview",
        "nav": "overview",
        "open_jobs": tenant.open_jobs,
        "max_open_jobs": tenant.quotas.max_open_jobs,
        "listed_jobs": listed,
        "dead_letters": dead,
    }
    if session.sees_cluster:
        stats = await read_queue_stats(store.redis, (spec.name for spec in QUEUES))
        workers = await store.live_workers(settings.worker_stale_after_s)
        serving: Counter[str] = Counter(q for w in workers for q in w.get("queues", "").split(",") if q)
        context["queues"] = [
            {"spec": spec, "stats": s, "workers": serving[spec.name]}
            for spec, s in zip(QUEUES, stats, strict=True)
        ]
        context["worker_count"] = len(workers)
    return page(request, "overview.html", context)


@router.get("/dashboard/schedules")
async def schedules(request: Request, session: SessionDep, store: StoreDep) -> Response:
    _cluster_only(session, "Schedules")
    states = await read_schedules(store.redis, registry.schedules())
    return page(request, "schedules.html", {"title": "Schedules", "nav": "schedules", "schedules": states})


@router.get("/dashboard/workers")
async def workers(request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep) -> Response:
    _cluster_only(session, "Workers")
    records = await store.live_workers(settings.worker_stale_after_s)
    views = sorted((WorkerView.from_record(r) for r in records), key=lambda w: w.started_at)
    return page(
        request,
        "workers.html",
        {
            "title": "Workers",
            "nav": "workers",
            "workers": views,
            "stale_after_s": settings.worker_stale_after_s,
        },
    )
