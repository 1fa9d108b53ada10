"""Hostile input changes nothing: limits on every size, and nothing a client sends becomes a Redis key."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from arq import ArqRedis

from service.config import Settings
from tests.helpers import submit

#: a job id the service made: a submit's random id, or a schedule tick's (jobs.schedules.Schedule.job_id;
#: the schedule's name is the code's, checked against SCHEDULE_NAME)
JOB_ID = r"([0-9a-f]{32}|cron:[a-z][a-z0-9_-]{0,63}:\d+)"
#: every key jobsvc writes, by shape: fixed prefixes, then ids and names the service made or checked
SAFE_KEY = re.compile(
    rf"^(arq:(job|result|in-progress|retry):{JOB_ID}"
    r"|arq:queue(:[a-z][a-z0-9_-]*)?|arq:abort"
    rf"|jobsvc:(job|attempts|dependents):{JOB_ID}|jobsvc:schedule:[a-z][a-z0-9_-]{{0,63}}"
    r"|jobsvc:idempotency:[0-9a-f]{64}"
    r"|jobsvc:index:t:[a-z0-9_-]+(:type:[a-z0-9_.]+|:queue:[a-z0-9_-]+|:status:(succeeded|failed|cancelled))?"
    r"|jobsvc:(ready|deferred|running|wake|intake|fair):[a-z][a-z0-9_-]*"
    r"|jobsvc:tenant:[a-z0-9_-]+:(open|quotas|webhook-secrets|submits:\d+|kept|kept:until|kept:\d+)"
    r"|jobsvc:limit:[a-z0-9_.]+(:[0-9a-f]{16})?:(starts|running|parked)"
    r"|jobsvc:stats:[a-z][a-z0-9_-]*:\d+"
    r"|jobsvc:(lease_seq|tenants|apikeys|settling|timers|workers|diag:log|arq_owned|parked_limits|sweep)"
    r"|jobsvc:dead:[a-z0-9_-]+|jobsvc:dead:q:[a-z][a-z0-9_-]*"
    r"|jobsvc:events:t:[a-z0-9_-]+|jobsvc:metrics"
    r"|jobsvc:apikey:[0-9a-f]{16}"
    r"|jobsvc:released:\d+|jobsvc:(claimed|tallied):[A-Za-z0-9_.-]+)$"
)
LONG, MANY = "l" * 101, ["x"] * 101
HOSTILE = "../../*?[a]{}\\\x00:\r\n' OR 1=1; FLUSHALL -- ☠"


async def test_hostile_strings_never_become_redis_keys(
    http: httpx.AsyncClient, redis: ArqRedis, run_jobs: Any
) -> None:
    await http.post(
        "/v1/jobs",
        headers={"Idempotency-Key": "../*:{x}" * 20},
        json={
            "type": "webhook.deliver",
            "params": {"url": "http://127.0.0.1:9/x", "payload": {HOSTILE: HOSTILE}},
            "max_attempts": 1,
        },
    )
    await http.post("/v1/jobs", json={"type": "diag.sleep", "params": {"seconds": 0, "tag": HOSTILE}})
    await http.post("/v1/jobs", json={"type": "diag.record", "params": {"label": HOSTILE[:100]}})
    in_url = quote(HOSTILE, safe="")
    for path in (f"/v1/jobs/{in_url}", "/v1/jobs/..%2F..%2Farq:queue", f"/v1/dead-letters/{in_url}"):
        assert (await http.get(path)).status_code in (404, 422)
    await http.get("/v1/jobs", params={"type": HOSTILE, "queue": HOSTILE, "cursor": HOSTILE})
    await http.post("/v1/admin/keys", json={"tenant": HOSTILE, "scopes": ["read"]})
    await run_jobs()
    keys = [key.decode() async for key in redis.scan_iter(count=1000)]
    assert keys  # the jobs above were written
    assert [key for key in keys if not SAFE_KEY.match(key)] == []


async def test_params_over_the_size_limit_are_refused_and_nothing_is_written(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    payload = {"blob": "x" * settings.max_params_bytes}
    response = await http.post(
        "/v1/jobs",
        json={"type": "webhook.deliver", "params": {"url": "https://example.com/", "payload": payload}},
    )
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/params"]
    assert await redis.dbsize() == 0
    assert (await submit(http, "diag.record", {"label": "small"}))["status"] == "queued"


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"method": "GET", "url": "/v1/jobs", "params": {"limit": 501}}, 422),
        ({"method": "GET", "url": "/v1/jobs/x", "params": {"wait": 61}}, 422),
        ({"method": "GET", "url": "/v1/jobs", "params": {"cursor": "c" * 301}}, 422),
        ({"method": "POST", "url": "/v1/jobs:batch", "json": {"jobs": [{"type": "diag.noop"}] * 1001}}, 422),
        ({"method": "POST", "url": "/v1/jobs", "json": {"type": "diag.noop", "colour": "red"}}, 422),
        (
            {
                "method": "POST",
                "url": "/v1/jobs",
                "json": {"type": "diag.record", "params": {"label": "l" * 101}},
            },
            422,
        ),
        (
            {"method": "POST", "url": "/v1/jobs", "json": {"type": "diag.noop", "depends_on": ["x"] * 101}},
            422,
        ),
        ({"method": "POST", "url": "/v1/jobs", "json": {"type": "a" * 101 + ".b"}}, 422),
        ({"method": "POST", "url": "/v1/jobs", "content": b"{" * 10_000}, 400),
        ({"method": "POST", "url": "/v1/jobs", "content": b"x" * (2 * 1024 * 1024)}, 413),
    ],
)
async def test_every_size_and_shape_limit_answers_a_clear_4xx_and_writes_nothing(
    http: httpx.AsyncClient, redis: ArqRedis, request_args: dict[str, Any], status: int
) -> None:
    headers = {"content-type": "application/json"}
    response = await http.request(**request_args, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await redis.dbsize() == 0


def webhook_nested(depth: int) -> bytes:
    """A webhook.deliver submit whose payload is ``{"a": {"a": … {}}}``, ``depth`` objects deep, written as
    text: a client's own JSON encoder would stop at its recursion limit first."""
    payload = '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)
    params = f'{{"url": "https://example.com/hook", "payload": {payload}}}'
    return f'{{"type": "webhook.deliver", "params": {params}}}'.encode()


