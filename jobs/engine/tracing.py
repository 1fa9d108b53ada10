"""Traces that run from the API's request into the job's attempts and their outbound calls.

Optional: the ``otel`` extra (``pip install 'jobsvc[otel]'``: the OpenTelemetry SDK and its OTLP exporter).
:func:`configure_tracing` decides once per process, at the start of the API or a worker, from the
standard ``OTEL_*`` variables; :data:`ON` then guards every use, so that with tracing off a job costs no
span, no context and no Redis command. Tracing is on when the SDK is installed, ``OTEL_SDK_DISABLED`` is
not ``true``, and an exporter is configured (``OTEL_TRACES_EXPORTER`` names one, or an OTLP endpoint is
set), or the host process installed an SDK tracer provider of its own (``opentelemetry-instrument``).

How a trace crosses Redis: the producer span ``send <queue>`` that enqueues a job writes its W3C trace
context into the job's meta hash (``traceparent``, ``tracestate``), in the same script that writes the
job; each attempt reads it back with one ``HMGET`` and runs in a consumer span ``process <queue>``,
its child. A batch has one producer span; its jobs' consumer spans start traces of their own and link
to it (``trace_link`` in the meta), as the messaging conventions say for batches. Attributes follow
the OpenTelemetry messaging conventions (``messaging.*``) plus ``jobsvc.job.type``,
``jobsvc.job.attempt`` and ``jobsvc.tenant``. The server span of the request is FastAPI's own, which
it makes whenever a tracer provider is installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from types import MappingProxyType
from typing import Any

from arq import Retry
from redis.asyncio import Redis

from jobs.engine import keys
from jobs.engine.connection import REDIS_DOWN
from jobs.engine.queue_ops import NewJob

try:  # opentelemetry-api comes with FastAPI; the SDK is the extra
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode, format_trace_id
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _API = True
except ImportError:  # pragma: no cover
    _API = False

#: tracing is on in this process: read as ``tracing.ON`` (set by :func:`configure_tracing`)
ON = False
_decided = False
_owned_provider: Any = None
_tracer: Any = None

#: meta fields of a job that carry its creation context; ``trace_link`` marks a batch's job, whose
#: consumer spans link to ``traceparent`` instead of continuing its trace
TRACE_FIELDS = ("traceparent", "tracestate", "trace_link")
MESSAGING_SYSTEM = "jobsvc"
_OFF: AbstractContextManager[Mapping[str, str]] = nullcontext(MappingProxyType({}))


def configure_tracing(default_service_name: str) -> bool:
    """Turn tracing on if the environment asks for it (see the module's docstring); decided once per
    process, later calls answer the first decision. ``OTEL_SERVICE_NAME`` or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES`` name the service, else ``default_service_name``."""
    global _decided, _owned_provider
    if _decided:
        return ON
    _decided = True
    if not _API or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return False  # the otel extra is not installed
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        turn_on()  # the host process set up tracing and its exporters
        return True
    exporters = _exporters_from_environment()
    if not exporters:
        return False
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": default_service_name}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _owned_provider = provider
    turn_on()
    return True


def _exporters_from_environment() -> list[Any]:
    """The span exporters ``OTEL_TRACES_EXPORTER`` names (``otlp``, ``console``, ``none``); unset, OTLP
    when an OTLP endpoint is set, else none."""
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        names = ["otlp"]
    exporters: list[Any] = []
    for name in names:
        if name == "otlp":
            exporters.append(_otlp_exporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: jobsvc exports traces with otlp or console")
    return exporters


def _otlp_exporter() -> Any:
    """OTLP over HTTP (the extra's exporter) or gRPC (``opentelemetry-exporter-otlp-proto-grpc``); each
    reads its endpoint, headers, timeout and certificates from the ``OTEL_EXPORTER_OTLP_*`` variables."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            raise RuntimeError(
                "OTLP over gRPC needs `pip install opentelemetry-exporter-otlp-proto-grpc`"
            ) from None
        return GrpcSpanExporter()
    raise ValueError(f"OTLP protocol {protocol!r}: jobsvc exports over http/protobuf or grpc")


def turn_on() -> None:
    """Trace from now on, with the installed tracer provider (for tests and for hosts that set one)."""
    global ON, _decided, _tracer
    _tracer = trace.get_tracer("jobsvc")
    _decided = ON = True


def turn_off() -> None:
    global ON, _decided
    _decided, ON = True, False


async def flush_tracing(timeout_s: float = 5.0) -> None:
    """Export the spans still buffered, at a process's shutdown (when this module set up the provider)."""
    if _owned_provider is not None:
        await asyncio.to_thread(_owned_provider.force_flush, int(timeout_s * 1000))


def current_trace_id() -> str | None:
    """The id of the trace this code runs in, as 32 hex digits; None when tracing is off or there is none."""
    if not ON:
        return None
    span_context = trace.get_current_span().get_span_context()
    return format_trace_id(span_context.trace_id) if span_context.is_valid else None


# -- producing --------------------------------------------------------------------------------------------


def sending(
    queue: str, *, job_id: str, job_type: str, tenant: str
) -> AbstractContextManager[Mapping[str, str]]:
    """A producer span ``send <queue>`` around one job's enqueue; gives the meta fields that carry its
    context to the job (none when tracing is off)."""
    if not ON:
        return _OFF
    return _producer_span(
        queue,
        {
            "messaging.destination.name": queue,
            "messaging.message.id": job_id,
            "jobsvc.job.type": job_type,
            "jobsvc.tenant": tenant,
        },
    )


def sending_batch(queues: Sequence[str], *, tenant: str) -> AbstractContextManager[Mapping[str, str]]:
    """One producer span for a batch of jobs (named by their queue when they share one); its jobs'
    consumer spans link to it."""
    if not ON:
        return _OFF
    distinct = set(queues)
    attributes: dict[str, str | int] = {"messaging.batch.message_count": len(queues), "jobsvc.tenant": tenant}
    queue = distinct.pop() if len(distinct) == 1 else ""
    if queue:
        attributes["messaging.destination.name"] = queue
    return _producer_span(queue, attributes, link=True)


@contextmanager
def _producer_span(
    queue: str, attributes: Mapping[str, str | int], *, link: bool = False
) -> Iterator[Mapping[str, str]]:
    name = f"send {queue}" if queue else "send"
    with _tracer.start_as_current_span(
        name,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
            **attributes,
        },
    ):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        if link:
            carrier["trace_link"] = "1"
        yield carrier


