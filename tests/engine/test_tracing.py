"""Traces: one runs from ``POST /v1/jobs`` through the job's attempts into its outbound calls; a batch's jobs
link to the batch's span; with tracing off nothing of it is written or read.

Spans are collected by the SDK's in-memory exporter, on a tracer provider installed once per test process
(OpenTelemetry allows one) whose sampler records only while a test has tracing on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.util.types import Attributes
from pydantic import SecretStr

from jobs.engine import keys, tracing
from service.config import Settings
from tests.catalogue.test_email import PASSWORD, USER, SmtpServer, smtp_server  # noqa: F401 - the fixture
from tests.helpers import make_due, read_job, submit
from tests.webhook_receiver import HookServer

EXPORTER = InMemorySpanExporter()


class WhileTracingIsOn(Sampler):
    """Records spans only while jobsvc's tracing is on, so that the provider, which outlives the tests that
    installed it, costs the rest of the suite nothing."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if tracing.ON else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "WhileTracingIsOn"


def install_test_provider() -> None:
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(sampler=WhileTracingIsOn())
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test; its finished spans."""
    install_test_provider()
    EXPORTER.clear()
    tracing.turn_on()
    try:
        yield EXPORTER
    finally:
        tracing.turn_off()
        EXPORTER.clear()


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer) -> Settings:  # noqa: F811
    return settings.model_copy(
        update={
            "webhook_allow_private": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "smtp_user": USER,
            "smtp_password": SecretStr(PASSWORD),
        }
    )


def one(found: Sequence[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    matching = [s for s in found if s.name == name and s.kind is kind]
    assert len(matching) == 1, [(s.name, s.kind) for s in found]
    return matching[0]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def ids_in(traceparent: str) -> tuple[int, int]:
    """The trace id and the parent span id a W3C ``traceparent`` carries."""
    version, trace, span, _flags = traceparent.split("-")
    assert version == "00"
    return int(trace, 16), int(span, 16)


def ancestors(span: ReadableSpan, found: Sequence[ReadableSpan]) -> list[str]:
    """The names of ``span``'s parent, its parent's parent, and so on."""
    by_id = {span_id(s): s for s in found}
    names: list[str] = []
    while (parent := by_id.get(parent_id(span) or 0)) is not None:
        names.append(parent.name)
        span = parent
    return names


async def test_one_trace_runs_from_the_request_through_the_job_into_the_webhook(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    hook_server: HookServer,
    spans: InMemorySpanExporter,
) -> None:
    job = await submit(http, "webhook.deliver", {"url": hook_server.url, "payload": {"order": 7}})
    await run_jobs()
    assert (await read_job(http, job["id"]))["status"] == "succeeded"

    found = spans.get_finished_spans()
    server = one(found, "POST /v1/jobs", SpanKind.SERVER)
    send = one(found, "send default", SpanKind.PRODUCER)
    process = one(found, "process default", SpanKind.CONSUMER)
    client = one(found, "POST", SpanKind.CLIENT)
    assert {trace_id(s) for s in (server, send, process, client)} == {trace_id(server)}
    assert server.parent is None
    assert "POST /v1/jobs" in ancestors(send, found)
    assert parent_id(process) == span_id(send)
    assert parent_id(client) == span_id(process)
    assert ancestors(client, found)[:2] == ["process default", "send default"]

    assert attributes(server)["http.route"] == "/v1/jobs"
    assert attributes(server)["http.response.status_code"] == 202
    assert attributes(send) == {
        "messaging.system": "jobsvc",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": "default",
        "messaging.message.id": job["id"],
        "jobsvc.job.type": "webhook.deliver",
        "jobsvc.tenant": "default",
    }
    assert attributes(process) == {
        "messaging.system": "jobsvc",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": job["id"],
        "jobsvc.job.type": "webhook.deliver",
        "jobsvc.job.attempt": 1,
        "jobsvc.tenant": "default",
    }
    assert process.status.status_code is StatusCode.UNSET
    assert attributes(client) == {
        "http.request.method": "POST",
        "url.scheme": "http",
        "server.address": "127.0.0.1",
        "server.port": hook_server.port,
        "http.response.status_code": 200,
    }

    [request] = hook_server.requests
    assert ids_in(request.headers["traceparent"]) == (trace_id(client), span_id(client))
    meta = await redis.hgetall(keys.job_meta(job["id"]))
    assert ids_in(meta[b"traceparent"].decode()) == (trace_id(send), span_id(send))
    assert b"trace_link" not in meta


async def test_each_attempt_is_a_consumer_span_and_a_failed_one_records_its_error(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    hook_server: HookServer,
    spans: InMemorySpanExporter,
) -> None:
    hook_server.statuses.append(503)
    job = await submit(http, "webhook.deliver", {"url": hook_server.url, "payload": {}})
    await run_jobs(max_burst_jobs=1)
    await make_due(redis, job["id"])
    await run_jobs()
    assert (await read_job(http, job["id"]))["status"] == "succeeded"

    found = spans.get_finished_spans()
    send = one(found, "send default", SpanKind.PRODUCER)
    first, second = sorted(
        (s for s in found if s.kind is SpanKind.CONSUMER),
        key=lambda s: attributes(s)["jobsvc.job.attempt"],
    )
    assert parent_id(first) == parent_id(second) == span_id(send)
    assert first.status.status_code is StatusCode.ERROR
    assert attributes(first)["error.type"] == "jobs.errors.RetryableJobError"
    assert attributes(first)["jobsvc.job.retry_in_s"] > 0
    [event] = first.events
    assert event.name == "exception"
    assert "503" in str((event.attributes or {})["exception.message"])
    assert second.status.status_code is StatusCode.UNSET
    failed_call, good_call = sorted(
        (s for s in found if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert parent_id(failed_call) == span_id(first)
    assert failed_call.status.status_code is StatusCode.ERROR
    assert attributes(failed_call)["error.type"] == "503"
    assert parent_id(good_call) == span_id(second)


async def test_an_email_is_sent_in_a_client_span_of_its_attempt(
    http: httpx.AsyncClient,
    run_jobs: Any,
    smtp_server: SmtpServer,  # noqa: F811
    spans: InMemorySpanExporter,
) -> None:
    job = await submit(http, "email.send", {"to": ["bob@example.com"], "subject": "Hi", "body": "x"})
    await run_jobs()
    assert (await read_job(http, job["id"]))["status"] == "succeeded"

    found = spans.get_finished_spans()
    process = one(found, "process default", SpanKind.CONSUMER)
    smtp = one(found, "smtp send", SpanKind.CLIENT)
    assert parent_id(smtp) == span_id(process)
    assert attributes(smtp) == {
        "server.address": "127.0.0.1",
        "server.port": smtp_server.port,
        "jobsvc.email.recipients": 1,
        "jobsvc.email.rejected": 0,
    }
    assert len(smtp_server.received) == 1


async def test_a_batch_has_one_producer_span_that_each_of_its_jobs_links_to(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis, spans: InMemorySpanExporter
) -> None:
    response = await http.post(
        "/v1/jobs:batch", json={"jobs": [{"type": "diag.noop", "params": {}} for _ in range(3)]}
    )
    assert response.status_code == 202, response.text
    ids = {job["id"] for job in response.json()["jobs"]}
    await run_jobs()

    found = spans.get_finished_spans()
    batch = one(found, "send default", SpanKind.PRODUCER)
    assert "POST /v1/jobs:batch" in ancestors(batch, found)
    assert attributes(batch)["messaging.batch.message_count"] == 3
    consumers = [s for s in found if s.kind is SpanKind.CONSUMER]
    assert {attributes(s)["messaging.message.id"] for s in consumers} == ids
    for consumer in consumers:
        assert consumer.parent is None  # a trace of its own ...
        assert trace_id(consumer) != trace_id(batch)
        [link] = consumer.links  # ... that links to the batch's
        assert (link.context.trace_id, link.context.span_id) == (trace_id(batch), span_id(batch))
    for job_id in ids:
        assert await redis.hget(keys.job_meta(job_id), "trace_link") == b"1"


async def test_with_tracing_off_no_trace_context_is_written_or_read(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    hook_server: HookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not tracing.ON

    async def never(*args: Any) -> Any:
        raise AssertionError("with tracing off, an attempt reads no trace context")

    monkeypatch.setattr(tracing, "_read_creation_context", never)
    single = await submit(http, "webhook.deliver", {"url": hook_server.url, "payload": {}})
    batch = await http.post("/v1/jobs:batch", json={"jobs": [{"type": "diag.noop", "params": {}}]})
    assert batch.status_code == 202
    await run_jobs()

    for job_id in (single["id"], batch.json()["jobs"][0]["id"]):
        assert (await read_job(http, job_id))["status"] == "succeeded"
        meta = await redis.hgetall(keys.job_meta(job_id))
        assert meta  # the job's meta is there, without any trace field
        assert not {b"traceparent", b"tracestate", b"trace_link"} & set(meta)
    assert "traceparent" not in hook_server.requests[0].headers
    assert not EXPORTER.get_finished_spans()


# -- deciding from the environment -------------------------------------------------------------------------


@pytest.fixture
def undecided(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A process that has not decided yet, with no provider installed and no OTEL_* variable set; the
    providers :func:`configure_tracing` would install."""
    for name in ("_decided", "ON", "_owned_provider", "_tracer"):
        monkeypatch.setattr(tracing, name, getattr(tracing, name))
    monkeypatch.setattr(tracing, "_decided", False)
    monkeypatch.setattr(tracing, "ON", False)
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.delenv(name, raising=False)
    installed: list[Any] = []
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    return installed


def test_tracing_stays_off_without_an_exporter(undecided: list[Any]) -> None:
    assert tracing.configure_tracing("jobsvc-test") is False
    assert not tracing.ON
    assert undecided == []


def test_otel_sdk_disabled_wins_over_an_exporter(
    undecided: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure_tracing("jobsvc-test") is False
    assert undecided == []


@pytest.mark.parametrize(
    ("variables", "service_name"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "jobsvc-test"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "orders-api"}, "orders-api"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "service.name=x"}, "x"),
    ],
)
def test_an_exporter_in_the_environment_turns_tracing_on_once(
    undecided: list[Any], monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], service_name: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing.configure_tracing("jobsvc-test") is True
    [provider] = undecided
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == service_name
        assert tracing.ON
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        assert tracing.configure_tracing("jobsvc-test") is True  # decided once per process
        assert len(undecided) == 1
    finally:
        provider.shutdown()


def test_an_unknown_exporter_stops_the_start(undecided: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        tracing.configure_tracing("jobsvc-test")
