"""A real HTTP server on 127.0.0.1 that webhooks are delivered to, recording what it receives (the
``hook_server`` fixture, in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus

#: a status the test server answers with by never answering
HANG = 0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookServer:
    """A minimal HTTP/1.1 server that records each request and answers the queued statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    reply: bytes = b'{"ok":true}'
    port: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/orders"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            status = self.statuses.pop(0) if self.statuses else 200
            if status == HANG:
                await self.released.wait()
                return
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.reply)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + self.reply)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
