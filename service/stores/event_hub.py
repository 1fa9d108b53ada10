"""One reader of the tenants' event streams per API process, fanned out to every open stream and waiter.

Every status change and progress report of a job is an entry in its tenant's Redis Stream
(``keys.events``), written by the script that makes the change. The API reads those streams with one
blocking ``XREAD`` over the tenants someone listens to, however many listen, and hands each entry to
the subscriptions of its tenant in memory: the cost on Redis stays flat with the number of open
streams and ``?wait=`` requests. When the first listener of a tenant arrives, the blocked read is cut
short (``CLIENT UNBLOCK``) so that the next one includes that tenant.

A subscription resumes after a stream id (an SSE ``Last-Event-ID``): it first reads what it missed with
``XRANGE``, then takes the hub's entries, skipping what it has already seen, so every event arrives
exactly once and in order. When the stream no longer holds the event it resumes after (trimmed away),
the first event says so (``"event": "trimmed"``) instead of silently skipping what is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobs.engine import keys
from jobs.engine.connection import RECONNECT_MAX_DELAY_S, REDIS_DOWN

logger = logging.getLogger("jobsvc.events")

#: the longest one blocking read lasts (below the pool's socket timeout); a new tenant cuts it short
BLOCK_MS = 3_000
#: entries read per round trip, by the hub and by a catching-up subscription
READ_COUNT = 500
#: events a subscription may hold unread before it falls back to reading the stream itself
BUFFER = 10_000


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``, for comparing stream ids."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def is_stream_id(text: str) -> bool:
    ms, sep, seq = text.partition("-")
    return ms.isdigit() and len(ms) <= 20 and (not sep or (seq.isdigit() and len(seq) <= 20))


@dataclass(frozen=True)
class JobEvent:
    """One event: its stream id (the SSE ``id:``) and what happened (``data["id"]`` is the job)."""

    id: str
    data: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.data.get("id", ""))


def decode_entry(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> JobEvent:
    stream_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(b"d", b"{}")
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"event": "unreadable"}
    if not isinstance(data, dict):
        data = {"event": "unreadable"}
    data.setdefault("at", stream_id_key(stream_id)[0])  # the entry's id says when it was written (ms)
    return JobEvent(id=stream_id, data=data)


@dataclass(eq=False)
class Subscription:
    """What one listener receives: the events of its tenant (of one job, if given), after ``cursor``."""

    tenant: str
    job_id: str | None
    cursor: str
    queue: asyncio.Queue[JobEvent] = field(default_factory=lambda: asyncio.Queue(BUFFER))
    #: set when the buffer overflowed: the subscription reads the stream itself to catch up
    overflowed: bool = False

    def offer(self, event: JobEvent) -> None:
        if self.job_id is not None and event.job_id != self.job_id:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


@dataclass(frozen=True)
class Listener:
    """A subscription's events; ``start`` is the stream id it began after (an SSE id for "now")."""

    start: str
    events: AsyncIterator[JobEvent]

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        return self.events


class EventHub:
    """The process's one reader of event streams; ``subscribe`` is all listeners need."""

    def __init__(self, redis: Redis, reader: Redis) -> None:
        #: for short commands (catch-up reads, unblocking the reader)
        self._redis = redis
        #: one connection of its own, blocked in XREAD most of the time
        self._reader = reader
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._cursors: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._reader_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._blocked = False
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jobsvc-event-hub")

    async def stop(self) -> None:
        """Ends the reader: a blocked read is cut short by Redis (cancelling it mid-read would leave the
        connection in an unknown state), and the task is cancelled only if Redis cannot be told."""
        if self._task is not None:
            self._stopping = True
            self._changed.set()
            with contextlib.suppress(*REDIS_DOWN):
                await self._unblock_reader()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), BLOCK_MS / 1000 + 1)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._reader.aclose()

    @property
    def listeners(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    @contextlib.asynccontextmanager
    async def subscribe(
        self, tenant: str, *, after: str | None = None, job_id: str | None = None
    ) -> AsyncIterator[Listener]:
        """``async with hub.subscribe(tenant) as events: async for event in events: ...``

        Without ``after``, the events from now on; with it, every event after that stream id (a
        ``trimmed`` event first when some of them are gone)."""
        stream = keys.events(tenant)
        start = after if after is not None else await self._last_id(stream)
        subscription = Subscription(tenant=tenant, job_id=job_id, cursor=start)
        await self._join(subscription, start)
        try:
            yield Listener(start, self._events(subscription, stream, trimmed_check=after is not None))
        finally:
            self._leave(subscription)

    async def _events(
        self, sub: Subscription, stream: str, *, trimmed_check: bool
    ) -> AsyncIterator[JobEvent]:
        if trimmed_check and await self._trimmed_past(stream, sub.cursor):
            yield JobEvent(id=sub.cursor, data={"event": "trimmed", "after": sub.cursor})
        async for event in self._read_range(stream, sub):
            yield event
        while True:
            if sub.overflowed:
                sub.overflowed = False
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                async for event in self._read_range(stream, sub):
                    yield event
                continue
            event = await sub.queue.get()
            if stream_id_key(event.id) <= stream_id_key(sub.cursor):
                continue  # already read while catching up
            sub.cursor = event.id
            yield event

    async def _read_range(self, stream: str, sub: Subscription) -> AsyncIterator[JobEvent]:
        """What the stream holds after the subscription's cursor, read in batches."""
        while True:
            rows = await self._redis.xrange(stream, min=f"({sub.cursor}", max="+", count=READ_COUNT)
            for entry_id, fields in rows:
                event = decode_entry(entry_id, fields)
                sub.cursor = event.id
                if sub.job_id is None or event.job_id == sub.job_id:
                    yield event
            if len(rows) < READ_COUNT:
                return

    async def _last_id(self, stream: str) -> str:
        rows = await self._redis.xrevrange(stream, max="+", min="-", count=1)
        if not rows:
            return "0-0"
        entry_id = rows[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def _trimmed_past(self, stream: str, after: str) -> bool:
        """Whether events after ``after`` may have been trimmed away: the stream was trimmed, and no longer
        holds the event ``after`` names (its first entry is newer). Told even when the trim happened to
        take nothing after ``after``: a client is never left to assume it missed nothing."""
        try:
            info = await self._redis.xinfo_stream(stream)
        except ResponseError as exc:  # no such stream: nothing was ever written, nothing trimmed
            if "no such key" in str(exc).lower():
                return False
            raise
        if int(info.get("entries-added", 0)) <= int(info.get("length", 0)):
            return False
        first = info.get("first-entry")
        if not first:
            return True  # trimmed to nothing
        first_id = first[0].decode() if isinstance(first[0], bytes) else str(first[0])
        return stream_id_key(first_id) > stream_id_key(after)

    async def _join(self, sub: Subscription, start: str) -> None:
        subs = self._subscriptions.setdefault(sub.tenant, set())
        subs.add(sub)
        if sub.tenant not in self._cursors:
            # a tenant's first listener: the hub reads on from there. A later listener reads what came
            # before the hub's cursor itself (``_read_range``) and skips what it then gets twice.
            self._cursors[sub.tenant] = start
            await self._wake_reader()

    def _leave(self, sub: Subscription) -> None:
        subs = self._subscriptions.get(sub.tenant)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscriptions[sub.tenant]
            self._cursors.pop(sub.tenant, None)

    async def _wake_reader(self) -> None:
        self._changed.set()
        with contextlib.suppress(*REDIS_DOWN):
            await self._unblock_reader()

    async def _unblock_reader(self) -> None:
        if self._blocked and self._reader_id is not None:
            await self._redis.client_unblock(self._reader_id)

    async def _run(self) -> None:
        delay = 0.1
        while not self._stopping:
            try:
                await self._read_once()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the reader outlives any one failure: listeners keep waiting
                if isinstance(exc, REDIS_DOWN):
                    logger.warning(
                        "event streams unreadable (%s); retrying in %.1fs", type(exc).__name__, delay
                    )
                else:
                    logger.exception("reading the event streams failed; retrying in %.1fs", delay)
                self._reader_id = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY_S)

    async def _read_once(self) -> None:
        if not self._cursors:
            self._changed.clear()
            await self._changed.wait()
            return
        if self._reader_id is None:
            self._reader_id = int(await self._reader.client_id())
        self._changed.clear()
        streams = {keys.events(tenant): cursor for tenant, cursor in self._cursors.items()}
        if not streams:  # the last listener left meanwhile
            return
        self._blocked = True
        try:
            reply = await self._reader.xread(streams, count=READ_COUNT, block=BLOCK_MS)  # type: ignore[arg-type]
        finally:
            self._blocked = False
        for stream_key, entries in reply or []:
            name = stream_key.decode() if isinstance(stream_key, bytes) else stream_key
            tenant = name.removeprefix(keys.EVENTS_PREFIX)
            for entry_id, fields in entries:
                event = decode_entry(entry_id, fields)
                if tenant in self._cursors:
                    self._cursors[tenant] = event.id
                for sub in tuple(self._subscriptions.get(tenant, ())):
                    sub.offer(event)
