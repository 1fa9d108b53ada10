"""Turning a client's submission into a job ready to enqueue, or a precise 4xx, before Redis is touched."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from jobs.engine.queue_ops import NewJob, new_job
from jobs.registry import AnyJobType
from service.api.errors import UnknownJobType
from service.api.schemas import MAX_DELAY_S, RUN_AT_SKEW_S, JobSubmit
from service.config import Settings

#: the integers msgpack, what the job store writes, can hold
STORABLE_INTS = range(-(2**63), 2**64)
#: how deep params may nest (objects and lists in one another): deeper is a 422, never a 500 from a
#: serializer's or the interpreter's recursion limit
MAX_PARAMS_DEPTH = 32
#: params as the size limit measures them (one encoder: ``json.dumps`` with options builds one per call)
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _invalid(loc: tuple[str | int, ...], message: str, code: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": code}])


def prepare(
    submit: JobSubmit, job_types: Mapping[str, AnyJobType], settings: Settings, *, tenant: str
) -> NewJob:
    """Validate ``submit`` against its job type; raises UnknownJobType (404) or a 422 naming the field."""
    job_type = job_types.get(submit.type)
    if job_type is None:
        raise UnknownJobType(f"No job type named {submit.type!r}; GET /v1/job-types lists them.")
    if _nests_deeper_than(submit.params, MAX_PARAMS_DEPTH):
        raise _invalid(("params",), f"params nest more than {MAX_PARAMS_DEPTH} levels deep", "too_deep")
    size = len(COMPACT_JSON.encode(submit.params))
    if size > settings.max_params_bytes:
        raise _invalid(("params",), f"params take {size} bytes as JSON; at most {settings.max_params_bytes}")
    try:
        params = job_type.params_model.model_validate(submit.params)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", "params", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
    if (where := _unstorable_int(submit.params)) is not None:
        raise _invalid(
            ("params", *where),
            f"integers must lie from {STORABLE_INTS.start} to {STORABLE_INTS.stop - 1}",
            "int_out_of_range",
        )
    queue = submit.queue or job_type.queue
    if queue not in job_type.allowed_queues:
        allowed = ", ".join(job_type.allowed_queues)
        raise _invalid(("queue",), f"{submit.type} may run on {allowed}; not on {queue!r}")
    now = time.time()
    run_at_ms: int | None = None
    if submit.delay_seconds:
        run_at_ms = int((now + submit.delay_seconds) * 1000)
    elif submit.run_at is not None:
        at = submit.run_at.timestamp()
        if at < now - RUN_AT_SKEW_S:
            raise _invalid(("run_at",), "run_at lies in the past")
        if at > now + MAX_DELAY_S:
            raise _invalid(("run_at",), "run_at lies more than a year ahead")
        run_at_ms = int(at * 1000)
    return new_job(
        job_type,
        params,
        default_timeout_s=settings.job_timeout_s,
        default_retention_s=settings.result_retention_s,
        queue=queue,
        priority=submit.priority,
        run_at_ms=run_at_ms,
        max_attempts=submit.max_attempts,
        backoff=submit.backoff.model_dump() if submit.backoff else None,
        depends_on=tuple(dict.fromkeys(submit.depends_on)),
        tenant=tenant,
    )


def _unstorable_int(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where in ``value`` (JSON data) lies an integer the job store cannot hold, if anywhere."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value in STORABLE_INTS else path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if (found := _unstorable_int(item, (*path, key))) is not None:
            return found
    return None


def prepare_batch(
    items: Sequence[dict[str, Any]], job_types: Mapping[str, AnyJobType], settings: Settings, *, tenant: str
) -> list[NewJob]:
    """Validate every submission; a 422 names each bad item by its index, and nothing is enqueued."""
    prepared: list[NewJob] = []
    errors: list[Any] = []
    for index, item in enumerate(items):
        try:
            submit = JobSubmit.model_validate(item)
        except ValidationError as exc:
            errors.extend(
                {**e, "loc": ("body", "jobs", index, *e["loc"])} for e in exc.errors(include_url=False)
            )
            continue
        try:
            prepared.append(prepare(submit, job_types, settings, tenant=tenant))
        except UnknownJobType as exc:
            errors.append(
                {"loc": ("body", "jobs", index, "type"), "msg": exc.detail, "type": "unknown_job_type"}
            )
        except RequestValidationError as exc:
            errors.extend({**e, "loc": ("body", "jobs", index, *e["loc"][1:])} for e in exc.errors())
    if errors:
        raise RequestValidationError(errors)
    return prepared


def request_fingerprint(submit: JobSubmit) -> str:
    """A digest of the submission as sent, to tell a replay from a different request under one key."""
    body: dict[str, Any] = submit.model_dump(mode="json", exclude_unset=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds objects or lists more than ``limit`` levels deep; walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend([(child, depth + 1) for child in children if type(child) in (dict, list)])
    return False