def carry(job: NewJob, fields: Mapping[str, str]) -> NewJob:
    """``job`` with the trace fields added to the meta the submit script writes."""
    return dataclasses.replace(job, links={**job.links, **fields}) if fields else job


# -- consuming --------------------------------------------------------------------------------------------


@asynccontextmanager
async def processing(
    redis: Redis, *, job_id: str, job_type: str, attempt: int, tenant: str
) -> AsyncIterator[str]:
    """A consumer span ``process <queue>`` around one attempt, current while it runs, child of (or, for a
    batch's job, linked to) the span that enqueued the job; gives the trace id. Costs one ``HMGET`` of
    the job's meta. A failed attempt ends it with status error and the exception recorded (for a
    retry, the failure that caused it)."""
    started_ns = time.time_ns()
    queue, carrier, link = await _read_creation_context(redis, job_id)
    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else otel_context.Context()
    links = []
    if link:
        span_context = trace.get_current_span(parent).get_span_context()
        links = [Link(span_context)] if span_context.is_valid else []
        parent = otel_context.Context()
    attributes: dict[str, str | int] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.message.id": job_id,
        "jobsvc.job.type": job_type,
        "jobsvc.job.attempt": attempt,
        "jobsvc.tenant": tenant,
    }
    if queue:
        attributes["messaging.destination.name"] = queue
    span = _tracer.start_span(
        f"process {queue}" if queue else "process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
        start_time=started_ns,
    )
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield format_trace_id(span.get_span_context().trace_id)
        except BaseException as exc:
            _record_failure(span, exc)
            raise


async def _read_creation_context(redis: Redis, job_id: str) -> tuple[str, dict[str, str], bool]:
    """The job's queue, its creation context as a W3C carrier, and whether to link to it rather than
    continue it; a Redis failure only costs the trace its parent."""
    try:
        values = await redis.hmget(keys.job_meta(job_id), ["queue", *TRACE_FIELDS])  # type: ignore[misc]
    except REDIS_DOWN:
        return "", {}, False
    queue, traceparent, tracestate, link = (v.decode() if v else "" for v in values)
    carrier = {"traceparent": traceparent} if traceparent else {}
    if traceparent and tracestate:
        carrier["tracestate"] = tracestate
    return queue, carrier, bool(link)


def _record_failure(span: Any, exc: BaseException) -> None:
    failure = exc.__cause__ if isinstance(exc, Retry) and exc.__cause__ is not None else exc
    if isinstance(exc, Retry):
        span.set_attribute("jobsvc.job.retry_in_s", (exc.defer_score or 0) / 1000)
    span.set_attribute("error.type", error_type(failure))
    span.record_exception(failure)
    span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its fully qualified class name (builtins unqualified)."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
