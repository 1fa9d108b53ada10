"""Signing in with an API key, and out.

The sign-in form is protected from login CSRF by a double submit: the page sets a random token in a
short-lived cookie and in a hidden field, and the POST must carry both, equal. A key that checks out
opens a server-side session (``service.dashboard.session``); the browser only ever holds its random id.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from service.api.auth import KeyStore, client_address
from service.api.errors import TooManyFailedAuthentications
from service.dashboard.deps import (
    HOME,
    SIGN_IN,
    DashboardRoute,
    SignedInAction,
    read_form,
    safe_next,
    session_store,
)
from service.dashboard.render import page
from service.dashboard.session import (
    COOKIE_PATH,
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    new_token,
    tokens_match,
)

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

#: how long a sign-in form stays usable
SIGN_IN_FORM_TTL_S = 3600


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_in_page(
    request: Request, *, target: str | None = None, error: str | None = None, status_code: int = 200
) -> Response:
    """The form, with a fresh (or the browser's current) sign-in token."""
    token = request.cookies.get(SIGN_IN_COOKIE) or ""
    if len(token) != len(new_token()):
        token = new_token()
    response = page(
        request,
        "sign_in.html",
        {"title": "Sign in", "sign_in_token": token, "next": safe_next(target), "error": error},
        status_code=status_code,
    )
    _set_cookie(request, response, SIGN_IN_COOKIE, token, SIGN_IN_FORM_TTL_S)
    return response


@router.get(SIGN_IN)
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    if await session_store(request).read(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return sign_in_page(request, target=next)


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    target = form.get("next")
    if not tokens_match(form.get(CSRF_FIELD), request.cookies.get(SIGN_IN_COOKIE) or ""):
        return sign_in_page(
            request,
            target=target,
            error="This sign-in form expired or was not sent from this page. Enter your key again.",
            status_code=403,
        )
    key_store: KeyStore = request.app.state.keys
    try:
        principal = await key_store.authenticate(form.get("api_key", "").strip(), client_address(request))
    except TooManyFailedAuthentications:
        return sign_in_page(
            request,
            target=target,
            error="Too many invalid keys were sent from here; wait a minute before trying again.",
            status_code=429,
        )
    if principal is None:
        return sign_in_page(
            request,
            target=target,
            error="This API key is not valid: unknown, revoked or mistyped.",
            status_code=401,
        )
    if "read" not in principal.scopes:
        return sign_in_page(
            request,
            target=target,
            error="This API key lacks the `read` scope, which the dashboard needs to show anything.",
            status_code=403,
        )
    store = session_store(request)
    await store.close(request.cookies.get(SESSION_COOKIE))  # never keep a session id from before sign-in
    session_id, _ = await store.open(principal)
    response = RedirectResponse(safe_next(target), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session_id, store.ttl_s)
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/dashboard/sign-out")
async def sign_out(request: Request, signed_in: SignedInAction) -> Response:
    await session_store(request).close(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{SIGN_IN}?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


__all__ = ["HOME", "router", "sign_in_page"]
