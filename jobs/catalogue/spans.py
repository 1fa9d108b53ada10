"""Client spans around the catalogue's outbound calls: the catalogue's only door to OpenTelemetry.

Each span is made only when the attempt runs inside a recording span, which the engine starts only
when tracing is on; otherwise, and when OpenTelemetry is not installed, :func:`client_span` gives a
handle that does nothing. Spans never carry an exception's message (a library's message may quote
credentials or URLs), only its type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, StatusCode

    _OTEL = True
except ImportError:  # pragma: no cover - opentelemetry-api comes with FastAPI
    _OTEL = False

#: headers the trace context travels in; a job's own values for them give way to the span's
TRACE_HEADERS = ("traceparent", "tracestate")


class ClientSpan:
    """A handle on the span of one outbound call; every method does nothing when there is no span."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, key: str, value: str | int) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)

    def fail(self, error_type: str) -> None:
        if self._span is not None:
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(StatusCode.ERROR)

    def http_status(self, status: int) -> None:
        """The response's status; 4xx and 5xx mark the span failed, as the HTTP conventions say."""
        self.set("http.response.status_code", status)
        if status >= 400:
            self.fail(str(status))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Put this span's W3C trace context into outgoing ``headers``, replacing any given."""
        if self._span is None:
            return
        for name in [name for name in headers if name.lower() in TRACE_HEADERS]:
            del headers[name]
        propagate.inject(headers)


_NO_SPAN = ClientSpan()


@contextmanager
def client_span(name: str, attributes: Mapping[str, str | int]) -> Iterator[ClientSpan]:
    """A client span, current inside the block, when the attempt is traced; the handle otherwise."""
    if not _OTEL or not trace.get_current_span().is_recording():
        yield _NO_SPAN
        return
    tracer = trace.get_tracer("jobsvc.catalogue")
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        handle = ClientSpan(span)
        try:
            yield handle
        except BaseException as exc:
            cls = type(exc)
            handle.fail(
                cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
            )
            raise
