"""What a job from ARQ's own producers (``ArqRedis.enqueue_job``) becomes, judged as the API judges a
submission: adopted as a jobsvc job of ``JOBSVC_ARQ_PRODUCER_TENANT``, or ended at once with the reason it
cannot run. ``jobs.engine.arq_intake`` finds such jobs and hands them here.

ARQ's record is read with msgpack only: a pickled one (ARQ's default serializer) is refused by its first
byte and never unpickled. Producers pass ``create_pool(..., job_serializer=msgpack.packb,
job_deserializer=msgpack.unpackb)``: plain data in, plain data out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from jobs.definition import JobType
from jobs.engine import keys
from jobs.engine.codec import deserialize
from jobs.engine.queue_ops import Quotas, ended_record, enqueue_call, new_job
from jobs.queues import QUEUE_NAMES

logger = logging.getLogger("jobsvc.arq_producers")

#: pickle's PROTO opcode, the first byte of every pickle of protocol 2 and above (ARQ's is the highest)
PICKLE_PROTO = b"\x80"

#: what an ARQ user passes to ``create_pool`` so that jobsvc can read the jobs (msgpack >= 1.0)
SERIALIZER_ARGUMENTS = "job_serializer=msgpack.packb, job_deserializer=msgpack.unpackb"

#: the type of the job in a record that could not be read, as ARQ names it
UNKNOWN_FUNCTION = "<unknown>"

Action = Literal["adopt", "fail", "refuse"]


@dataclass(frozen=True)
class ArqProducers:
    """What jobs from ARQ's own producers become: whose they are, and what a submit of theirs must meet."""

    #: the tenant that owns them (``JOBSVC_ARQ_PRODUCER_TENANT``)
    tenant: str = keys.DEFAULT_TENANT
    #: the tenant's default quotas (an admin's for the tenant apply first); None: unchecked
    quotas: Quotas | None = None
    max_params_bytes: int = 65_536


@dataclass(frozen=True)
class Foreign:
    """A job ARQ's own client put in one of jobsvc's ARQ queues, as the find script read it."""

    job_id: str
    #: jobsvc's name of the queue ('' for an ARQ queue jobsvc does not have) and ARQ's key of it
    queue: str
    arq_key: str
    due_ms: int
    #: ARQ's record as stored (empty once it expired) and how long it has left (ms; -1: no expiry)
    record: bytes
    ttl_ms: int


@dataclass(frozen=True)
class Intake:
    """What becomes of one foreign job: ``adopt`` it (``payload`` is the packed job), or end it now with the
    result record in ``payload``: ``fail`` it as a job of the producers' tenant, or ``refuse`` it (ARQ's
    records only, for an id that jobsvc's keys may not hold or a queue jobsvc does not have)."""

    action: Action
    found: Foreign
    payload: bytes
    result_ttl_ms: int = 0
    bury_ms: int = 0
    index_keys: tuple[str, ...] = ()
    #: meta of a failed job (field, value, field, value...) and its creation time, the listings' order
    meta: tuple[str, ...] = ()
    created_ms: int = 0

    def item(self) -> list[Any]:
        """The intake as the adopt script unpacks it."""
        found = self.found
        return [
            self.action, found.job_id, found.queue, found.arq_key, found.record, self.payload,
            self.result_ttl_ms, self.bury_ms, list(self.index_keys), list(self.meta), self.created_ms,
        ]  # fmt: skip


class Refusal(Exception):
    """Why a foreign job cannot run: the error type and message its failure record shows."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def read_arq_record(raw: bytes) -> tuple[str, dict[str, Any], int]:
    """ARQ's job record -> (function, kwargs, enqueue time ms); refuses pickle without unpickling it."""
    if raw.startswith(PICKLE_PROTO):
        raise Refusal(
            "PickleRefused",
            "the job was pickled (ARQ's default serializer) and jobsvc never unpickles: "
            f"create the pool with {SERIALIZER_ARGUMENTS}",
        )
    try:
        record = deserialize(raw)
    except Exception:  # msgpack raises several kinds for bytes that are not msgpack
        record = {}
    function, args, kwargs, enqueued = record.get("f"), record.get("a"), record.get("k"), record.get("et")
    if not isinstance(function, str) or not isinstance(kwargs, dict) or not isinstance(enqueued, int):
        raise Refusal(
            "UnreadableJob",
            f"the job's record is not ARQ's, in msgpack: create the pool with {SERIALIZER_ARGUMENTS}",
        )
    if args:
        raise Refusal(
            "InvalidParams", f"{function} takes its params as keyword arguments, not positional ones"
        )
    return function, kwargs, enqueued


