"""GET /metrics: the cluster's job figures from Redis and the API's request durations, in Prometheus
text format; they agree exactly with what the API reports for the same jobs; closed in production."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
from arq import ArqRedis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr

from service.api.app import create_app
from service.config import Settings
from tests.helpers import serve, submit

TOKEN = "metrics-token-" + "m" * 32


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(found: Iterable[Sample], name: str, **labels: str) -> float:
    matching = [
        s.value for s in found if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matching) <= 1, (name, labels, matching)
    return matching[0] if matching else 0.0


async def test_counters_agree_exactly_with_the_api_after_a_run(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    for _ in range(3):
        await submit(http, "diag.noop", {})
    retried = await submit(http, "diag.fail", {"times": 1})
    failing = await submit(http, "diag.fail", {"times": 9}, max_attempts=2)
    cancelled = await submit(http, "diag.noop", {}, delay_seconds=3600)
    assert (await http.delete(f"/v1/jobs/{cancelled['id']}")).status_code == 202
    await run_jobs()
    for _ in range(20):  # retries wait out their (short) backoff
        if (await http.get(f"/v1/jobs/{failing['id']}")).json()["status"] == "failed":
            break
        await run_jobs()
    jobs = (await http.get("/v1/jobs?limit=100")).json()["jobs"]
    text = (await http.get("/metrics")).text
    found = samples(text)

    for job_type in ("diag.noop", "diag.fail"):
        of_type = [j for j in jobs if j["type"] == job_type]
        assert value(found, "jobsvc_jobs_submitted_total", type=job_type, queue="default") == len(of_type)
        for outcome in ("succeeded", "failed", "cancelled"):
            expected = sum(1 for j in of_type if j["status"] == outcome)
            assert (
                value(found, "jobsvc_jobs_finished_total", type=job_type, queue="default", outcome=outcome)
                == expected
            )
    retries = sum(j["attempts"] - 1 for j in jobs if j["type"] == "diag.fail")
    assert value(found, "jobsvc_job_retries_total", type="diag.fail", queue="default") == retries
    ran = sum(1 for j in jobs if j["type"] == "diag.noop" and j["status"] == "succeeded")
    assert value(found, "jobsvc_job_run_seconds_count", type="diag.noop", queue="default") == ran
    assert value(found, "jobsvc_job_run_seconds_bucket", type="diag.noop", queue="default", le="+Inf") == ran
    assert value(found, "jobsvc_job_queue_wait_seconds_count", type="diag.noop", queue="default") == ran
    assert retried["id"] not in text  # no job ids in labels
    assert failing["id"] not in text


async def test_a_running_worker_adds_what_its_jobs_did_with_its_heartbeat(
    http: httpx.AsyncClient, background_worker: Any, settings: Settings
) -> None:
    async with background_worker():
        job = await submit(http, "diag.noop", {})
        assert (await http.get(f"/v1/jobs/{job['id']}?wait=10")).json()["status"] == "succeeded"
        finished = 0.0
        for _ in range(int(4 * settings.worker_heartbeat_s / 0.05)):  # a few heartbeats at most
            found = samples((await http.get("/metrics")).text)
            labels = {"type": "diag.noop", "queue": "default"}
            finished = value(found, "jobsvc_jobs_finished_total", outcome="succeeded", **labels)
            if finished:
                break
            await asyncio.sleep(0.05)
        assert finished == 1
        assert value(found, "jobsvc_job_run_seconds_count", **labels) == 1
        assert value(found, "jobsvc_job_queue_wait_seconds_count", **labels) == 1


async def test_queue_gauges_show_depth_and_the_oldest_ready_age(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    for _ in range(4):
        await submit(http, "diag.noop", {})
    await submit(http, "diag.noop", {}, delay_seconds=600)
    found = samples((await http.get("/metrics")).text)
    assert value(found, "jobsvc_queue_jobs", queue="default", state="ready") == 4
    assert value(found, "jobsvc_queue_jobs", queue="default", state="deferred") == 1
    assert value(found, "jobsvc_queue_jobs", queue="default", state="running") == 0
    assert value(found, "jobsvc_queue_oldest_ready_age_seconds", queue="default") >= 0
    assert value(found, "jobsvc_queue_oldest_ready_age_seconds", queue="bulk") == 0
    assert value(found, "jobsvc_workers") == 0


async def test_tenant_gauges_show_each_tenants_usage_against_its_limits_as_the_admin_api_does(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    acme = await http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["submit"]})
    as_acme = {"Authorization": f"Bearer {acme.json()['key']}"}
    for _ in range(3):
        await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}}, headers=as_acme)
    await run_jobs()
    await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}}, headers=as_acme)
    await http.put("/v1/admin/tenants/acme/quotas", json={"max_kept_jobs": 10})
    found = samples((await http.get("/metrics")).text)
    tenant = (await http.get("/v1/admin/tenants/acme")).json()
    assert (tenant["open_jobs"], tenant["kept_jobs"]) == (1, 4)
    for resource, limit in (("open_jobs", "max_open_jobs"), ("kept_jobs", "max_kept_jobs")):
        assert value(found, "jobsvc_tenant_usage", tenant="acme", resource=resource) == tenant[resource]
        assert value(found, "jobsvc_tenant_limit", tenant="acme", resource=resource) == tenant[limit]
    assert value(found, "jobsvc_tenant_usage", tenant="acme", resource="kept_bytes") == tenant["kept_bytes"]
    assert value(found, "jobsvc_tenant_limit", tenant="acme", resource="kept_jobs") == 10


async def test_request_durations_are_labelled_by_route_template_and_leave_streams_out(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    job = await submit(http, "diag.noop", {})
    await http.get(f"/v1/jobs/{job['id']}")
    await run_jobs()
    await http.get(f"/v1/jobs/{job['id']}/events")
    found = samples((await http.get("/metrics")).text)
    routes = {s.labels["route"] for s in found if s.name == "jobsvc_http_request_duration_seconds_count"}
    assert {"/v1/jobs", "/v1/jobs/{job_id}"} <= routes
    assert "/v1/jobs/{job_id}/events" not in routes
    assert not any(job["id"] in route for route in routes)
    assert (
        value(
            found, "jobsvc_http_request_duration_seconds_count", method="POST", route="/v1/jobs", status="202"
        )
        == 1
    )


async def test_in_production_metrics_answer_only_the_token_and_otherwise_404(settings: Settings) -> None:
    production = settings.model_copy(
        update={
            "environment": "production",
            "metrics_token": SecretStr(TOKEN),
            "webhook_secret": SecretStr("w" * 40),
        }
    )
    async with serve(create_app(production)) as http:
        assert (await http.get("/metrics", headers={"Authorization": ""})).status_code == 404
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 404
        # API keys are no metrics token: a tenant's, its admin's, an operator's, the bootstrap key
        for scopes in (["read"], ["read", "admin"], ["read", "admin", "operator"]):
            made = await http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": scopes})
            as_key = {"Authorization": f"Bearer {made.json()['key']}"}
            assert (await http.get("/metrics", headers=as_key)).status_code == 404, scopes
        assert (await http.get("/metrics")).status_code == 404  # serve's client sends the bootstrap key
        answer = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert samples(answer.text)
    tokenless = settings.model_copy(
        update={"environment": "production", "webhook_secret": SecretStr("w" * 40)}
    )
    async with serve(create_app(tokenless)) as http:
        assert (await http.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 404
