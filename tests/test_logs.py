"""JSON logs: one object per line from the API and the workers, uvicorn's and ARQ's lines included; every
line written during a job names it (and its trace, when tracing is on); params, results, API keys and
secrets never appear."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, SecretStr

from jobs import registry
from jobs.context import Ctx
from jobs.definition import job_type
from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues, enqueue_call, new_job
from jobs.engine.runner import arq_function
from service.config import Settings
from service.logs import configure_logging
from tests.cli.test_processes import api_and_worker, submit, wait_for, wait_until_ready  # noqa: F401
from tests.conftest import ADMIN_KEY, auth, make_worker
from tests.engine.test_tracing import spans  # noqa: F401 - the fixture
from tests.webhook_receiver import HookServer

#: what a job's params and result hold: it must never reach a log line
MARKER = "marker-" + secrets.token_hex(8)
WEBHOOK_SECRET = "whsec-" + secrets.token_urlsafe(32)
SMTP_PASSWORD = "smtp-" + secrets.token_urlsafe(16)


class EchoParams(BaseModel):
    text: str


class EchoResult(BaseModel):
    text: str


@job_type("test.echo", description="Logs a line and returns its params.")
async def echo(ctx: Ctx, params: EchoParams) -> EchoResult:
    logging.getLogger("jobsvc.test").info("echoing %d characters", len(params.text))
    return EchoResult(text=params.text)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "log_format": "json",
            "webhook_allow_private": True,
            "webhook_secret": SecretStr(WEBHOOK_SECRET),
            "smtp_password": SecretStr(SMTP_PASSWORD),
        }
    )


@pytest.fixture
def json_logs(settings: Settings) -> Iterator[None]:
    configure_logging(settings)
    try:
        yield
    finally:
        configure_logging(settings.model_copy(update={"log_format": "text"}))


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every line as JSON (a line that is not fails the test)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]


async def test_json_lines_name_the_job_and_its_trace_and_leak_nothing(
    settings: Settings,
    redis: ArqRedis,
    api_url: str,
    hook_server: HookServer,
    json_logs: None,
    spans: InMemorySpanExporter,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    async with httpx.AsyncClient(base_url=api_url, headers=auth(ADMIN_KEY)) as http:
        created = await http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["submit", "read"]})
        tenant_key = created.json()["key"]
        hook = await http.post(
            "/v1/jobs",
            headers=auth(tenant_key),
            json={
                "type": "webhook.deliver",
                "params": {"url": f"{hook_server.url}/{MARKER}", "payload": {"note": MARKER}},
            },
        )
        assert hook.status_code == 202, hook.text
        assert (await http.get("/v1/jobs", headers=auth(tenant_key + "x"))).status_code == 401
    job = new_job(echo, EchoParams(text=MARKER), default_timeout_s=30, default_retention_s=60)
    await JobQueues(redis).submit(enqueue_call(job, "echo-1", queued_expiry_ms=60_000))
    functions = [arq_function(jt) for jt in (*registry.job_types(diagnostics=True).values(), echo)]
    worker = make_worker(settings, functions=functions, burst=True, poll_delay=0)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert len(hook_server.requests) == 1
    assert await redis.exists(keys.arq_result("echo-1"))

    output = capsys.readouterr()
    lines = parse_lines(output.err)
    assert output.out == ""
    everything = output.err
    for name, secret in [
        ("marker", MARKER),
        ("admin key", ADMIN_KEY),
        ("tenant key", tenant_key),
        ("tenant key's secret", tenant_key.split("_", 2)[2]),
        ("webhook secret", WEBHOOK_SECRET),
        ("SMTP password", SMTP_PASSWORD),
    ]:
        assert secret not in everything, f"the {name} leaked"
    assert {"time", "level", "logger", "message"} <= set(lines[0])

    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {(line["method"], line["path"], line["status"]) for line in access} >= {
        ("POST", "/v1/jobs", 202),
        ("GET", "/v1/jobs", 401),
    }
    hook_id = hook.json()["id"]
    [consumer] = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.CONSUMER and (s.attributes or {})["messaging.message.id"] == hook_id
    ]
    assert consumer.context is not None
    trace_id = f"{consumer.context.trace_id:032x}"
    echoed = [line for line in lines if line.get("job_id") == "echo-1"]
    assert {line["logger"] for line in echoed} >= {"jobsvc.test", "arq.worker"}
    for line in echoed:
        assert (line["job_type"], line["attempt"], line["tenant"]) == ("test.echo", 1, "default")
    # ARQ's start line comes before the attempt's span; every later one names the trace
    assert len({line["trace_id"] for line in echoed if " → " not in line["message"]}) == 1
    delivered = [line for line in lines if line.get("job_id") == hook_id]
    assert delivered
    for line in delivered:
        assert (line["job_type"], line["attempt"], line["tenant"]) == ("webhook.deliver", 1, "acme")
    assert {line.get("trace_id") for line in delivered if " → " not in line["message"]} == {trace_id}
    [submitted] = [line for line in access if line["method"] == "POST" and line["path"] == "/v1/jobs"]
    assert submitted["trace_id"] == trace_id  # the request's access line is in the job's trace


def test_text_logs_leave_the_loggers_as_they_were(settings: Settings) -> None:
    root = logging.getLogger()
    uvicorn_access = logging.getLogger("uvicorn.access")
    before = (list(root.handlers), root.level, list(uvicorn_access.handlers), uvicorn_access.propagate)
    configure_logging(settings)
    assert root.level == logging.INFO
    configure_logging(settings.model_copy(update={"log_format": "text"}))
    assert (
        list(root.handlers),
        root.level,
        list(uvicorn_access.handlers),
        uvicorn_access.propagate,
    ) == before


@pytest.fixture
def process_env() -> dict[str, str]:
    return {"JOBSVC_LOG_FORMAT": "json"}


@pytest.mark.slow
def test_uvicorn_and_the_arq_cli_write_only_json_lines(api_and_worker: str, tmp_path: Path) -> None:  # noqa: F811
    """The processes as operators start them: every line they write, from the first, is JSON."""
    wait_until_ready(api_and_worker)
    job = submit(api_and_worker, "diag.record", {"label": MARKER})
    assert wait_for(api_and_worker, job["id"])["status"] == "succeeded"

    api_lines = parse_lines((tmp_path / "api.log").read_text())
    worker_lines = parse_lines((tmp_path / "worker.log").read_text())
    assert any(line["message"].startswith("Started server process") for line in api_lines)
    assert any(line["logger"] == "uvicorn.access" for line in api_lines)
    assert any(line["message"].startswith("Starting worker for") for line in worker_lines)
    job_lines = [line for line in worker_lines if line.get("job_id") == job["id"]]
    assert len(job_lines) == 2  # ARQ's start and end
    assert {(line["job_type"], line["attempt"], line["tenant"]) for line in job_lines} == {
        ("diag.record", 1, "default")
    }
    for text in ((tmp_path / "api.log").read_text(), (tmp_path / "worker.log").read_text()):
        assert MARKER not in text
        assert ADMIN_KEY not in text
