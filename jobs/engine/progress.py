"""Progress a running job reports, kept beside the job so the API can show it."""

from __future__ import annotations

import json
import logging

from redis.asyncio import Redis

from jobs.engine import lua as scripts
from jobs.engine.connection import REDIS_DOWN
from jobs.engine.queue_ops import decode_report_progress

logger = logging.getLogger("jobsvc.jobs")


class ProgressReporter:
    """Writes ``{"current", "total", "message"}`` into the job's record and its tenant's event stream."""

    def __init__(self, redis: Redis, job_id: str, lease_token: str = "") -> None:
        self._redis = redis
        self._job_id = job_id
        self._lease_token = lease_token
        self._report = redis.register_script(scripts.REPORT_PROGRESS)

    async def report(self, current: int, total: int | None = None, message: str | None = None) -> None:
        """Best effort: while Redis is unavailable the report is dropped, never the job."""
        value = json.dumps({"current": current, "total": total, "message": message})
        try:
            decode_report_progress(await self._report(args=[self._job_id, value, self._lease_token]))
        except REDIS_DOWN as exc:
            logger.warning(
                "progress of job %s not recorded: redis unavailable (%s)", self._job_id, type(exc).__name__
            )
