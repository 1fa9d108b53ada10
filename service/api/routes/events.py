"""Server-Sent Events: every job event of a tenant (``/v1/events``) or of one job (``/v1/jobs/{id}/events``).

Each event carries an SSE ``id:``, its position in the tenant's event stream. A client that reconnects
with ``Last-Event-ID`` gets every later event exactly once; if the stream was trimmed past that id, the
first event it gets is ``event: trimmed``, never a silent gap. Events are pushed: one reader per API
process fans them out (``service.stores.event_hub``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from jobs.engine.records import JobSnapshot
from jobs.queues import QUEUE_NAMES
from jobs.status import TERMINAL_STATUSES, JobStatus
from service.api.auth import ReadKey
from service.api.deps import ServicesDep
from service.api.errors import InvalidRequest
from service.api.routes.jobs import ERRORS, JobId, job_view
from service.api.schemas import JOB_TYPE_PATTERN
from service.stores.event_hub import EventHub, JobEvent, is_stream_id

router = APIRouter(prefix="/v1", tags=["events"], responses=ERRORS)

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=41,
        description="Resume after this event id (browsers send it by themselves on a reconnect).",
    ),
]


def events_of(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


EventsDep = Annotated[EventHub, Depends(events_of)]


def resume_point(last_event_id: LastEventId = None) -> str | None:
    """The event a stream resumes after, checked before the stream starts (a bad one is a plain 400)."""
    if last_event_id is None or last_event_id == "":
        return None
    if not is_stream_id(last_event_id):
        raise InvalidRequest("Last-Event-ID is not an event id of this stream.")
    return last_event_id


ResumeAfter = Annotated[str | None, Depends(resume_point)]


def sse(event: JobEvent, data: dict[str, Any] | None = None) -> ServerSentEvent:
    return ServerSentEvent(id=event.id, event=str(event.data.get("event", "status")), data=data or event.data)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    summary="Follow every job of your tenant: status changes and progress, as Server-Sent Events",
)
async def tenant_events(
    caller: ReadKey,
    hub: EventsDep,
    after: ResumeAfter,
    type: Annotated[str | None, Query(pattern=JOB_TYPE_PATTERN, max_length=100)] = None,
    queue: Annotated[str | None, Query(pattern="^(" + "|".join(QUEUE_NAMES) + ")$")] = None,
    status: JobStatus | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """`event: status` when a job's status changes, `event: progress` when it reports progress; `data`
    names the job (`id`) with its `type`, `queue`, `status` and `at` (epoch ms). Filters keep only the
    events of that type, queue or status."""
    async with hub.subscribe(caller.tenant, after=after) as listener:
        async for event in listener:
            data = event.data
            if data.get("event") != "trimmed" and (
                (type is not None and data.get("type") != type)
                or (queue is not None and data.get("queue") != queue)
                or (status is not None and data.get("status") != status.value)
            ):
                continue
            yield sse(event)


async def own_job(job_id: JobId, caller: ReadKey, services: ServicesDep) -> JobSnapshot:
    """The caller's job, read before a stream starts, so that an unknown (or another tenant's) id is a
    plain 404 rather than a stream that breaks."""
    return await services.store.get(job_id, caller.tenant)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a job: its status changes and progress, as Server-Sent Events",
)
async def job_events(
    job: Annotated[JobSnapshot, Depends(own_job)],
    caller: ReadKey,
    services: ServicesDep,
    hub: EventsDep,
    after: ResumeAfter,
) -> AsyncIterator[ServerSentEvent]:
    """`event: status` with the Job whenever its status changes (the job as read when the event is sent,
    with the status the event recorded), `event: progress` with the progress and the job's `id`; a new
    stream opens with the job as it is; the stream ends after the event that shows the job finished."""
    async with hub.subscribe(caller.tenant, after=after, job_id=job.id) as listener:
        if after is None:
            snapshot = await services.store.get(job.id, caller.tenant)  # after subscribing: nothing is missed
            opening = JobEvent(id=listener.start, data={"event": "status"})
            yield sse(opening, job_view(snapshot).model_dump(mode="json"))
            if snapshot.is_finished:
                return
        async for event in listener:
            kind = event.data.get("event")
            if kind == "progress":
                yield sse(event, {"id": job.id, **(event.data.get("progress") or {})})
                continue
            if kind != "status":
                yield sse(event)
                continue
            snapshot = await services.store.get(job.id, caller.tenant)
            view = job_view(snapshot).model_dump(mode="json") | {"status": event.data.get("status")}
            yield sse(event, view)
            if event.data.get("status") in TERMINAL_STATUSES:
                return
