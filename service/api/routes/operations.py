"""/v1/queues and /v1/schedules: what waits, runs and ended per queue, and when schedules run."""

from __future__ import annotations

from fastapi import APIRouter

from jobs import registry
from jobs.queues import QUEUES
from service.api.auth import AdminKey
from service.api.deps import StoreDep
from service.api.errors import problems
from service.api.schemas import QueueList, QueueView, ScheduleList, ScheduleView
from service.stores.queue_stats import read_queue_stats, read_schedules

router = APIRouter(prefix="/v1", tags=["operations"], responses=problems({}))


@router.get("/queues", response_model=QueueList, summary="Queues: depth, running, recent outcomes")
async def list_queues(caller: AdminKey, store: StoreDep) -> QueueList:
    stats = await read_queue_stats(store.redis, (spec.name for spec in QUEUES))
    return QueueList(
        queues=[
            QueueView(
                name=spec.name,
                description=spec.description,
                default_weight=spec.weight,
                queued=s.queued,
                deferred=s.deferred,
                in_progress=s.in_progress,
                succeeded_last_hour=s.succeeded_last_hour,
                failed_last_hour=s.failed_last_hour,
                cancelled_last_hour=s.cancelled_last_hour,
                oldest_waiting_s=s.oldest_waiting_s,
            )
            for spec, s in zip(QUEUES, stats, strict=True)
        ]
    )


@router.get("/schedules", response_model=ScheduleList, summary="Schedules: next run, last run and outcome")
async def list_schedules(caller: AdminKey, store: StoreDep) -> ScheduleList:
    states = await read_schedules(store.redis, registry.schedules())
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
