"""``report.build``: what the tenant's jobs did in a recent window, per job type and status, with durations.

It reads the listing index (job ids scored by creation ms) a batch at a time and the jobs' own records
by id; never ``KEYS``. Jobs whose records have expired are gone from the report as from the API.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from redis.asyncio import Redis

from jobs import keys
from jobs.base import Ctx, job_type
from jobs.state import JobSnapshot, JobStatus, read_snapshots

BATCH = 500
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
    redis, tenant = ctx["redis"], ctx["tenant"]
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - params.since_minutes * 60_000
    wanted = set(params.types) if params.types is not None else None
    expected = await redis.zcount(keys.index_all(tenant), start_ms, end_ms)
    statuses: dict[str, Counter[JobStatus]] = {}
    durations: dict[str, list[int]] = {}
    read = 0
    async for job_ids in _ids_created_between(redis, keys.index_all(tenant), start_ms, end_ms):
        for snapshot in await read_snapshots(redis, job_ids):
            if snapshot is None or snapshot.id == ctx["job_id"]:
                continue
            if wanted is not None and snapshot.type not in wanted:
                continue
            statuses.setdefault(snapshot.type, Counter())[snapshot.status] += 1
            duration = _duration_ms(snapshot)
            if duration is not None:
                durations.setdefault(snapshot.type, []).append(duration)
        read += len(job_ids)
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


async def _ids_created_between(
    redis: Redis, index: str, low_ms: int, high_ms: int
) -> AsyncIterator[list[str]]:
    """Batches of ids, oldest first. Pages by score rather than by rank, so entries the cleanup removes
    meanwhile shift nothing; ``skip`` steps over the ids already read that share the last score."""
    low, skip = low_ms, 0
    while True:
        rows = await redis.zrangebyscore(index, low, high_ms, start=skip, num=BATCH, withscores=True)
        if not rows:
            return
        yield [member.decode() for member, _ in rows]
        if len(rows) < BATCH:
            return
        last = int(rows[-1][1])
        tied = sum(1 for _, score in rows if int(score) == last)
        skip = skip + tied if last == low else tied
        low = last


def _duration_ms(snapshot: JobSnapshot) -> int | None:
    """How long a finished job ran; None for one still waiting or running, or cancelled before it started."""
    if not snapshot.is_finished or not snapshot.started_at or snapshot.finished_at is None:
        return None
    return max(0, snapshot.finished_at - snapshot.started_at)


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
