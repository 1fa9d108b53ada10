"""What dashboard routes declare: the signed-in session, and for actions a valid CSRF token and a scope.

Refusals are pages, not problem+json: :class:`DashboardRoute` turns a missing session into a redirect to
the sign-in form and any :class:`~service.api.errors.ServiceError` (or refusal) into an HTML page with the
error's status, so a person sees what went wrong and a link back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse, Response

from service.api.errors import ServiceError
from service.config import Settings
from service.dashboard.render import page
from service.dashboard.session import (
    CLUSTER_SCOPE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    DashboardSession,
    SessionStore,
    tokens_match,
)

HOME = "/dashboard"
SIGN_IN = "/dashboard/sign-in"
FORM_TYPE = "application/x-www-form-urlencoded"
#: the most form fields read from one body (the forms here have at most five)
MAX_FIELDS = 20


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in form, and back here after it."""


class DashboardRefusal(ServiceError):
    """A refusal shown as a page (403 without the scope or the form's token, 404 for a bad path)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title = status, title


def session_store(request: Request) -> SessionStore:
    settings: Settings = request.app.state.settings
    return SessionStore(
        request.app.state.arq,
        ttl_s=settings.dashboard_session_ttl_s,
        admin_key_configured=settings.admin_api_key is not None,
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path on this host, never another site."""
    if not target:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or not parts.path.startswith(HOME):
        return HOME
    if parts.path.startswith("//") or parts.path.startswith(SIGN_IN):
        return HOME
    return target


async def current_session(request: Request) -> DashboardSession:
    session = await session_store(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired
    request.state.dashboard_session = session
    return session


SessionDep = Annotated[DashboardSession, Depends(current_session)]


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded body as a dict (the first value of each field); empty for any other body."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    form: dict[str, str] = {}
    for name, value in parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS):
        form.setdefault(name, value)
    return form


@dataclass(frozen=True)
class Action:
    """A POST that passed its checks: who sent it and the form it sent."""

    session: DashboardSession
    form: dict[str, str]


def action(scope: str | None) -> Callable[..., Awaitable[Action]]:
    """A dependency for a POST: a live session, its CSRF token (field or header), and ``scope``."""

    async def check(request: Request, session: SessionDep) -> Action:
        form = await read_form(request)
        offered = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not tokens_match(offered, session.csrf_token):
            raise DashboardRefusal(
                403,
                "Form expired",
                "This form's security token is missing or stale: reload the page and retry.",
            )
        if scope is not None and not session.can(scope):
            raise DashboardRefusal(403, "Not allowed", f"Your API key lacks the `{scope}` scope for this.")
        return Action(session=session, form=form)

    return check


SignedInAction = Annotated[Action, Depends(action(None))]
SubmitAction = Annotated[Action, Depends(action("submit"))]
CancelAction = Annotated[Action, Depends(action("cancel"))]
OperatorAction = Annotated[Action, Depends(action(CLUSTER_SCOPE))]


def refusal_page(request: Request, status: int, title: str, detail: str) -> Response:
    return page(request, "error.html", {"title": title, "detail": detail}, status_code=status)


class DashboardRoute(APIRoute):
    """Answers a dashboard route's errors as pages and a missing session as a redirect to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = HOME
                location = SIGN_IN if target == HOME else f"{SIGN_IN}?next={quote(target, safe='')}"
                return RedirectResponse(location, status_code=303)
            except ServiceError as exc:
                return refusal_page(request, exc.status, exc.title, exc.detail)
            except RequestValidationError:
                return refusal_page(request, 404, "Not found", "There is no such page in the dashboard.")

        return handler
