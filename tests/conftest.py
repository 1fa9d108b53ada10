"""Fixtures: a real Redis-compatible server for the session, flushed per test; the app through its real
lifespan; ARQ workers running the real job functions.

The server is the embedded Valkey by default; set ``JOBSVC_TEST_REDIS_URL`` to run against another one
(CI runs the suite a second time against the machine's Redis 7).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from arq import ArqRedis
from arq.worker import Worker, create_worker
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

import worker_settings
from jobs import registry
from jobs.definition import RetryPolicy
from jobs.engine.connection import open_pool, redis_settings_from_url
from jobs.engine.runner import arq_function
from service.api.app import create_app
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis
from tests.webhook_receiver import HookServer


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("JOBSVC_TEST_REDIS_URL")
    if external:
        yield external
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("embedded")) as server:
        yield server.url


#: the admin key of the tests' settings: every scope, tenant ``default``
ADMIN_KEY = "test-admin-key-" + "k" * 32


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        admin_api_key=SecretStr(ADMIN_KEY),
        diagnostics=True,
        data_dir=tmp_path / "data",
        storage_dir=tmp_path / "storage",
        worker_poll_delay_s=0.02,
        worker_heartbeat_s=0.5,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await open_pool(settings.effective_redis_url)
    await pool.flushdb()
    try:
        yield pool
    finally:
        await pool.aclose(close_connection_pool=True)


@pytest.fixture
async def app(settings: Settings, redis: ArqRedis) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://jobsvc.test", headers=auth(ADMIN_KEY)
    ) as client:
        yield client


def make_worker(settings: Settings, **overrides: Any) -> Worker:
    """An ARQ worker built from WorkerSettings, pointed at the test server and settings."""
    job_types = registry.job_types(diagnostics=settings.diagnostics)
    options: dict[str, Any] = {
        "functions": [arq_function(jt) for jt in job_types.values()],
        "redis_settings": redis_settings_from_url(settings.effective_redis_url),
        "ctx": {"settings": settings},
        "poll_delay": settings.worker_poll_delay_s,
        "health_check_interval": settings.worker_heartbeat_s,
        "handle_signals": False,
        **overrides,
    }
    return create_worker(worker_settings.WorkerSettings, **options)


@pytest.fixture
def run_jobs(settings: Settings) -> Any:
    """Run every queued job to its end with a burst-mode worker; returns the worker for its counters."""

    async def run(**overrides: Any) -> Worker:
        worker = make_worker(settings, burst=True, poll_delay=0, **overrides)
        try:
            await worker.main()
        finally:
            await worker.close()
        return worker

    return run


@asynccontextmanager
async def worker_running(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[Worker, asyncio.Task[None]]]:
    """A worker for ``settings`` that runs until the block ends: the worker, and the task running it."""
    worker = make_worker(settings, **overrides)
    task = asyncio.create_task(worker.main())
    try:
        yield worker, task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


@pytest.fixture
def background_worker(settings: Settings) -> Any:
    """``async with background_worker() as worker:`` a worker that runs until the block ends."""

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[Worker]:
        async with worker_running(settings, **overrides) as (worker, _):
            yield worker

    return running


@pytest.fixture
async def api_url(settings: Settings, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The URL of a uvicorn server running the app (and its lifespan) on a free port of this loop; the
    CLI calls it with the admin key from the environment."""
    monkeypatch.setenv("JOBSVC_API_KEY", ADMIN_KEY)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), lifespan="on", ws="none", log_config=None, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: show why
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def hook_server() -> AsyncIterator[HookServer]:
    hooks = HookServer()
    server = await asyncio.start_server(hooks.handle, "127.0.0.1", 0)
    hooks.port = server.sockets[0].getsockname()[1]
    try:
        yield hooks
    finally:
        hooks.released.set()
        server.close()
        await server.wait_closed()


@pytest.fixture
def longest_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each retry waits the longest its policy allows: full jitter may draw a wait so short that it is over
    before a test reads the job waiting for it."""

    def longest(policy: RetryPolicy, attempt: int) -> float:
        return min(policy.cap_s, policy.base_s * 2 ** (attempt - 1))

    monkeypatch.setattr(RetryPolicy, "delay_s", longest)
