"""The sync client: the operations of ``_operations`` carried out over ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
class JobsClient(Operations):
    """Submit, read, wait for, cancel, list and follow the jobs of one jobsvc service, and run it::

        with JobsClient("http://127.0.0.1:8000", api_key="...") as jobs:
            job = jobs.submit("report.build", {"since_minutes": 60})
            done = jobs.wait(job.id, timeout=120)

    Use it as a context manager, or call :meth:`close` when done. ``transport`` replaces httpx's
    (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=base_url, headers=default_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, request: Request) -> httpx.Response:
        try:
            return self._http.request(**request.options(self._timeout))
        except httpx.RequestError as exc:
            raise request.failed(exc, self._http.base_url) from exc

    def _run(self, operation: Call[T] | Program[T]) -> T:
        steps, answer = Steps(operation), None
        while (step := steps.send(answer)) is not None:
            if isinstance(step, Pause):
                answer = None
                time.sleep(step.seconds)
            else:
                answer = step.answer(self._send(step.request))
        return steps.result

    def _iterate(self, items: Paging[Any, T] | Stream[T]) -> Iterator[T]:
        if isinstance(items, Stream):
            yield from self._stream(items)
            return
        call: Call[Any] | None = items.page(None)
        while call is not None:
            found, call = pages(items, self._run(call))
            yield from found

    def _stream(self, stream: Stream[T]) -> Iterator[T]:
        try:
            with self._http.stream(**stream.request.options(self._timeout)) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                decoder = SSEDecoder()
                for line in response.iter_lines():
                    if (event := decoder.feed(line)) is not None:
                        yield stream.decode(event)
        except httpx.RequestError as exc:
            raise stream.request.failed(exc, self._http.base_url) from exc
