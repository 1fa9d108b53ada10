"""The job types and schedules this service runs: explicit lists, looked up by their stable names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arq.cron import CronJob

from jobs.catalogue import diag, email, images, reports, webhooks
from jobs.definition import JobType
from jobs.engine import housekeeping as maintenance
from jobs.engine.cron import arq_cron
from jobs.engine.runner import arq_function
from jobs.schedules import Schedule

AnyJobType = JobType[Any, Any]

CORE_TYPES: tuple[AnyJobType, ...] = (
    maintenance.cleanup,
    images.thumbnail,
    reports.build_report,
    email.send_email,
    webhooks.deliver_webhook,
)

SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        name="cleanup",
        job_type=maintenance.cleanup.name,
        cron="*/30 * * * *",
        description="Prunes listing indexes and abort requests every 30 minutes.",
    ),
    Schedule(
        name="nightly-report",
        job_type=reports.build_report.name,
        cron="0 2 * * *",
        params={"since_minutes": 1440},
        priority=3,
        description="Yesterday's jobs per type and status, every night at 02:00 UTC.",
    ),
)


def job_types(*, diagnostics: bool) -> Mapping[str, AnyJobType]:
    """Name -> job type; the diag.* types only when diagnostics are on."""
    chosen = CORE_TYPES + (diag.DIAGNOSTIC_TYPES if diagnostics else ())
    return {jt.name: jt for jt in chosen}


def schedules() -> Mapping[str, Schedule]:
    return {schedule.name: schedule for schedule in SCHEDULES}


def cron_jobs(job_types_by_name: Mapping[str, AnyJobType]) -> list[CronJob]:
    """The schedules as ARQ ``CronJob``s for ``WorkerSettings.cron_jobs``."""
    return [arq_cron(s, arq_function(job_types_by_name[s.job_type]).coroutine) for s in SCHEDULES]
