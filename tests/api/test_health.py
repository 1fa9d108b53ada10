"""/healthz, /readyz, and what the API answers while Redis is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from arq import ArqRedis
from asgi_lifespan import LifespanManager

from jobs.engine.connection import SOCKET_TIMEOUT_S, open_pool
from service.api.app import create_app
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis
from tests.conftest import ADMIN_KEY
from tests.helpers import serve


async def test_healthz_answers_while_the_process_serves(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_wants_a_fresh_worker_heartbeat(http: httpx.AsyncClient, background_worker: Any) -> None:
    not_ready = await http.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.headers["content-type"] == "application/problem+json"
    assert "worker" in not_ready.json()["detail"]

    async with background_worker():
        async with asyncio.timeout(5):
            while (await http.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.05)
        assert (await http.get("/readyz")).json()["checks"] == {"redis": "ok", "workers": "ok"}
    assert (await http.get("/readyz")).status_code == 503  # a worker that stops takes its heartbeat along


async def test_api_answers_503_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()  # from this thread: the server lives as long as its starting thread
    app = create_app(Settings(admin_api_key=ADMIN_KEY, redis_url=url, diagnostics=True, data_dir=tmp_path))
    try:
        async with serve(app) as http:
            accepted = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
            assert accepted.status_code == 202

            server.stop()
            down = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert (await http.get("/readyz")).status_code == 503

            server.start()
            again = await http.get(f"/v1/jobs/{accepted.json()['id']}")
            assert again.status_code == 200
            assert again.json()["status"] == "queued"
    finally:
        server.stop()


async def test_lifespan_opens_the_pool_on_app_state_and_closes_it(settings: Settings) -> None:
    app = create_app(settings)
    observer = await open_pool(settings.effective_redis_url)
    try:
        before = await connected_clients(observer)
        async with LifespanManager(app):
            await app.state.arq.ping()
            assert await connected_clients(observer) == before + 1
        # the server counts a closed connection out when it reads the close, a moment later
        async with asyncio.timeout(5):
            while await connected_clients(observer) != before:
                await asyncio.sleep(0.01)
    finally:
        await observer.aclose(close_connection_pool=True)


async def connected_clients(redis: ArqRedis) -> int:
    info = await redis.info("clients")
    return int(info["connected_clients"])


async def test_api_answers_503_rather_than_hang_while_redis_does_not_respond(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    app = create_app(
        Settings(admin_api_key=ADMIN_KEY, redis_url=server.start(), diagnostics=True, data_dir=tmp_path)
    )
    try:
        async with serve(app) as http:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGSTOP)  # alive, listening, silent
            try:
                started = time.monotonic()
                response = await http.get("/v1/jobs/some-id")
                waited = time.monotonic() - started
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert waited < SOCKET_TIMEOUT_S + 2
            assert (await http.get("/v1/jobs/some-id")).status_code == 404
    finally:
        server.stop()
