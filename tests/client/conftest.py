"""Both clients behind one awaitable face, so that each behaviour test runs for each: the async client as
it is, the sync one in a thread (the server runs on the test's loop and must keep answering)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest
from jobsvc_client import AsyncJobsClient, JobsClient

from tests.conftest import ADMIN_KEY

BASE_URL = "http://jobsvc.test"
KINDS = ["async", "sync"]


class AsyncFace:
    """The async client: its methods as they are; ``collect`` gathers what an iterating method yields."""

    def __init__(self, client: AsyncJobsClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def collect(self, name: str, *args: Any, limit: int | None = None, **kwargs: Any) -> list[Any]:
        found: list[Any] = []
        async with aclosing(getattr(self.client, name)(*args, **kwargs)) as items:
            async for item in items:
                found.append(item)
                if len(found) == limit:
                    break
        return found


class ThreadedFace:
    """The sync client: each call runs in a thread and is awaited."""

    def __init__(self, client: JobsClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    async def collect(self, name: str, *args: Any, limit: int | None = None, **kwargs: Any) -> list[Any]:
        def gather() -> list[Any]:
            items = getattr(self.client, name)(*args, **kwargs)
            try:
                return list(itertools.islice(items, limit))
            finally:
                items.close()

        return await asyncio.to_thread(gather)


@asynccontextmanager
async def open_client(kind: str, base_url: str, **options: Any) -> AsyncIterator[Any]:
    """One of the clients, behind its awaitable face."""
    if kind == "async":
        async with AsyncJobsClient(base_url, **options) as client:
            yield AsyncFace(client)
    else:
        with JobsClient(base_url, **options) as sync_client:
            yield ThreadedFace(sync_client)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def jobs(kind: str, api_url: str) -> AsyncIterator[Any]:
    """A client of the app served by uvicorn (real HTTP, real lifespan), with the admin key."""
    async with open_client(kind, api_url, api_key=ADMIN_KEY) as client:
        yield client


def answering(status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> Any:
    """A transport (for either client) that gives every request the same answer, as a proxy or another
    server might."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type, **(headers or {})})

    return httpx.MockTransport(handler)
