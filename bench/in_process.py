"""The app in this process, over ASGI, with its real lifespan: for the benchmarks that time the API's own
work (``bench.batch``, ``bench.depth``) without a server process or a socket in between. As under uvicorn
(``service.main``), the objects alive once the app is built are frozen out of the collector's passes: the
benchmarks are entry points of their own processes, never imported by the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from service.api.app import create_app
from service.collector import freeze_startup_objects
from service.config import Settings


def bench_settings(redis_url: str, admin_key: str, **overrides: Any) -> Settings:
    """The app's settings in a benchmark: the diagnostics job types, an admin key to sign in with, and
    tenant quotas that stay on (checked in the submit script) but never bind."""
    return Settings(
        redis_url=redis_url,
        diagnostics=True,
        admin_api_key=SecretStr(admin_key),
        tenant_submits_per_s=10_000_000,
        tenant_max_open_jobs=100_000_000,
        **overrides,
    )


@contextlib.asynccontextmanager
async def in_process_api(
    settings: Settings, *, timeout_s: float
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app started against an emptied server (FLUSHDB of ``settings.redis_url``'s database) and a client
    of it signed in with ``settings.admin_api_key``."""
    assert settings.admin_api_key is not None, "the benchmarks sign in with the admin key"
    app = create_app(settings)
    freeze_startup_objects()
    headers = {"Authorization": f"Bearer {settings.admin_api_key.get_secret_value()}"}
    transport = httpx.ASGITransport(app=app)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers, timeout=timeout_s
        ) as http,
    ):
        await app.state.arq.flushdb()
        yield app, http
