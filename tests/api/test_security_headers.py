"""Security headers on every kind of response, a docs-only CSP, streaming left intact, and CORS only when
origins are configured."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from arq import ArqRedis
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from service.api.app import create_app
from service.api.security import API_CSP, DOCS_CSP, SecurityHeaders
from service.config import Settings
from tests.helpers import serve

ALLOWED = "https://ops.example.com"
OTHER = "https://evil.example.net"
UNKNOWN_JOB = "0" * 32

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
    "content-security-policy": API_CSP,
}


def secured_app(settings: Settings) -> FastAPI:
    """The app as create_app builds it (install_security included), plus a route that sets its own
    Cache-Control."""
    app = create_app(settings)

    @app.get("/test/cached", include_in_schema=False)
    async def cached() -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"Cache-Control": "public, max-age=60"})

    return app


@pytest.fixture
async def http(settings: Settings, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(secured_app(settings)) as client:
        yield client


@pytest.fixture
async def cors_http(settings: Settings, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(secured_app(settings.model_copy(update={"cors_origins": [ALLOWED]}))) as client:
        yield client


def assert_secured(response: httpx.Response, **overrides: str) -> None:
    expected = {**EXPECTED, **overrides}
    assert {name: response.headers.get(name) for name in expected} == expected


async def test_success_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/job-types")
    assert response.status_code == 200
    assert_secured(response)


async def test_healthz_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert_secured(response)


async def test_not_found_problem_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v1/jobs/{UNKNOWN_JOB}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert_secured(response)


async def test_unrouted_path_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.get("/no/such/path")
    assert response.status_code == 404
    assert_secured(response)


async def test_validation_error_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/jobs", params={"limit": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert_secured(response)


async def test_body_limit_refusal_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/jobs", content=b"{}", headers={"Content-Type": "application/json", "Content-Length": "99999999"}
    )
    assert response.status_code == 413
    assert_secured(response)


async def test_accepted_submit_carries_every_security_header(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
    assert response.status_code == 202, response.text
    assert_secured(response)


async def test_a_cache_control_set_by_the_app_is_kept(http: httpx.AsyncClient) -> None:
    response = await http.get("/test/cached")
    assert response.status_code == 200
    assert_secured(response, **{"cache-control": "public, max-age=60"})


async def test_openapi_document_gets_the_api_policy(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert_secured(response)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_get_a_policy_allowing_what_they_load(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert_secured(response, **{"content-security-policy": DOCS_CSP})
    origins = {
        f"{parts.scheme}://{parts.netloc}"
        for url in re.findall(r'(?:src|href)="([^"]+)"', response.text)
        if (parts := urlsplit(url)).netloc
    }
    assert origins, "the docs page loads nothing from elsewhere: the test no longer sees its assets"
    assert all(origin in DOCS_CSP for origin in origins), origins
    assert "frame-ancestors 'none'" in DOCS_CSP


async def test_streamed_body_passes_through_chunk_by_chunk() -> None:
    """The first chunk reaches the server before the app has produced the second one."""
    first_chunk_sent = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one\n"
        await asyncio.wait_for(first_chunk_sent.wait(), timeout=5)
        yield b"two\n"

    inner = StreamingResponse(chunks(), media_type="text/plain")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await inner(scope, receive, send)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"one\n":
            first_chunk_sent.set()

    async def receive() -> Message:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/stream", "headers": []}
    await SecurityHeaders(app)(scope, receive, send)

    start, *bodies = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == API_CSP
    assert [m.get("body") for m in bodies if m.get("body")] == [b"one\n", b"two\n"]
    assert bodies[-1].get("more_body", False) is False


async def test_cors_is_off_by_default(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/job-types", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_is_not_answered_when_cors_is_off(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/v1/jobs", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert response.status_code == 405
    assert_secured(response)


async def test_configured_origin_gets_cors_headers(cors_http: httpx.AsyncClient) -> None:
    response = await cors_http.get("/v1/job-types", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"location", "retry-after"}
    assert "access-control-allow-credentials" not in response.headers
    assert_secured(response)


async def test_configured_origin_preflight_is_answered(cors_http: httpx.AsyncClient) -> None:
    response = await cors_http.options(
        "/v1/jobs",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "DELETE", "OPTIONS"}
    allowed_headers = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed_headers
    assert "access-control-allow-credentials" not in response.headers
    assert_secured(response)


async def test_other_origin_gets_no_cors_headers(cors_http: httpx.AsyncClient) -> None:
    response = await cors_http.get("/v1/job-types", headers={"Origin": OTHER})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_other_origin_preflight_is_refused(cors_http: httpx.AsyncClient) -> None:
    response = await cors_http.options(
        "/v1/jobs", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_for_a_method_not_allowed_is_refused(cors_http: httpx.AsyncClient) -> None:
    response = await cors_http.options(
        "/v1/jobs", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"}
    )
    assert response.status_code == 400
