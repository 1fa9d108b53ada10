"""Schedules: job types run on a cron expression, by the workers, exactly once per tick.

A :class:`Schedule` is declared beside its job type and becomes one of ``WorkerSettings.cron_jobs`` (ARQ's
``CronJob`` computes the ticks: ``jobs.engine.cron``). Every worker looks at every schedule, as ARQ's do, but
a tick is enqueued by one server-side script that records the tick, so it becomes exactly one ordinary job
however many workers race for it; a schedule that may not overlap skips a tick while its previous run still
waits or runs. Times are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: field name, lowest and highest value, for the fields of a cron expression (seconds optional, first)
_SECOND = ("second", 0, 59)
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 6))
SCHEDULE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def parse_cron(expression: str) -> dict[str, set[int] | None]:
    """``"*/30 * * * *"`` -> ARQ's ``cron()`` keywords (None where every value matches).

    Five fields (minute hour day month weekday), or six with seconds first. Supports numbers, ``*``,
    ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists ``a,b``; weekday 0 is Monday, as in ARQ (and
    unlike classic cron, where 0 is Sunday)."""
    parts = expression.split()
    fields = (_SECOND, *_FIELDS) if len(parts) == len(_FIELDS) + 1 else _FIELDS
    if len(parts) != len(fields):
        raise ValueError(
            f"{expression!r}: a cron expression has 5 fields (minute hour day month weekday), "
            "or 6 with seconds first"
        )
    parsed: dict[str, set[int] | None] = {"second": {0}}
    for text, (name, low, high) in zip(parts, fields, strict=True):
        if text == "*":
            parsed[name] = None
            continue
        values: set[int] = set()
        for item in text.split(","):
            span, _, step_text = item.partition("/")
            step = int(step_text) if step_text else 1
            if span == "*":
                first, last = low, high
            elif "-" in span:
                first_text, _, last_text = span.partition("-")
                first, last = int(first_text), int(last_text)
            else:
                first = last = int(span)
            if not (low <= first <= last <= high) or step < 1:
                raise ValueError(f"{expression!r}: {name} {item!r} is outside {low}-{high}")
            values.update(range(first, last + 1, step))
        parsed[name] = values
    return parsed


@dataclass(frozen=True)
class Schedule:
    """Run ``job_type`` with ``params`` on the cron expression ``cron`` (UTC)."""

    name: str
    job_type: str
    cron: str
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 5
    #: whether a tick may start while the previous run still waits or runs (False: that tick is skipped)
    overlap: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not SCHEDULE_NAME.match(self.name):
            raise ValueError(f"schedule name {self.name!r} must match {SCHEDULE_NAME.pattern}")
        parse_cron(self.cron)

    def job_id(self, tick: datetime) -> str:
        """The job of one tick: the same id on every worker."""
        return f"cron:{self.name}:{int(tick.timestamp() * 1000)}"
