"""Browser-facing hardening: security headers on every response, and CORS only for configured origins.

``install_security(app, settings)`` is called last in ``create_app``, so its middleware is the outermost one
we add: 413s from the body limit, 404/422 problems and CORS preflight answers all carry the headers. Only a
500 from Starlette's own ``ServerErrorMiddleware`` (always outermost) is sent without them.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings

#: An API answers JSON only: it loads nothing, runs nothing and is framed by no one.
API_CSP = "default-src 'none'; frame-ancestors 'none'"

#: What FastAPI's Swagger UI and ReDoc pages load: their bundles and CSS from jsDelivr, an inline bootstrap
#: script, inline styles, Google Fonts (ReDoc), a favicon, ReDoc's blob: web worker, and the OpenAPI
#: document from this origin.
DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net",
        "worker-src blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ]
)

#: Set on every response unless the application already set the header.
STATIC_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)

CORS_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
CORS_EXPOSED_HEADERS = ("Location", "Retry-After")


class SecurityHeaders:
    """Adds :data:`STATIC_HEADERS` and a Content-Security-Policy to each HTTP response's start message.

    Only ``http.response.start`` is touched, so streamed bodies pass through chunk by chunk. Paths in
    ``docs_paths`` (the interactive docs) get :data:`DOCS_CSP`, every other path :data:`API_CSP`.
    """

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] in self.docs_paths else API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in STATIC_HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _docs_paths(app: FastAPI) -> list[str]:
    paths = [app.docs_url, app.redoc_url]
    if app.docs_url and app.swagger_ui_oauth2_redirect_url:
        paths.append(app.swagger_ui_oauth2_redirect_url)
    return [path for path in paths if path]


def install_security(app: FastAPI, settings: Settings) -> None:
    """Add CORS (only when ``settings.cors_origins`` is non-empty) and, outside it, the security headers.

    Call it after every other ``add_middleware``: the last one added runs first.
    """
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            allow_credentials=False,
        )
    app.add_middleware(SecurityHeaders, docs_paths=_docs_paths(app))