@pytest.mark.parametrize(
    ("depth", "status"),
    [
        (33, 422),  # one level past the limit
        (400, 422),  # used to reach the serializers' recursion limits: a 500
        (5_000, 400),  # past what the server parses as JSON at all: the body is refused as unreadable
    ],
)
async def test_params_nested_too_deep_are_refused_with_a_problem_and_nothing_is_written(
    http: httpx.AsyncClient, redis: ArqRedis, depth: int, status: int
) -> None:
    body = webhook_nested(depth)
    json_headers = {"content-type": "application/json"}
    response = await http.post("/v1/jobs", content=body, headers=json_headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if status == 422:
        assert [e["pointer"] for e in response.json()["errors"]] == ["/params"]
    batch = await http.post("/v1/jobs:batch", content=b'{"jobs": [' + body + b"]}", headers=json_headers)
    assert batch.status_code == status, batch.text
    assert await redis.dbsize() == 0


async def test_params_at_the_nesting_limit_are_accepted(http: httpx.AsyncClient) -> None:
    body = webhook_nested(30)  # with params and payload themselves: 32 levels
    response = await http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text


async def test_an_internal_job_type_is_neither_listed_nor_accepted_over_the_api(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    """maintenance.cleanup reads every tenant's records: only its schedule runs it."""
    before = await redis.dbsize()
    for body in (
        {"type": "maintenance.cleanup", "params": {}},
        {"jobs": [{"type": "maintenance.cleanup", "params": {}}]},
    ):
        path = "/v1/jobs:batch" if "jobs" in body else "/v1/jobs"
        refused = await http.post(path, json=body)
        assert refused.status_code in (404, 422), refused.text
        assert "maintenance.cleanup" in refused.text
    assert await redis.dbsize() == before
    listed = {job_type["name"] for job_type in (await http.get("/v1/job-types")).json()["job_types"]}
    assert "maintenance.cleanup" not in listed
    assert {"email.send", "webhook.deliver"} <= listed
