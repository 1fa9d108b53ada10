"""/healthz (the process serves), /readyz (Redis answers and a worker is alive) and /v1/workers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from service.api.auth import OperatorKey
from service.api.deps import ServicesDep
from service.api.errors import problem, problem_response, problems
from service.api.schemas import Health, WorkerList, WorkerView

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses={503: problem_response("Not ready, with the reason.")}
)
async def readyz(services: ServicesDep) -> Health | JSONResponse:
    try:
        await services.store.redis.ping()
    except (RedisError, OSError) as exc:
        return problem(503, "Not ready", f"Redis does not answer ({type(exc).__name__}).", slug="not-ready")
    if not await services.store.live_workers(services.settings.worker_stale_after_s):
        detail = f"No worker has sent a heartbeat in the last {services.settings.worker_stale_after_s:g}s."
        return problem(503, "Not ready", detail, slug="not-ready")
    return Health(status="ready", checks={"redis": "ok", "workers": "ok"})


@router.get(
    "/v1/workers",
    response_model=WorkerList,
    tags=["operations"],
    responses=problems({}),
    summary="Live workers",
)
async def list_workers(caller: OperatorKey, services: ServicesDep) -> WorkerList:
    records = await services.store.live_workers(services.settings.worker_stale_after_s)
    return WorkerList(workers=[WorkerView.from_record(record) for record in records])
