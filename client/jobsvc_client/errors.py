"""Every error the client raises is a :class:`JobsvcError`::

    JobsvcError                  anything this client raises
    ├── TransportError           no answer: connect, timeout or protocol failure (wraps httpx.RequestError)
    ├── UnexpectedAnswer         a success status whose body is not what the API documents
    ├── JobTimeout               wait() ran out of time; .job is the job as last seen
    └── ApiError                 the service answered with an error; .status, .problem, .retry_after
        ├── Unauthorized         401  missing or unknown API key
        ├── Forbidden            403  the key lacks the scope
        ├── NotFound             404  unknown job, dead letter, key or job type
        ├── Conflict             409  cancelling a finished job; an Idempotency-Key reused with another body
        ├── PayloadTooLarge      413  the request body is over the service's limit
        ├── ValidationFailed     422  .errors point at the offending fields
        ├── RateLimited          429  wait .retry_after seconds
        └── ServiceUnavailable   503  Redis does not answer, or no worker is alive; try again shortly

Other error statuses (400, 500, a proxy's 502) raise :class:`ApiError` itself. Bodies that are not
``application/problem+json`` still become a :class:`~jobsvc_client.models.Problem`, built from the
status line.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import ValidationError

from jobsvc_client.models import FieldProblem, Job, Problem

__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "JobTimeout",
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

#: how much of a body that is not a problem an error message quotes
QUOTED_CHARS = 500


class JobsvcError(Exception):
    """Base of every error this client raises."""


class TransportError(JobsvcError):
    """The request got no answer: the service is unreachable, too slow, or spoke broken HTTP."""


class UnexpectedAnswer(JobsvcError):
    """The service answered with success, but its body is not what the API documents (a proxy's login
    page, another service on that port)."""


class JobTimeout(JobsvcError):
    """``wait()`` ran out of time before the job finished; ``job`` is its last state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status.value} after {timeout:g} s")
        self.job = job


class ApiError(JobsvcError):
    """The service answered with an error status; ``problem`` holds its RFC 9457 details."""

    def __init__(self, status: int, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {problem.title}: {problem.detail}")
        self.status = status
        self.problem = problem
        #: seconds from the Retry-After header, when the service sent one (429, 503)
        self.retry_after = retry_after


class Unauthorized(ApiError):
    """401: the API key is missing or unknown."""


class Forbidden(ApiError):
    """403: the API key lacks the scope this call needs."""


class NotFound(ApiError):
    """404: no such job (or not this tenant's), dead letter, key or job type."""


class Conflict(ApiError):
    """409: the job's state does not allow it, or the Idempotency-Key was used with another body."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the service's limit."""


class ValidationFailed(ApiError):
    """422: the request failed validation; ``errors`` point at each offending field."""

    @property
    def errors(self) -> list[FieldProblem]:
        return self.problem.errors or []


class RateLimited(ApiError):
    """429: too many requests; try again after ``retry_after`` seconds."""


class ServiceUnavailable(ApiError):
    """503: the service cannot reach its store, or has no live worker; try again shortly."""


_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def _problem_of(response: httpx.Response) -> Problem:
    """The response's problem details; a body that is not one becomes a problem named by the status line."""
    status = response.status_code
    title = response.reason_phrase or "HTTP error"
    try:
        body: Any = response.json()
    except ValueError:  # not JSON, or not UTF-8
        body = None
    if isinstance(body, dict):
        try:
            return Problem.model_validate(
                {"type": "about:blank", "title": title, "status": status, "detail": title, **body}
            )
        except ValidationError:
            return Problem(type="about:blank", title=title, status=status, detail=_quote(body))
    text = response.text.strip()[:QUOTED_CHARS] if body is None else _quote(body)
    return Problem(type="about:blank", title=title, status=status, detail=text or title)


def _quote(body: Any) -> str:
    return json.dumps(body)[:QUOTED_CHARS]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:  # absent, or an HTTP date: rare enough to leave to the caller
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` subclass for an error response (already read), its problem from the body."""
    kind = _ERRORS_BY_STATUS.get(response.status_code, ApiError)
    return kind(response.status_code, _problem_of(response), retry_after=_retry_after(response))
