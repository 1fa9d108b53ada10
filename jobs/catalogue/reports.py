"""``report.build``: what the tenant's jobs did in a recent window, per job type and status, with durations.

It reads the tenant's jobs a batch at a time through ``ctx["history"]`` (the listing index, scored by
creation ms, and the jobs' own records by id; never ``KEYS``). Jobs whose records have expired are gone
from the report as from the API.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from jobs.context import Ctx, PastJob
from jobs.definition import job_type
from jobs.status import TERMINAL_STATUSES, JobStatus

JobTypeName = Annotated[str, Field(max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since_minutes: int = Field(60, ge=1, le=10_080, description="The window: jobs created this recently.")
    types: list[JobTypeName] | None = Field(
        None, max_length=50, description="Only these job types; all when absent."
    )


class DurationStats(BaseModel):
    """Run times (finished_at - started_at, ms) of the jobs that ran to an end; null when none did."""

    count: int
    p50: int | None
    p95: int | None
    max: int | None


class TypeReport(BaseModel):
    total: int
    by_status: dict[JobStatus, int] = Field(description="Every status, zeros included.")
    duration_ms: DurationStats


class Report(BaseModel):
    window_start: Timestamp
    window_end: Timestamp
    total: int
    by_type: dict[str, TypeReport] = Field(description="Only types with jobs in the window.")


@job_type(
    "report.build",
    description="Counts the jobs created in a recent window by type and status, with run-time percentiles.",
    timeout_s=600,
)
async def build_report(ctx: Ctx, params: ReportParams) -> Report:
    history = ctx["history"]
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - params.since_minutes * 60_000
    wanted = set(params.types) if params.types is not None else None
    expected = await history.count_created_between(start_ms, end_ms)
    statuses: dict[str, Counter[JobStatus]] = {}
    durations: dict[str, list[int]] = {}
    read = 0
    async for batch in history.created_between(start_ms, end_ms):
        for job in batch.jobs:
            if job.id == ctx["job_id"]:
                continue
            if wanted is not None and job.type not in wanted:
                continue
            statuses.setdefault(job.type, Counter())[job.status] += 1
            duration = _duration_ms(job)
            if duration is not None:
                durations.setdefault(job.type, []).append(duration)
        read += batch.entries_read
        await ctx["progress"].report(read, max(read, expected), f"read {read} jobs")
    by_type = {
        name: TypeReport(
            total=counts.total(),
            by_status={status: counts[status] for status in JobStatus},
            duration_ms=_stats(durations.get(name, [])),
        )
        for name, counts in sorted(statuses.items())
    }
    return Report(
        window_start=datetime.fromtimestamp(start_ms / 1000, UTC),
        window_end=datetime.fromtimestamp(end_ms / 1000, UTC),
        total=sum(report.total for report in by_type.values()),
        by_type=by_type,
    )


def _duration_ms(job: PastJob) -> int | None:
    """How long a finished job ran; None for one still waiting or running, or cancelled before it started."""
    if job.status not in TERMINAL_STATUSES or not job.started_at or job.finished_at is None:
        return None
    return max(0, job.finished_at - job.started_at)


def _stats(values: list[int]) -> DurationStats:
    if not values:
        return DurationStats(count=0, p50=None, p95=None, max=None)
    ordered = sorted(values)
    return DurationStats(
        count=len(ordered),
        p50=_nearest_rank(ordered, 50),
        p95=_nearest_rank(ordered, 95),
        max=ordered[-1],
    )


def _nearest_rank(ordered: list[int], percentile: int) -> int:
    """The smallest value with at least ``percentile`` % of the values at or below it."""
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]
