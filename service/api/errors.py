"""The service's errors, each answered once, as ``application/problem+json`` (RFC 9457).

    ServiceError                 a problem with a status, a title and a detail
    ├── JobNotFound              404  no job with this id (or not yours)
    ├── UnknownJobType           404  no job type with this name
    ├── UnknownQueue             404  no queue with this name
    ├── DeadLetterNotFound       404  no dead letter with this id
    ├── IdempotencyConflict      409  the Idempotency-Key was used with another body
    ├── JobAlreadyFinished       409  the job ended before it could be cancelled
    ├── JobNotRetryable          409  the job cannot run again (not failed or cancelled, already retried)
    ├── PayloadTooLarge          413  the body is over the configured limit
    ├── NotAllowedForTenant      403  a queue or a priority the tenant may not use
    ├── QuotaExceeded            429  over the tenant's submits per second or open jobs
    ├── StorageBudgetExceeded    429  the tenant keeps as many jobs or bytes as its budget allows
    ├── LargerThanBudget         413  one submit is larger than the tenant's whole storage budget
    ├── InvalidRequest           400  a parameter that is not well-formed (e.g. a cursor)
    └── ServiceUnavailable       503  Redis does not answer, or no worker is alive

FastAPI's validation errors become 422 with an ``errors`` list (400 for a body that is not JSON);
Starlette's HTTP errors keep their status; anything else is a 500 that never shows a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobs.engine.connection import redis_unavailable
from jobs.engine.queue_ops import ReplicasBehind

logger = logging.getLogger("jobsvc.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


class ServiceError(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class JobNotFound(ServiceError):
    status, slug, title = 404, "job-not-found", "Job not found"


class UnknownJobType(ServiceError):
    status, slug, title = 404, "unknown-job-type", "Unknown job type"


class UnknownQueue(ServiceError):
    status, slug, title = 404, "unknown-queue", "Unknown queue"


class DeadLetterNotFound(ServiceError):
    status, slug, title = 404, "dead-letter-not-found", "Dead letter not found"


class IdempotencyConflict(ServiceError):
    status, slug, title = 409, "idempotency-conflict", "Idempotency-Key reused with a different request"


class JobAlreadyFinished(ServiceError):
    status, slug, title = 409, "job-finished", "Job already finished"


class JobNotRetryable(ServiceError):
    status, slug, title = 409, "job-not-retryable", "Job cannot be run again"


class DependencyFailed(ServiceError):
    status, slug, title = 409, "dependency-failed", "A job it depends on failed or was cancelled"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="jobsvc"'})


class TooManyFailedAuthentications(ServiceError):
    status, slug, title = 429, "too-many-failed-authentications", "Too many failed authentications"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many invalid API keys were sent from this address; wait before sending another.",
            headers={"Retry-After": str(retry_after_s)},
        )


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "The API key lacks a scope"

    def __init__(self, detail: str, *, scope: str) -> None:
        challenge = f'Bearer realm="jobsvc", error="insufficient_scope", scope="{scope}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class KeyNotFound(ServiceError):
    status, slug, title = 404, "key-not-found", "API key not found"


class QuotaExceeded(ServiceError):
    status, slug, title = 429, "quota-exceeded", "Quota exceeded"


class NotAllowedForTenant(ServiceError):
    status, slug, title = 403, "not-allowed-for-tenant", "Not allowed for this tenant"


class StorageBudgetExceeded(ServiceError):
    status, slug, title = 429, "storage-budget-exceeded", "Storage budget exceeded"


class PayloadTooLarge(ServiceError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class LargerThanBudget(ServiceError):
    status, slug, title = 413, "larger-than-storage-budget", "Larger than the tenant's storage budget"


class InvalidRequest(ServiceError):
    status, slug, title = 400, "invalid-request", "Invalid request"


class ServiceUnavailable(ServiceError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        errors.append(
            {
                "pointer": "/" + "/".join(loc[1:] if loc[:1] == ["body"] else loc),
                "location": loc[0] if loc else "body",
                "message": error.get("msg", "invalid"),
                "code": error.get("type", "invalid"),
            }
        )
    return errors


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.title, exc.detail, slug=exc.slug, headers=exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(e["code"] == "json_invalid" for e in errors):
        return problem(400, "Malformed JSON", "The request body is not valid JSON.", slug="malformed-json")
    return problem(
        422,
        "Validation failed",
        f"{len(errors)} field(s) failed validation.",
        slug="validation",
        errors=errors,
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return problem(exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None))


async def _on_redis_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("redis unavailable: %s", type(exc).__name__)
    return problem(
        503,
        ServiceUnavailable.title,
        "The job store does not answer; try again shortly.",
        slug=ServiceUnavailable.slug,
        headers={"Retry-After": "1"},
    )


async def _on_replicas_behind(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReplicasBehind)
    logger.warning("submit not acknowledged: %s", exc)
    return problem(
        503,
        ServiceUnavailable.title,
        f"The job reached the primary, but {exc}, so a failover could still lose it. Send it again with "
        "the same Idempotency-Key: it is accepted once.",
        slug=ServiceUnavailable.slug,
        headers={"Retry-After": "1"},
    )


async def _on_redis_refusal(request: Request, exc: Exception) -> JSONResponse:
    """Redis answered with an error: one that means it cannot serve for now (out of memory, read-only
    after a failover, busy, ...) is an outage like any other; anything else is a fault of ours."""
    if redis_unavailable(exc):
        return await _on_redis_down(request, exc)
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(
        500,
        "Internal server error",
        "The server failed to answer; the error was logged.",
        slug="internal-error",
    )


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": "The Bearer challenge (RFC 6750); a 403 names the missing scope.",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer "},
    }
}
#: the headers an answer with this status always carries
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: _CHALLENGE,
    403: _CHALLENGE,
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
#: what every operation under /v1 may answer: it needs a key with a scope, and Redis
AUTHENTICATED: dict[int, str] = {
    401: "No API key, or not a valid one (unknown, revoked or mistyped).",
    403: "The API key lacks the scope this operation needs.",
    503: "The job store does not answer; try again after Retry-After.",
}


#: what an operation that reads a JSON body may answer besides its own problems
BODY_PROBLEMS: dict[int, str] = {
    400: "The body is not valid JSON.",
    413: "The body is larger than the service accepts (JOBSVC_MAX_BODY_BYTES).",
    422: "A field of the body fails its schema; `errors` points at each.",
}
INVALID_PARAMETER: dict[int, str] = {422: "A parameter fails its schema; `errors` points at each."}
OVER_QUOTA: dict[int, str] = {
    403: "A queue or priority the tenant may not use, or the key lacks the scope.",
    413: "The body is larger than the service accepts (JOBSVC_MAX_BODY_BYTES), or its jobs are larger than "
    "the tenant's whole storage budget.",
    429: "Over the tenant's quota of submits per second or of open jobs, or its storage budget.",
}


def problem_response(description: str, *, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response object for a problem answer: problem+json, and the headers it carries."""
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


def problems(described: Mapping[int, str], *, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for the problems an operation answers with, each with why it happens;
    ``authenticated`` adds 401, 403 and 503."""
    statuses = {**(AUTHENTICATED if authenticated else {}), **described}
    return {
        status: problem_response(why, headers=PROBLEM_HEADERS.get(status))
        for status, why in sorted(statuses.items())
    }


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RedisConnectionError, _on_redis_down)
    app.add_exception_handler(RedisTimeoutError, _on_redis_down)
    app.add_exception_handler(ResponseError, _on_redis_refusal)
    app.add_exception_handler(ReplicasBehind, _on_replicas_behind)
    app.add_exception_handler(Exception, _on_unexpected)
