"""The web dashboard, served by the API itself under ``/dashboard``.

Server-rendered pages (Jinja2) over the same stores as the REST API, one small script and one stylesheet
shipped in ``static/`` (no build step, no other host), a session cookie opened with an API key, and live
updates pushed over Server-Sent Events. ``install_dashboard(app)`` mounts it all.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from service.dashboard import live
from service.dashboard.render import STATIC_DIR
from service.dashboard.routes import dead_letters, jobs, overview, signin

STATIC_PATH = "/dashboard/static"


class DashboardStatic(StaticFiles):
    """The dashboard's files, revalidated by ETag rather than never cached (``no-store`` is the API's)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Cache-Control", "no-cache")
            await send(message)

        await super().__call__(scope, receive, send_cached)


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's pages, its event stream and its static files."""
    for router in (signin.router, overview.router, jobs.router, dead_letters.router, live.router):
        app.include_router(router)
    app.mount(STATIC_PATH, DashboardStatic(directory=STATIC_DIR), name="dashboard-static")
