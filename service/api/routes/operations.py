"""/v1/queues and /v1/schedules: what waits, runs and ended per queue, pausing and resuming a queue, and
when schedules run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from redis.asyncio import Redis

from jobs import registry
from jobs.queues import QUEUE_NAMES, QUEUES
from service.api.auth import OperatorKey, Principal
from service.api.deps import ServicesDep
from service.api.errors import INVALID_PARAMETER, UnknownQueue, problems
from service.api.schemas import QueueList, QueueView, ScheduleList, ScheduleView
from service.stores.audit_log import AuditLog
from service.stores.job_store import JobStore
from service.stores.queue_pauses import pause_queue, paused_queues, resume_queue
from service.stores.queue_stats import read_queue_stats, read_schedules

logger = logging.getLogger("jobsvc.api")

router = APIRouter(prefix="/v1", tags=["operations"], responses=problems({}))

QueueName = Annotated[
    str, Path(description="The queue's name.", json_schema_extra={"enum": list(QUEUE_NAMES)})
]


@router.get("/queues", response_model=QueueList, summary="Queues: depth, running, recent outcomes")
async def list_queues(caller: OperatorKey, services: ServicesDep) -> QueueList:
    return QueueList(queues=await queue_views(services.store.redis, [spec.name for spec in QUEUES]))


@router.post(
    "/queues/{name}:pause",
    response_model=QueueView,
    summary="Pause a queue: its jobs are accepted and wait, no worker starts one, running ones finish",
    responses=problems({404: "No queue has this name.", **INVALID_PARAMETER}),
)
async def pause(name: QueueName, caller: OperatorKey, services: ServicesDep) -> QueueView:
    return await switch(name, caller, services.store, services.audit, pause=True)


@router.post(
    "/queues/{name}:resume",
    response_model=QueueView,
    summary="Resume a paused queue: workers start its waiting jobs again at once",
    responses=problems({404: "No queue has this name.", **INVALID_PARAMETER}),
)
async def resume(name: QueueName, caller: OperatorKey, services: ServicesDep) -> QueueView:
    return await switch(name, caller, services.store, services.audit, pause=False)


async def switch(name: str, caller: Principal, store: JobStore, audit: AuditLog, *, pause: bool) -> QueueView:
    """Pause or resume queue ``name``, logged and audited with the key that did it; the queue as it is
    now."""
    known(name)
    paused = {name: await pause_queue(store.redis, name)} if pause else {}
    if not pause:
        await resume_queue(store.redis, name)
    logger.warning("queue %s %s by key %s", name, "paused" if pause else "resumed", caller.key_id)
    action = "queue.pause" if pause else "queue.resume"
    await audit.record(key_id=caller.key_id, tenant=caller.tenant, action=action, target=name)
    [view] = await queue_views(store.redis, [name], paused=paused)
    return view


def known(name: str) -> None:
    if name not in QUEUE_NAMES:
        raise UnknownQueue(f"No queue named {name!r}; GET /v1/queues lists them.")


async def queue_views(
    redis: Redis, names: list[str], *, paused: dict[str, int] | None = None
) -> list[QueueView]:
    """The queues ``names``, as the API shows them; ``paused`` when already known."""
    stats = await read_queue_stats(redis, names)
    if paused is None:
        paused = await paused_queues(redis)
    specs = {spec.name: spec for spec in QUEUES}
    return [
        QueueView(
            name=s.name,
            description=specs[s.name].description,
            default_weight=specs[s.name].weight,
            queued=s.queued,
            deferred=s.deferred,
            in_progress=s.in_progress,
            succeeded_last_hour=s.succeeded_last_hour,
            failed_last_hour=s.failed_last_hour,
            cancelled_last_hour=s.cancelled_last_hour,
            oldest_waiting_s=s.oldest_waiting_s,
            paused_at=datetime.fromtimestamp(paused[s.name] / 1000, UTC) if s.name in paused else None,
        )
        for s in stats
    ]


@router.get("/schedules", response_model=ScheduleList, summary="Schedules: next run, last run and outcome")
async def list_schedules(caller: OperatorKey, services: ServicesDep) -> ScheduleList:
    states = await read_schedules(services.store.redis, registry.schedules())
    return ScheduleList(
        schedules=[
            ScheduleView(
                name=state.schedule.name,
                job_type=state.schedule.job_type,
                schedule=state.schedule.cron,
                description=state.schedule.description,
                overlap=state.schedule.overlap,
                next_run=state.next_run,
                last_run=state.last_run,
                last_job_id=state.last_job_id,
                last_status=state.last_status,
                skipped_ticks=state.skipped_ticks,
            )
            for state in states
        ]
    )
