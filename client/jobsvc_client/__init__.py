"""A Python client of the jobsvc REST API, sync and async, over httpx; it needs nothing of the server::

    from jobsvc_client import JobsClient

    with JobsClient("http://127.0.0.1:8000", api_key="...") as jobs:
        job = jobs.submit("report.build", {"since_minutes": 60})
        done = jobs.wait(job.id, timeout=120)

:class:`AsyncJobsClient` has the same methods, to await. Answers are the models of
:mod:`jobsvc_client.models`; errors are the tree drawn in :mod:`jobsvc_client.errors`.
"""

from jobsvc_client._async import AsyncJobsClient
from jobsvc_client._core import DEFAULT_URL
from jobsvc_client._operations import OPERATIONS
from jobsvc_client._sync import JobsClient
from jobsvc_client.errors import (
    ApiError,
    Conflict,
    Forbidden,
    JobsvcError,
    JobTimeout,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnexpectedAnswer,
    ValidationFailed,
)
from jobsvc_client.models import TERMINAL_STATUSES, Backoff, Job, JobEvent, JobStatus, JobSubmit

__all__ = [
    "DEFAULT_URL",
    "OPERATIONS",
    "TERMINAL_STATUSES",
    "ApiError",
    "AsyncJobsClient",
    "Backoff",
    "Conflict",
    "Forbidden",
    "Job",
    "JobEvent",
    "JobStatus",
    "JobSubmit",
    "JobTimeout",
    "JobsClient",
    "JobsvcError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "UnexpectedAnswer",
    "ValidationFailed",
]
