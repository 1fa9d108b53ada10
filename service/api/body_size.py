"""An ASGI middleware that refuses request bodies over a size limit with 413, before they are read whole."""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import PayloadTooLarge, problem


class BodySizeLimit:
    """413 for a declared Content-Length over ``max_bytes``, or once a streamed body passes it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = problem(413, PayloadTooLarge.title, self._detail(), slug=PayloadTooLarge.slug)
            await response(scope, receive, send)
            return
        received = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise PayloadTooLarge(self._detail())
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:  # once over the limit, whatever the app answers is replaced by the 413
                await send(message)

        with contextlib.suppress(PayloadTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded:
            response = problem(413, PayloadTooLarge.title, self._detail(), slug=PayloadTooLarge.slug)
            await response(scope, receive, send)

    def _detail(self) -> str:
        return f"Request bodies are limited to {self.max_bytes} bytes."
