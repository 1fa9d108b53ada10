"""``/dashboard/events``: the signed-in tenant's job events, pushed as Server-Sent Events.

A browser's ``EventSource`` cannot send an API key, so this stream is the session-cookie twin of
``GET /v1/events``: the same hub (``app.state.events``), the same ids. A page is rendered with the
tenant's stream position at that moment (``data-events-after``) and opens the stream after it, so an
event between the render and the connection is not lost; a reconnect resumes after ``Last-Event-ID``.
Each event is small JSON (``id``, ``type``, ``queue``, ``status``, ``progress``, ``at``): the page
patches the cells it shows, and fetches a row only for a job it does not show yet.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from redis.asyncio import Redis

from jobs.engine import keys
from service.dashboard.deps import DashboardRefusal, DashboardRoute, session_store
from service.dashboard.session import SESSION_COOKIE, DashboardSession
from service.stores.event_hub import EventHub, is_stream_id

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

#: what a page needs of an event; the rest of the hub's data stays on the server
RELAYED = ("id", "type", "queue", "status", "event", "progress", "at")
#: the browser's wait before reconnecting, ms
RETRY_MS = 1000
#: how often, at most, a stream re-reads its session (sign-out, revoked key)
RECHECK_S = 30.0


async def stream_position(redis: Redis, tenant: str) -> str:
    """The id of the tenant's newest event (``0-0`` when none): a page opens its stream after it."""
    rows = await redis.xrevrange(keys.events(tenant), max="+", min="-", count=1)
    if not rows:
        return "0-0"
    entry_id = rows[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _resume_point(last_event_id: str | None, after: str | None) -> str | None:
    for candidate in (last_event_id, after):
        if candidate and len(candidate) <= 41 and is_stream_id(candidate):
            return candidate
    return None


async def stream_session(request: Request) -> DashboardSession:
    """The session, checked before the stream starts: without one the answer is a plain 401, which an
    ``EventSource`` takes as final (a redirect to the sign-in form would be retried forever)."""
    session = await session_store(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise DashboardRefusal(401, "Signed out", "Sign in again to follow your jobs.")
    return session


@router.get("/dashboard/events", response_class=EventSourceResponse)
async def events(
    request: Request,
    session: Annotated[DashboardSession, Depends(stream_session)],
    after: str | None = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Every event of the session's tenant. Before relaying an event it makes sure the session still
    holds (re-read at most every ``RECHECK_S``): a signed-out, expired or revoked session gets nothing
    more, and its stream ends (the browser's reconnect is then refused)."""
    hub: EventHub = request.app.state.events
    store = session_store(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    checked_at = time.monotonic()
    async with hub.subscribe(session.tenant, after=_resume_point(last_event_id, after)) as listener:
        # sent once subscribed: the page's "Live" means no event can be missed from here on
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        async for event in listener:
            if time.time() * 1000 >= session.expires_at_ms:
                return
            if time.monotonic() - checked_at > RECHECK_S:
                if await store.read(session_id) is None:
                    return
                checked_at = time.monotonic()
            data: dict[str, Any] = {k: event.data[k] for k in RELAYED if k in event.data}
            yield ServerSentEvent(id=event.id, event=str(data.get("event", "status")), data=data)
