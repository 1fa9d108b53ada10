"""An async Python client of the jobsvc REST API, over httpx. It needs neither FastAPI nor the server::

    async with JobsClient("http://127.0.0.1:8000", api_key="...") as jobs:
        job = await jobs.submit("reports.build", {"month": "2025-01"})
        done = await jobs.wait(job.id, timeout=120)

Every error it raises is a :class:`JobsvcError`::

    JobsvcError                  anything this client raises
    ├── TransportError           no answer: connect, timeout or protocol failure (wraps httpx.RequestError)
    ├── JobTimeout               wait() ran out of time; .job is the job as last seen
    └── ApiError                 the service answered with an error; .status, .problem, .retry_after
        ├── Unauthorized         401  missing or unknown API key
        ├── Forbidden            403  the key lacks the scope
        ├── NotFound             404  unknown job or job type
        ├── Conflict             409  cancelling a finished job; an Idempotency-Key reused with another body
        ├── PayloadTooLarge      413  the request body is over the service's limit
        ├── ValidationFailed     422  .errors point at the offending fields
        ├── RateLimited          429  wait .retry_after seconds
        └── ServiceUnavailable   503  Redis does not answer; try again shortly

Other error statuses (400, 500, a proxy's 502) raise :class:`ApiError` itself. Bodies that are not
``application/problem+json`` still become a :class:`~service.api.schemas.Problem`, built from the status
line.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from jobs.status import TERMINAL_STATUSES, JobStatus
from service.api.schemas import (
    ApiKeyList,
    FieldProblem,
    Job,
    JobList,
    JobTypeList,
    NewApiKey,
    Problem,
    rfc3339,
)

__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "JobTimeout",
    "JobsClient",
    "JobsvcError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
]

DEFAULT_URL = "http://127.0.0.1:8000"
#: the longest ``?wait=`` the API accepts; wait() asks again until its own timeout passes
MAX_WAIT_S = 60.0
#: pause before asking again when a server answered a wait early without the job having finished
EARLY_ANSWER_PAUSE_S = 0.25

M = TypeVar("M", bound=BaseModel)


class JobsvcError(Exception):
    """Base of every error this client raises."""


class TransportError(JobsvcError):
    """The request got no answer: the service is unreachable, too slow, or spoke broken HTTP."""


class JobTimeout(JobsvcError):
    """:meth:`JobsClient.wait` ran out of time before the job finished; ``job`` is its last state."""

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
    """404: no such job (or not this tenant's), or no such job type."""


class Conflict(ApiError):
    """409: the job had already finished, or the Idempotency-Key was used with another body."""


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
    """503: the service cannot reach its store right now; try again shortly."""


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
            return Problem(type="about:blank", title=title, status=status, detail=json.dumps(body)[:500])
    text = response.text.strip()[:500] if body is None else json.dumps(body)[:500]
    return Problem(type="about:blank", title=title, status=status, detail=text or title)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:  # absent, or an HTTP date: rare enough to leave to the caller
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` subclass for an error response, its problem read from the body."""
    kind = _ERRORS_BY_STATUS.get(response.status_code, ApiError)
    return kind(response.status_code, _problem_of(response), retry_after=_retry_after(response))


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}"


class JobsClient:
    """Submit, read, wait for, cancel and list jobs of one jobsvc service. Use it as an async context
    manager, or call :meth:`aclose` when done."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json, application/problem+json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(
        self,
        job_type: str,
        params: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Enqueue a job. With ``idempotency_key``, the same key and body again return the first job."""
        if run_at is not None and run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")
        body: dict[str, Any] = {"type": job_type, "params": params or {}}
        options = {"queue": queue, "priority": priority, "delay_seconds": delay_seconds}
        options |= {"max_attempts": max_attempts, "run_at": rfc3339(run_at) if run_at else None}
        body |= {name: value for name, value in options.items() if value is not None}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._request("POST", "/v1/jobs", json=body, headers=headers)
        return _parse(Job, response)

    async def get(self, job_id: str) -> Job:
        return _parse(Job, await self._request("GET", _job_path(job_id)))

    # a timeout parameter, not asyncio.timeout(): running out of time returns the job, inside JobTimeout
    async def wait(self, job_id: str, timeout: float = 60) -> Job:  # noqa: ASYNC109
        """The job once it has finished; :class:`JobTimeout` (with the job) if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            hold = round(min(max(0.0, deadline - time.monotonic()), MAX_WAIT_S), 3)
            asked_at = time.monotonic()
            response = await self._request(
                "GET",
                _job_path(job_id),
                params={"wait": hold} if hold > 0 else None,
                timeout_s=self._timeout + hold,
            )
            job = _parse(Job, response)
            if job.status in TERMINAL_STATUSES:
                return job
            now = time.monotonic()
            if now >= deadline:
                raise JobTimeout(job, timeout)
            if now - asked_at < hold / 2:  # a server with a shorter wait limit: don't spin
                await asyncio.sleep(min(EARLY_ANSWER_PAUSE_S, deadline - now))

    async def cancel(self, job_id: str) -> Job:
        """Cancel: a waiting job never starts, a running one is aborted; :class:`Conflict` if it had ended."""
        return _parse(Job, await self._request("DELETE", _job_path(job_id)))

    async def list(
        self,
        *,
        status: JobStatus | str | None = None,
        type: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobList:
        """One page of jobs, newest first; pass its ``next_cursor`` as ``cursor`` for the next."""
        query: dict[str, str | int] = {"limit": limit}
        for name, value in (("status", status), ("type", type), ("queue", queue), ("cursor", cursor)):
            if value is not None:
                query[name] = str(value)
        return _parse(JobList, await self._request("GET", "/v1/jobs", params=query))

    async def iter_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        type: str | None = None,
        queue: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Every matching job, newest first, fetching ``page_size`` at a time."""
        cursor: str | None = None
        while True:
            page = await self.list(status=status, type=type, queue=queue, limit=page_size, cursor=cursor)
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def job_types(self) -> JobTypeList:
        """The catalogue: each job type with its queue, limits and params and result JSON Schemas."""
        return _parse(JobTypeList, await self._request("GET", "/v1/job-types"))

    async def create_key(self, tenant: str, scopes: Sequence[str], *, name: str = "") -> NewApiKey:
        """A new API key (admin scope); its ``key`` is in this answer only."""
        body = {"tenant": tenant, "scopes": [*scopes], "name": name}
        return _parse(NewApiKey, await self._request("POST", "/v1/admin/keys", json=body))

    async def list_keys(self) -> ApiKeyList:
        return _parse(ApiKeyList, await self._request("GET", "/v1/admin/keys"))

    async def revoke_key(self, key_id: str) -> None:
        await self._request("DELETE", f"/v1/admin/keys/{quote(key_id, safe='')}")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.RequestError as exc:
            reason = str(exc) or type(exc).__name__
            raise TransportError(f"{method} {path} at {self._http.base_url}: {reason}") from exc
        if response.is_error:
            raise error_from_response(response)
        return response


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise JobsvcError(
            f"{response.request.method} {response.request.url} answered {response.status_code} "
            f"with a body that is not a {model.__name__}"
        ) from exc
