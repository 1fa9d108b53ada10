"""Progress a running job reports, kept beside the job so the API can show it."""

from __future__ import annotations

import json
import logging

from jobs.engine.connection import REDIS_ERRORS, redis_unavailable
from jobs.engine.queue_ops import JobQueues

logger = logging.getLogger("jobsvc.jobs")


class ProgressReporter:
    """Writes ``{"current", "total", "message"}`` into the job's record and its tenant's event stream,
    as the attempt holding ``lease_token`` (reports of jobs that run together share round trips)."""

    def __init__(self, queues: JobQueues, job_id: str, lease_token: str = "") -> None:
        self._queues = queues
        self._job_id = job_id
        self._lease_token = lease_token

    async def report(self, current: int, total: int | None = None, message: str | None = None) -> None:
        """Best effort: while Redis is unavailable the report is dropped, never the job."""
        value = json.dumps({"current": current, "total": total, "message": message})
        try:
            await self._queues.report_progress(self._job_id, value, self._lease_token)
        except REDIS_ERRORS as exc:
            if not redis_unavailable(exc):
                raise
            logger.warning(
                "progress of job %s not recorded: redis unavailable (%s)", self._job_id, type(exc).__name__
            )
