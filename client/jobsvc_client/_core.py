"""The sans-I/O core: an operation is described here once, as data, and the transports (``_sync``,
``_async``) carry it out.

* :class:`Call`: one request and the parser of its answer.
* A :data:`Program`: a generator that yields calls (and :class:`Pause`) and returns the result, for
  operations of several round trips (``wait``); ``answer = yield from call`` inside one.
* :class:`Paging`: every item of a listing, page after page.
* :class:`Stream`: a Server-Sent Events request and the decoder of its events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from jobsvc_client._sse import ServerSentEvent
from jobsvc_client.errors import TransportError, UnexpectedAnswer, error_from_response
from jobsvc_client.models import JobEvent

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
I = TypeVar("I")  # noqa: E741 - the item of a listing or a stream

DEFAULT_URL = "http://127.0.0.1:8000"
#: a stream's read timeout is at least this: the service sends a keep-alive comment every 15 s
STREAM_READ_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Request:
    """One HTTP request, described; the path is relative to the client's base URL."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    #: seconds this request may take beyond the client's timeout (a ``?wait=`` the service holds)
    extra_timeout_s: float = 0.0
    #: a stream's read timeout, when it must be longer than the client's timeout
    min_read_timeout_s: float = 0.0

    def options(self, timeout_s: float) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` (and ``.stream``) for this request."""
        total = timeout_s + self.extra_timeout_s
        return {
            "method": self.method,
            "url": self.path,
            "params": self.params,
            "json": self.json,
            "headers": self.headers,
            "timeout": httpx.Timeout(total, read=max(total, self.min_read_timeout_s)),
        }

    def failed(self, exc: httpx.RequestError, base_url: httpx.URL) -> TransportError:
        reason = str(exc) or type(exc).__name__
        return TransportError(f"{self.method} {self.path} at {base_url}: {reason}")


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and what its answer means."""

    request: Request
    parse: Callable[[httpx.Response], T]

    def answer(self, response: httpx.Response) -> T:
        """The parsed answer of a response already read, or the :class:`ApiError` it means."""
        if response.is_error:
            raise error_from_response(response)
        return self.parse(response)

    def __iter__(self) -> Generator[Call[T], Any, T]:
        """The call as a one-step program: ``answer = yield from call``."""
        answer: T = yield self
        return answer


@dataclass(frozen=True)
class Pause:
    """A step of a program: wait this long before the next call."""

    seconds: float


#: an operation of several steps; the transport sends each call's answer back into it
Program: TypeAlias = Generator[Call[Any] | Pause, Any, T]


class Page(Protocol):
    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=Page)


@dataclass(frozen=True)
class Paging(Generic[P, I]):
    """Every item of a listing: ``page(cursor)`` asks for one page (None: the first), ``items`` picks
    its items; the pages follow each other's ``next_cursor`` until there is none."""

    page: Callable[[str | None], Call[P]]
    items: Callable[[P], Sequence[I]]


@dataclass(frozen=True)
class Stream(Generic[I]):
    """A Server-Sent Events request; each event becomes an item through ``decode``."""

    request: Request
    decode: Callable[[ServerSentEvent], I]


def model(kind: type[M]) -> Callable[[httpx.Response], M]:
    """The parser of an answer whose body is a ``kind``."""

    def parse(response: httpx.Response) -> M:
        try:
            return kind.model_validate_json(response.content)
        except ValidationError as exc:
            raise UnexpectedAnswer(
                f"{response.request.method} {response.request.url} answered {response.status_code} "
                f"with a body that is not a {kind.__name__}"
            ) from exc

    return parse


def no_content(response: httpx.Response) -> None:
    """The parser of an answer with nothing to say (204)."""


def job_event(sse: ServerSentEvent) -> JobEvent:
    try:
        data = json.loads(sse.data)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UnexpectedAnswer(f"a {sse.event!r} event whose data is not a JSON object: {sse.data[:200]!r}")
    return JobEvent(id=sse.id, event=sse.event, data=data)


def send(
    method: str,
    path: str,
    kind: type[M],
    body: BaseModel | None = None,
    *,
    query: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Call[M]:
    """The usual call: a JSON body (None: none), a query (None values left out), a ``kind`` answer."""
    return Call(request(method, path, body, query=query, headers=headers), model(kind))


def request(
    method: str,
    path: str,
    body: BaseModel | None = None,
    *,
    query: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
    extra_timeout_s: float = 0.0,
    min_read_timeout_s: float = 0.0,
) -> Request:
    """A request with a JSON body (None values left out) and a query (None values left out)."""
    params = {name: str(value) for name, value in (query or {}).items() if value is not None}
    payload = body.model_dump(mode="json", exclude_none=True) if body is not None else None
    return Request(
        method,
        path,
        params=params or None,
        json=payload,
        headers=headers or None,
        extra_timeout_s=extra_timeout_s,
        min_read_timeout_s=min_read_timeout_s,
    )


def segment(value: str) -> str:
    """An id made safe as one segment of a path."""
    return quote(value, safe="")


class Steps(Generic[T]):
    """A program driven step by step: ``send(answer)`` gives the next step, None once ``result`` is in.
    The transports loop over it, sending each call and sleeping each pause their own way."""

    def __init__(self, operation: Call[T] | Program[T]) -> None:
        self._program = iter(operation) if isinstance(operation, Call) else operation

    def send(self, answer: Any) -> Call[Any] | Pause | None:
        try:
            return self._program.send(answer)
        except StopIteration as done:
            self.result: T = done.value
            return None


def pages(paging: Paging[P, I], page: P) -> tuple[Sequence[I], Call[P] | None]:
    """A page's items, and the call for the next page (None: it was the last)."""
    cursor = page.next_cursor
    return paging.items(page), None if cursor is None else paging.page(cursor)


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json, application/problem+json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers
