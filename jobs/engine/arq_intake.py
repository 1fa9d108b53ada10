"""Jobs that ARQ's own producers enqueue (``await pool.enqueue_job("diag.noop")``), taken in by the workers.

ARQ's ``enqueue_job`` writes ARQ's record (``arq:job:<id>``) and ARQ's queue entry (``arq:queue[:<q>]``),
nothing else; jobsvc's workers claim from the structures jobsvc's submit scripts build beside them. So the
scripts count jobsvc's own entries in each ARQ queue (``keys.ARQ_OWNED``; each entry is also marked in its
job's meta) and change that count in the same step as the queue, and a worker reads ``ZCARD - count``:

- **Look** every :data:`LOOK_EVERY_S`: one round trip. An idle worker caps its blocking wait to that;
  a wake-up for jobsvc's own jobs goes to the claim first, never through a look.
- **Find**, only when a difference is not one the worker already accounts for (jobs held back by the
  tenant's quota, or a drift learnt from a fruitless full pass): first the entries due in a window
  around now (``WINDOW_MS`` either side of the time since the last look), where new arrivals are, so the
  cost follows arrivals, not the queue's depth; if that does not account for the difference, a full pass
  with ZSCAN in bounded steps (:data:`STEP_ENTRIES` entries a round trip), one worker per queue at a
  time. Entries written before jobsvc counted its own are counted on the way.
- **Adopt.** Each job found is judged as the API judges a submission (``jobs.engine.arq_producers``),
  then one script, only if the job is still foreign and its record unchanged, rewrites it into jobsvc's
  format with the same id, enqueue time, due time and TTL, under ``JOBSVC_ARQ_PRODUCER_TENANT`` and
  within that tenant's quotas (a job over them waits): from there on it is an ordinary jobsvc job. One
  that cannot run fails at once with the reason, readable with ARQ's ``Job.result()`` and over REST.
"""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import msgpack
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.arq_producers import Foreign, Intake, IntakeRules, refusal_of_unknown_queue
from jobs.engine.queue_ops import QuotaOutcome, Quotas, UnexpectedReply
from jobs.queues import QUEUE_NAMES

logger = logging.getLogger("jobsvc.arq_intake")

#: how often a worker compares its queues' sizes with jobsvc's counts (an idle worker blocks no longer)
LOOK_EVERY_S = 0.8
#: entries one find step reads (ZSCAN's COUNT, a window's LIMIT)
STEP_ENTRIES = 500
#: a window reaches this far behind the previous look and ahead of now (producers' clocks may differ)
WINDOW_MS = 2_000
#: how long a worker looking for foreign jobs in a queue keeps the others off it between two steps
LOCK_MS = 5_000
#: jobs held back by the producers' tenant's quota, kept to be adopted again, per queue at most
MAX_HELD = STEP_ENTRIES


# -- the scripts' replies, typed (as ``jobs.engine.queue_ops`` does for the others) -------------------------

AdoptOutcome = Literal["adopted", "failed", "refused", "changed", QuotaOutcome]
#: refusals that pass with time (jobs end, a second passes, records expire): the job waits to be taken in
HELD_BACK: tuple[AdoptOutcome, ...] = ("over_open", "over_rate", "over_kept_jobs", "over_kept_bytes")
#: refusals that never pass (the producers' tenant may not use the job's queue or priority, or the job is
#: larger than its whole budget): the job fails, as a submit over the API would be refused
NEVER_ALLOWED: dict[AdoptOutcome, str] = {
    "queue_not_allowed": "the producers' tenant may not submit to this queue",
    "priority_not_allowed": "the producers' tenant may not submit at this priority",
    "over_budget": "the job is larger than the producers' tenant's whole storage budget",
}


class FindReply(NamedTuple):
    """One find step: what to go on from ('' when done), the window's bounds, how many old entries of
    jobsvc's it counted, the difference after it, and the foreign entries as :class:`Foreign` jobs."""

    following: str
    lowest: int | None
    highest: int | None
    counted: int
    difference: int
    found: list[Foreign]


def decode_arq_differences(raw: Any, queues: Sequence[str]) -> tuple[int, dict[str, int]]:
    """When they were read (ms, Redis' clock), and each queue's difference."""
    if not isinstance(raw, list) or len(raw) != len(queues) + 1:
        raise UnexpectedReply(f"arq_differences: {raw!r} is not the time and one difference per queue")
    now_ms, *differences = raw
    return int(now_ms), {
        queue: int(difference) for queue, difference in zip(queues, differences, strict=True)
    }


def decode_find_foreign(raw: Any, queue: str) -> FindReply | None:
    """None when another worker is looking at the queue."""
    if raw == [b"busy"]:
        return None
    if not isinstance(raw, list) or len(raw) != 7 or raw[0] != b"ok":
        raise UnexpectedReply(f"find_foreign: {raw!r}")
    _, difference, following, lowest, highest, counted, found = raw
    arq_key = keys.arq_queue(queue)
    return FindReply(
        following=following.decode(),
        lowest=int(lowest) if lowest else None,
        highest=int(highest) if highest else None,
        counted=int(counted),
        difference=int(difference),
        found=[
            Foreign(job_id.decode(), queue, arq_key, int(float(due)), record, int(ttl))
            for job_id, due, record, ttl in found
        ],
    )


def decode_adopt_foreign(raw: Any) -> tuple[list[AdoptOutcome], int]:
    outcomes, difference = raw
    decoded = [outcome.decode() for outcome in outcomes]
    if unknown := set(decoded) - set(typing.get_args(AdoptOutcome)):
        raise UnexpectedReply(f"adopt_foreign: {unknown} are no outcomes")
    return typing.cast(list[AdoptOutcome], decoded), int(difference)


async def take_in(
    adopt: AsyncScript, intakes: Sequence[Intake], quotas: Quotas | None, *, queue: str = ""
) -> tuple[list[AdoptOutcome], int]:
    """Run the adopt script on ``intakes``: each one's outcome, and ``queue``'s difference after them."""
    packed = msgpack.packb([intake.item() for intake in intakes], use_bin_type=False)
    return decode_adopt_foreign(await adopt(args=[quotas.packed if quotas else "", queue, packed]))


# -- looking for foreign jobs ----------------------------------------------------------------------------


@dataclass
class QueueLook:
    """What one worker knows of the foreign jobs in one of its queues."""

    queue: str
    #: ZCARD of the queue's ARQ key minus jobsvc's count of its own entries there, as last read
    difference: int = 0
    #: a difference that a full pass found nothing behind (records changed outside jobsvc's scripts)
    drift: int = 0
    #: foreign jobs the producers' tenant's quota holds back, by id, and when to try them again
    held: dict[str, Intake] = field(default_factory=dict)
    held_until: float = 0.0
    #: the lowest due time the next window starts from (ms; None: ``WINDOW_MS`` before now)
    window_from_ms: int | None = None
    #: a full pass under way: its ZSCAN cursor, the difference at its first step, what it found
    cursor: str | None = None
    pass_difference: int | None = None
    pass_found: int = 0

    @property
    def unexplained(self) -> int:
        """How many foreign jobs the worker does not know of yet (0: nothing to look for)."""
        return self.difference - len(self.held) - self.drift

    @property
    def under_way(self) -> bool:
        """A full pass has steps left, or held jobs are due another try."""
        return self.cursor is not None or (bool(self.held) and time.monotonic() >= self.held_until)


