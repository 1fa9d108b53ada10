"""While ``JOBSVC_ENVIRONMENT`` is unset, development rules hold on loopback only: an ASGI middleware that
refuses connections which reached the API at any other address.

Settings decide the environment from ``JOBSVC_HOST``, but ``uvicorn service.main:app --host 0.0.0.0`` binds
where it is told, not where the settings say. The server reports the address each connection arrived at
(ASGI's ``server``), so an API running under development rules answers only what came through loopback and
tells everyone else, with 403, to set ``JOBSVC_ENVIRONMENT``.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import problem

SLUG = "environment-unset"
TITLE = "JOBSVC_ENVIRONMENT is unset"
DETAIL = (
    "This API runs under development rules because JOBSVC_ENVIRONMENT is unset, and development rules are "
    "served over loopback only. Set JOBSVC_ENVIRONMENT=production (or development, knowingly)."
)


class LoopbackOnly:
    """403 for HTTP and WebSocket connections that arrived at an address other than loopback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not arrived_on_loopback(scope):
            await problem(403, TITLE, DETAIL, slug=SLUG)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def arrived_on_loopback(scope: Scope) -> bool:
    """Whether the connection reached a loopback address. A server names the address it accepted on; a
    name instead of an address comes from an in-process transport, not a network. A Unix socket (uvicorn
    names its path, with no port) or no address at all is refused: a proxy may stand in front of it."""
    server = scope.get("server")
    if server is None or (server[1] is None and ("/" in server[0] or server[0].startswith("\0"))):
        return False
    try:
        address = ipaddress.ip_address(server[0])
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a dual-stack socket
    return address.is_loopback
