"""Every error of the contract answers problem+json and changes nothing in Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from arq import ArqRedis

from tests.helpers import assert_problem

PROBLEM = "application/problem+json"


async def assert_nothing_written(redis: ArqRedis) -> None:
    assert await redis.dbsize() == 0


async def test_unknown_job_type_is_404_and_writes_nothing(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await http.post("/v1/jobs", json={"type": "no.such_type", "params": {}})
    body = assert_problem(response, 404)
    assert body["type"] == "/problems/unknown-job-type"
    await assert_nothing_written(redis)


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"seconds": "soon"}, "/params/seconds"),
        ({"seconds": -1}, "/params/seconds"),
        ({}, "/params/seconds"),
        ({"seconds": 1, "unexpected": True}, "/params/unexpected"),
    ],
)
async def test_params_failing_the_schema_are_422_and_nothing_is_enqueued(
    http: httpx.AsyncClient, redis: ArqRedis, params: dict[str, Any], pointer: str
) -> None:
    response = await http.post("/v1/jobs", json={"type": "diag.sleep", "params": params})
    body = assert_problem(response, 422)
    assert pointer in [error["pointer"] for error in body["errors"]]
    await assert_nothing_written(redis)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"params": {}}, "/type"),
        ({"type": "diag.noop", "priority": 10}, "/priority"),
        ({"type": "diag.noop", "max_attempts": 0}, "/max_attempts"),
        ({"type": "diag.noop", "delay_seconds": -5}, "/delay_seconds"),
        ({"type": "diag.noop", "run_at": "2001-01-01T00:00:00Z"}, "/run_at"),
        ({"type": "diag.noop", "run_at": "2030-01-01T00:00:00"}, "/run_at"),
        ({"type": "diag.noop", "queue": "other"}, "/queue"),
        ({"type": "diag.noop", "surprise": 1}, "/surprise"),
        ({"type": "diag.noop", "delay_seconds": 1, "run_at": "2099-01-01T00:00:00Z"}, "/"),
    ],
)
async def test_malformed_submissions_are_422_naming_the_field(
    http: httpx.AsyncClient, redis: ArqRedis, body: dict[str, Any], pointer: str
) -> None:
    response = await http.post("/v1/jobs", json=body)
    problem = assert_problem(response, 422)
    assert pointer in [error["pointer"] for error in problem["errors"]]
    await assert_nothing_written(redis)


async def test_malformed_json_is_400(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await http.post(
        "/v1/jobs", content=b'{"type": "diag.noop",', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)
    await assert_nothing_written(redis)


async def test_a_body_that_is_not_an_object_is_422(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await http.post("/v1/jobs", json=["diag.noop"])
    assert_problem(response, 422)
    await assert_nothing_written(redis)


async def test_a_5_mib_body_is_413(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    payload = b'{"type": "diag.noop", "params": {"x": "' + b"a" * (5 * 1024 * 1024) + b'"}}'
    response = await http.post("/v1/jobs", content=payload, headers={"content-type": "application/json"})
    assert_problem(response, 413)
    await assert_nothing_written(redis)


async def test_a_streamed_body_over_the_limit_is_413(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    async def chunks() -> Any:
        yield b'{"type": "diag.noop", "params": {"x": "'
        for _ in range(3):
            yield b"a" * 512 * 1024
        yield b'"}}'

    response = await http.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413)
    await assert_nothing_written(redis)


async def test_unknown_job_id_is_404(http: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await http.request(method, "/v1/jobs/0123456789abcdef")
        body = assert_problem(response, 404)
        assert body["type"] == "/problems/job-not-found"


async def test_a_malformed_job_id_is_422(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/jobs/bad id*")
    assert_problem(response, 422)


async def test_unknown_path_is_404_and_wrong_method_is_405(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/v1/nothing-here"), 404)
    assert_problem(await http.put("/v1/jobs"), 405)


async def test_wait_over_the_limit_is_422(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/v1/jobs/abc", params={"wait": 61}), 422)


async def test_a_bad_cursor_is_400(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/v1/jobs", params={"cursor": "not-a-cursor"}), 400)


async def test_an_unexpected_error_is_a_500_problem_without_a_trace(app: Any) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobsvc.test") as http:
        response = await http.get("/boom")
    body = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert body["type"] == "/problems/internal-error"