def describe(error: ValidationError) -> str:
    """A validation error in one line: ``field: message; ...``."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in error.errors()[:5]]
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class IntakeRules:
    """How a worker judges foreign jobs: its job types, the producers' settings and the retention times."""

    job_types: Mapping[str, JobType[Any, Any]]
    producers: ArqProducers
    default_timeout_s: float
    result_retention_s: int
    dead_letter_retention_s: int
    queued_expiry_ms: int

    def examine(self, found: Foreign) -> Intake:
        """Adopt ``found``, or end it with the reason it cannot run."""
        if not keys.JOB_ID.match(found.job_id):
            message = f"jobsvc accepts job ids matching {keys.JOB_ID.pattern}"
            return _refusal(found, "InvalidJobId", message, result_retention_s=self.result_retention_s)
        if not found.queue:
            return refusal_of_unknown_queue(found, result_retention_s=self.result_retention_s)
        if not found.record:  # expired before a worker saw it, as ARQ's run_job reports it
            return self._fail(
                found, UNKNOWN_FUNCTION, {}, found.due_ms, Refusal("JobExecutionFailed", "job expired")
            )
        function, enqueued = UNKNOWN_FUNCTION, found.due_ms
        kwargs: dict[str, Any] = {}
        try:
            function, kwargs, enqueued = read_arq_record(found.record)
            return self._adoption(found, function, kwargs, enqueued)
        except Refusal as refusal:
            return self._fail(found, function, kwargs, enqueued, refusal)

    def _adoption(self, found: Foreign, function: str, kwargs: dict[str, Any], enqueued: int) -> Intake:
        job_type = self.job_types.get(function)
        if job_type is None:
            raise Refusal("UnknownJobType", f"no job type named {function!r}")
        try:
            size = len(json.dumps(kwargs, separators=(",", ":")))
        except (TypeError, ValueError):
            raise Refusal("InvalidParams", f"the params of {function} are not JSON-like data") from None
        if size > self.producers.max_params_bytes:
            raise Refusal(
                "InvalidParams",
                f"params take {size} bytes as JSON; at most {self.producers.max_params_bytes}",
            )
        try:
            params = job_type.params_model.model_validate(kwargs)
        except ValidationError as exc:
            raise Refusal("InvalidParams", f"invalid params for {function}: {describe(exc)}") from None
        if found.queue not in job_type.allowed_queues:
            allowed = ", ".join(job_type.allowed_queues)
            raise Refusal("QueueNotAllowed", f"{function} may run on {allowed}; not on {found.queue!r}")
        job = new_job(
            job_type,
            params,
            default_timeout_s=self.default_timeout_s,
            default_retention_s=self.result_retention_s,
            queue=found.queue,
            run_at_ms=found.due_ms if found.due_ms > enqueued else None,
            tenant=self.producers.tenant,
        )
        call = enqueue_call(job, found.job_id, queued_expiry_ms=self.queued_expiry_ms, created_ms=enqueued)
        return Intake("adopt", found, call.packed, index_keys=tuple(call.index_keys))

    def failure(self, found: Foreign, kind: str, message: str) -> Intake:
        """The foreign job failed with ``kind`` and ``message``, after it was judged fit to adopt."""
        function, kwargs, enqueued = read_arq_record(found.record)
        return self._fail(found, function, kwargs, enqueued, Refusal(kind, message))

    def _fail(
        self, found: Foreign, function: str, kwargs: dict[str, Any], enqueued: int, refusal: Refusal
    ) -> Intake:
        job_type = self.job_types.get(function)
        retention_s = (job_type.keep_result_s if job_type else None) or self.result_retention_s
        tenant = self.producers.tenant
        index_keys = [keys.index_all(tenant), keys.index_by_queue(tenant, found.queue)]
        if job_type is not None:
            index_keys.append(keys.index_by_type(tenant, function))
        record = _failure_record(found, function, {"params": kwargs} if kwargs else {}, enqueued, refusal)
        logger.warning("job %s from an ARQ producer failed: %s", found.job_id, refusal.message)
        meta = ("type", function, "queue", found.queue, "priority", "5", "tenant", tenant)
        return Intake(
            "fail",
            found,
            record,
            result_ttl_ms=int(retention_s * 1000),
            bury_ms=self.dead_letter_retention_s * 1000,
            index_keys=tuple(index_keys),
            meta=meta,
            created_ms=enqueued,
        )


def refusal_of_unknown_queue(found: Foreign, *, result_retention_s: int) -> Intake:
    """A job in an ARQ queue that is none of jobsvc's (a mistyped ``_queue_name``): ARQ's result only."""
    wanted = " or ".join(keys.arq_queue(name) for name in QUEUE_NAMES)
    message = f"{found.arq_key} is none of jobsvc's queues: pass _queue_name={wanted}"
    return _refusal(found, "UnknownQueue", message, result_retention_s=result_retention_s)


def _refusal(found: Foreign, kind: str, message: str, *, result_retention_s: int) -> Intake:
    logger.warning("job %s from an ARQ producer refused: %s", found.job_id, message)
    record = _failure_record(found, UNKNOWN_FUNCTION, {}, found.due_ms, Refusal(kind, message))
    return Intake("refuse", found, record, result_ttl_ms=result_retention_s * 1000)


def _failure_record(
    found: Foreign, function: str, kwargs: dict[str, Any], enqueued_ms: int, refusal: Refusal
) -> bytes:
    """ARQ's result record of a foreign job that never ran."""
    return ended_record(
        found.job_id,
        function=function,
        kwargs=kwargs,
        enqueued_ms=enqueued_ms,
        attempts=0,
        arq_queue=found.arq_key,
        error={"type": refusal.kind, "message": refusal.message},
    )
