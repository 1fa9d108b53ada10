"""The async client: the operations of ``_operations`` carried out over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self, TypeVar, final

import httpx

from jobsvc_client._core import (
    DEFAULT_URL,
    Call,
    Paging,
    Pause,
    Program,
    Request,
    Steps,
    Stream,
    default_headers,
    pages,
)
from jobsvc_client._operations import Operations
from jobsvc_client._sse import SSEDecoder
from jobsvc_client.errors import error_from_response

T = TypeVar("T")


@final
class AsyncJobsClient(Operations):
    """The same methods as :class:`~jobsvc_client.JobsClient`, to await (and ``async for``)::

        async with AsyncJobsClient("http://127.0.0.1:8000", api_key="...") as jobs:
            job = await jobs.submit("report.build", {"since_minutes": 60})
            done = await jobs.wait(job.id, timeout=120)

    Close an event stream you leave early: ``async with contextlib.aclosing(jobs.events()) as events``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=default_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, request: Request) -> httpx.Response:
        try:
            return await self._http.request(**request.options(self._timeout))
        except httpx.RequestError as exc:
            raise request.failed(exc, self._http.base_url) from exc

    async def _run(self, operation: Call[T] | Program[T]) -> T:
        steps, answer = Steps(operation), None
        while (step := steps.send(answer)) is not None:
            if isinstance(step, Pause):
                answer = None
                await asyncio.sleep(step.seconds)
            else:
                answer = step.answer(await self._send(step.request))
        return steps.result

    async def _iterate(self, items: Paging[Any, T] | Stream[T]) -> AsyncIterator[T]:
        if isinstance(items, Stream):
            async for event in self._stream(items):
                yield event
            return
        call: Call[Any] | None = items.page(None)
        while call is not None:
            found, call = pages(items, await self._run(call))
            for item in found:
                yield item

    async def _stream(self, stream: Stream[T]) -> AsyncIterator[T]:
        try:
            async with self._http.stream(**stream.request.options(self._timeout)) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    if (event := decoder.feed(line)) is not None:
                        yield stream.decode(event)
        except httpx.RequestError as exc:
            raise stream.request.failed(exc, self._http.base_url) from exc
