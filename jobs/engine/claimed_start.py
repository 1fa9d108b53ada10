"""Starting a claimed job without a round trip.

ARQ's ``Worker.run_job`` opens with one transaction before the job runs: it reads the job's record,
counts the attempt (``INCR`` and ``EXPIRE`` of ``arq:retry:<id>``) and takes the job out of the abort set.
jobsvc's claim script does exactly that for every job it claims, in the claim's own round trip, so
``run_job`` gets those replies from the claim: the worker sets :data:`claimed_start` in the context of the
job's ``run_job`` task, and its ``pool`` property answers the first ``pool`` access there with a
:class:`ClaimedStartPipeline` instead of the real pool. That keeps ARQ's ``run_job`` whole (its expiry,
abort, max-tries and retry handling) and removes a third of a job's round trips.

The stand-in accepts only the commands ARQ 0.28 sends there, in that order, and raises otherwise: a
change in ARQ's ``run_job`` fails every job at once (and every job test) rather than quietly.
"""

from __future__ import annotations

import contextvars
from typing import Any

from arq.constants import abort_jobs_ss, job_key_prefix, retry_key_prefix

from jobs.engine.queue_ops import ClaimedStart

#: in a job's ``run_job`` task until its first use: the job's id and what its claim read for it
claimed_start: contextvars.ContextVar[tuple[str, ClaimedStart] | None] = contextvars.ContextVar(
    "jobsvc_claimed_start", default=None
)


class ClaimedStartPipeline:
    """Stands in for the pool, and then the transaction, of ``run_job``'s first round trip."""

    def __init__(self, job_id: str, start: ClaimedStart) -> None:
        self._start = start
        self._sent: list[tuple[str, str]] = []
        self._expected = [
            ("get", job_key_prefix + job_id),
            ("incr", retry_key_prefix + job_id),
            ("expire", retry_key_prefix + job_id),
            ("zrem", abort_jobs_ss),
        ]

    def pipeline(self, transaction: bool = True) -> ClaimedStartPipeline:
        if not transaction:
            raise RuntimeError("run_job's first round trip is a transaction in ARQ 0.28")
        return self

    async def __aenter__(self) -> ClaimedStartPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def get(self, name: str) -> ClaimedStartPipeline:
        self._sent.append(("get", name))
        return self

    def incr(self, name: str, amount: int = 1) -> ClaimedStartPipeline:
        self._sent.append(("incr" if amount == 1 else "incrby", name))
        return self

    def expire(self, name: str, time: int) -> ClaimedStartPipeline:
        self._sent.append(("expire", name))
        return self

    def zrem(self, name: str, *values: str) -> ClaimedStartPipeline:
        self._sent.append(("zrem", name))
        return self

    async def execute(self) -> list[Any]:
        """The replies ARQ expects, in order: the record, the attempt, EXPIRE's True, ZREM's count."""
        if len(self._sent) < 3 or self._sent != self._expected[: len(self._sent)]:
            raise RuntimeError(f"ARQ's run_job sent {self._sent}, not the start the claim read for it")
        replies: list[Any] = [self._start.record, self._start.job_try, True, int(self._start.aborted)]
        return replies[: len(self._sent)]
