"""Server-Sent Events, decoded line by line as the WHATWG spec says; no I/O here, the transports feed
the lines."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


@dataclass
class SSEDecoder:
    """``feed(line)`` for each line of the stream (without its line break); an event comes out at the
    blank line that ends it. Comments (``: ping``) and events without data are skipped."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    #: the last id seen: it carries over to later events that name none, as in a browser
    last_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event=event, data="\n".join(data), id=self.last_id)
