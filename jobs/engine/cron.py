"""Schedules on ARQ's cron: ARQ's ``CronJob`` computes the ticks, the worker enqueues each one once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq.cron import CronJob, cron

from jobs.schedules import Schedule, parse_cron


def arq_cron(schedule: Schedule, coroutine: Any) -> CronJob:
    """The schedule as ARQ's ``CronJob``: ARQ's worker computes its ticks, jobsvc's engine enqueues."""
    fields = parse_cron(schedule.cron)
    return cron(
        coroutine,
        name=schedule.name,
        month=fields["month"],
        day=fields["day"],
        weekday=fields["weekday"],
        hour=fields["hour"],
        minute=fields["minute"],
        second=fields["second"],
        microsecond=0,
        run_at_startup=False,
    )


def next_run(schedule: Schedule, after: datetime | None = None) -> datetime:
    """The first tick after ``after`` (default now), UTC."""
    probe = arq_cron(schedule, _never_called)
    probe.calculate_next((after or datetime.now(UTC)).astimezone(UTC))
    assert probe.next_run is not None
    return probe.next_run


async def _never_called(ctx: dict[str, Any]) -> None:  # pragma: no cover - only used to compute ticks
    raise AssertionError("a schedule probe is never run")
