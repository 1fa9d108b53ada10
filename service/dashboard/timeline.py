"""A job's attempts as one timeline: the failed ones the worker recorded, then the last one as it ended
(or runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.engine.records import JobSnapshot
from jobs.status import JobStatus


@dataclass(frozen=True)
class AttemptStep:
    number: int
    #: ``failed``, ``succeeded``, ``running``, ``cancelled`` or ``lost`` (its worker died)
    outcome: str
    started_at: int | None
    finished_at: int | None
    error: dict[str, str] | None


def timeline(job: JobSnapshot, recorded: list[dict[str, Any]]) -> list[AttemptStep]:
    """Every attempt, oldest first, from the attempt records and the job's own state."""
    steps: dict[int, AttemptStep] = {}
    for record in recorded:
        number = int(record.get("attempt") or 0)
        error = record.get("error") or None
        lost = isinstance(error, dict) and error.get("type") == "WorkerLost"
        steps[number] = AttemptStep(
            number=number,
            outcome="lost" if lost else "failed",
            started_at=record.get("started_at"),
            finished_at=record.get("finished_at"),
            error=error,
        )
    last = job.attempts
    if last and last not in steps:
        outcome = {
            JobStatus.succeeded: "succeeded",
            JobStatus.in_progress: "running",
            JobStatus.cancelled: "cancelled",
            JobStatus.failed: "failed",
        }.get(job.status)
        if outcome is not None:
            steps[last] = AttemptStep(
                number=last,
                outcome=outcome,
                started_at=job.started_at,
                finished_at=job.finished_at,
                error=job.error if outcome in ("failed", "cancelled") else None,
            )
    return [steps[n] for n in sorted(steps)]