class ArqIntake:
    """Finds and takes in the jobs ARQ's own producers put in a worker's queues (see the module's doc)."""

    def __init__(self, redis: Redis, rules: IntakeRules, *, queues: Sequence[str], worker_id: str) -> None:
        self.redis = redis
        self.rules = rules
        self.worker_id = worker_id
        self.looks = {name: QueueLook(name) for name in queues}
        self._differences = redis.register_script(scripts.ARQ_DIFFERENCES)
        self._find = redis.register_script(scripts.FIND_FOREIGN)
        self._adopt = redis.register_script(scripts.ADOPT_FOREIGN)
        self._checked_at = float("-inf")

    def _note(self, raw: Any) -> None:
        """What the differences script read. Where it accounts for every entry, nothing foreign came before
        now: the next window need not reach further back than that (what it reads stays what arrives)."""
        now_ms, differences = decode_arq_differences(raw, list(self.looks))
        for queue, difference in differences.items():
            look = self.looks[queue]
            look.difference = difference
            if look.unexplained == 0 and look.cursor is None and not look.held:
                look.window_from_ms = now_ms - WINDOW_MS
        self._checked_at = time.monotonic()

    def seconds_to_next_look(self) -> float:
        """How long the worker may block before its next look: 0 while one has steps left."""
        if any(look.under_way for look in self.looks.values()):
            return 0.0
        return max(0.0, self._checked_at + LOOK_EVERY_S - time.monotonic())

    def look_due(self) -> bool:
        return self.seconds_to_next_look() == 0.0

    async def look(self, *, check: bool = False) -> bool:
        """Read the differences unless just read (always with ``check``), then look for foreign jobs where
        they say there are some, a full pass one bounded step at a time. True when jobs were adopted."""
        if check or time.monotonic() - self._checked_at >= LOOK_EVERY_S:
            self._note(await self._differences(args=list(self.looks)))
        adopted = 0
        for look in self.looks.values():
            adopted += await self._look_at(look)
        return adopted > 0

    async def _look_at(self, look: QueueLook) -> int:
        adopted = 0
        if look.held:
            if time.monotonic() < look.held_until:
                return 0
            adopted += await self._take_in(look, list(look.held.values()))
            if look.held:  # still over the quota: finding more would only hold more
                look.held_until = time.monotonic() + LOOK_EVERY_S
                return adopted
        if look.cursor is None:
            if look.unexplained == 0:
                return adopted
            found = await self._window(look)
            if found is None or look.held or look.unexplained == 0:  # busy elsewhere, or accounted for
                return adopted + (found or 0)
            adopted += found
            look.cursor, look.pass_difference, look.pass_found = "0", None, 0
        return adopted + await self._pass_step(look)

    async def _window(self, look: QueueLook) -> int | None:
        """Read the entries due from the last look's time to a little ahead of now: the new arrivals.
        How many were adopted; None when another worker is looking at the queue."""
        lowest, highest, offset, adopted = look.window_from_ms, None, 0, 0
        while True:
            args = ["" if lowest is None else lowest, "" if highest is None else highest, WINDOW_MS, offset]
            reply = await self._find_step(look, "window", *args)
            if reply is None:
                return None if adopted == 0 else adopted
            lowest, highest = reply.lowest, reply.highest
            adopted += await self._take_in(look, [self.rules.examine(found) for found in reply.found])
            if not reply.following or look.held:
                break
            offset = int(reply.following)
        if not look.held and highest is not None:
            look.window_from_ms = highest - 2 * WINDOW_MS  # WINDOW_MS before the moment it was read
        return adopted

    async def _pass_step(self, look: QueueLook) -> int:
        """One step of a full pass over the queue, for what no window sees (due far ahead, or long ago)."""
        reply = await self._find_step(look, "scan", look.cursor or "0")
        if reply is None:
            look.cursor = None
            return 0
        if look.pass_difference is None:
            look.pass_difference = reply.difference
        adopted = await self._take_in(look, [self.rules.examine(found) for found in reply.found])
        if not reply.following:
            if look.pass_found == 0:  # nothing foreign anywhere: what is left of the difference is drift
                look.drift = look.pass_difference
            look.cursor = None
        elif look.held or look.unexplained == 0:
            look.cursor = None  # all accounted for: the rest of the queue need not be read
        else:
            look.cursor = reply.following
        return adopted

    async def _find_step(self, look: QueueLook, mode: str, *args: str | int) -> FindReply | None:
        raw = await self._find(args=[look.queue, self.worker_id, LOCK_MS, STEP_ENTRIES, mode, *args])
        reply = decode_find_foreign(raw, look.queue)
        if reply is not None:
            look.difference = reply.difference
            look.pass_found += reply.counted + len(reply.found)
        return reply

    async def _take_in(self, look: QueueLook, intakes: Sequence[Intake]) -> int:
        """Adopt or end the jobs judged, in one script; those the tenant's quota holds back are held."""
        if not intakes:
            return 0
        outcomes, look.difference = await take_in(
            self._adopt, intakes, self.rules.producers.quotas, queue=look.queue
        )
        adopted = 0
        never: list[Intake] = []
        for intake, outcome in zip(intakes, outcomes, strict=True):
            if outcome in HELD_BACK:
                if len(look.held) < MAX_HELD:
                    look.held[intake.found.job_id] = intake
                continue
            look.held.pop(intake.found.job_id, None)
            adopted += outcome == "adopted"
            if outcome in NEVER_ALLOWED:
                never.append(self.rules.failure(intake.found, "NotAllowedForTenant", NEVER_ALLOWED[outcome]))
        if never:
            _, look.difference = await take_in(self._adopt, never, None, queue=look.queue)
        if adopted:
            logger.debug("adopted %d job(s) from ARQ producers in queue %s", adopted, look.queue)
        return adopted


async def refuse_in_unknown_queues(redis: Redis, *, result_retention_s: int) -> int:
    """End the jobs ARQ's producers put in ARQ queues that are none of jobsvc's (a mistyped
    ``_queue_name``), which no worker ever looks at; how many. ``maintenance.cleanup`` runs it."""
    ours = {keys.arq_queue(name).encode() for name in QUEUE_NAMES}
    adopt = redis.register_script(scripts.ADOPT_FOREIGN)
    refused = 0
    async for key in redis.scan_iter(match=keys.ARQ_NAMED_QUEUE_PATTERN, count=200, _type="zset"):
        if key in ours:
            continue
        arq_key = key.decode()
        while entries := await redis.zrange(arq_key, 0, STEP_ENTRIES - 1, withscores=True):
            records = await redis.mget([keys.arq_job(job_id.decode()) for job_id, _ in entries])
            intakes = [
                refusal_of_unknown_queue(
                    Foreign(job_id.decode(), "", arq_key, int(due), record or b"", -1),
                    result_retention_s=result_retention_s,
                )
                for (job_id, due), record in zip(entries, records, strict=True)
            ]
            outcomes, _ = await take_in(adopt, intakes, None)
            if "refused" not in outcomes:
                break
            refused += outcomes.count("refused")
    return refused
