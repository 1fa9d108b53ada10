"""What a job author imports: declare a job type, type its context, say how it fails and is limited.

::

    from jobs import Ctx, job_type

    @job_type("email.send", timeout_s=60)
    async def send_email(ctx: Ctx, params: EmailParams) -> EmailResult: ...

This package and its modules need only the standard library and Pydantic; they never import the
engine (``jobs.engine``), which runs the types, nor the types jobsvc ships (``jobs.catalogue``), which
only ``jobs.registry`` collects.
"""

from jobs.context import Ctx, HistoryBatch, JobHistory, JobsConfig, PastJob, Progress
from jobs.definition import MAX_ATTEMPTS_LIMIT, JobType, RetryPolicy, job_type
from jobs.errors import JobError, JobTimeoutError, PermanentJobError, RetryableJobError
from jobs.limits import Limit
from jobs.queues import DEFAULT_QUEUE, QUEUE_NAMES, QUEUES
from jobs.schedules import Schedule
from jobs.status import TERMINAL_STATUSES, JobStatus

__all__ = [
    "DEFAULT_QUEUE",
    "MAX_ATTEMPTS_LIMIT",
    "QUEUES",
    "QUEUE_NAMES",
    "TERMINAL_STATUSES",
    "Ctx",
    "HistoryBatch",
    "JobError",
    "JobHistory",
    "JobStatus",
    "JobTimeoutError",
    "JobType",
    "JobsConfig",
    "Limit",
    "PastJob",
    "PermanentJobError",
    "Progress",
    "RetryPolicy",
    "RetryableJobError",
    "Schedule",
    "job_type",
]
