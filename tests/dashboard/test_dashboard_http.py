"""The dashboard over plain HTTP: the sign-in contract, cookies and sessions, its Content-Security-Policy,
redirects that stay on this site, and assets that never name another host."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.engine import keys
from service.dashboard.render import DASHBOARD_CSP, STATIC_DIR, TEMPLATES_DIR
from tests.conftest import ADMIN_KEY, auth

SIGN_IN = "/dashboard/sign-in"


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str = ADMIN_KEY, next: str = "") -> httpx.Response:
    token = form_token((await client.get(SIGN_IN)).text)
    return await client.post(SIGN_IN, data={"csrf_token": token, "api_key": key, "next": next})


@pytest.fixture
async def browser_like(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client without an API key that keeps cookies, as a browser would."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test"
    ) as client:
        yield client


async def new_key(http: httpx.AsyncClient, tenant: str, scopes: list[str]) -> dict[str, Any]:
    response = await http.post("/v1/admin/keys", json={"tenant": tenant, "scopes": scopes})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_get_dashboard_without_a_session_is_the_sign_in_form(browser_like: httpx.AsyncClient) -> None:
    response = await browser_like.get("/dashboard")
    assert response.status_code == 200
    assert '<label for="api-key">API key</label>' in response.text
    assert '<input id="api-key" name="api_key"' in response.text
    assert ">Sign in</button>" in response.text
    assert response.headers["content-security-policy"] == DASHBOARD_CSP


async def test_pages_carry_the_strict_policy_and_nothing_inline(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    await sign_in(browser_like)
    await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
    for path in (
        "/dashboard",
        "/dashboard/jobs",
        "/dashboard/dead-letters",
        "/dashboard/workers",
    ):
        response = await browser_like.get(path)
        assert response.headers["content-security-policy"] == DASHBOARD_CSP, path
        assert "'unsafe-inline'" not in DASHBOARD_CSP
        assert re.search(r"<script(?![^>]*\bsrc=)", response.text) is None, f"inline script on {path}"
        assert re.search(r"<style|\sstyle=|\son[a-z]+=", response.text) is None, (
            f"inline style/handler on {path}"
        )


def test_templates_and_assets_name_no_other_host() -> None:
    for path in [*TEMPLATES_DIR.rglob("*"), *STATIC_DIR.rglob("*")]:
        if path.is_file():
            text = path.read_text()
            assert re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text) is None or path.suffix == ".svg", (
                path
            )
            assert "@import" not in text, path


@pytest.mark.parametrize(("base", "secure"), [("http://jobsvc.test", False), ("https://jobsvc.test", True)])
async def test_the_session_cookie_is_a_random_id_http_only_strict_and_secure_over_https(
    app: Any, redis: ArqRedis, base: str, secure: bool
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as client:
        response = await sign_in(client)
    assert response.status_code == 303
    (cookie,) = [c for c in response.headers.get_list("set-cookie") if c.startswith("jobsvc_session=")]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/dashboard" in cookie.lower()
    assert ("secure" in attributes) is secure
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert ADMIN_KEY not in cookie
    stored = [key async for key in redis.scan_iter(match=keys.dashboard_session("*"))]
    assert len(stored) == 1
    assert session_id.encode() not in stored[0], "the session id must not be its Redis key"
    record = await redis.hgetall(stored[0])
    assert ADMIN_KEY.encode() not in b"".join(record.values())
    assert record[b"tenant"] == b"default"


async def test_a_session_ends_at_once_when_its_key_is_revoked(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    key = await new_key(http, "acme", ["read"])
    await sign_in(browser_like, key["key"])
    assert (await browser_like.get("/dashboard/jobs")).status_code == 200
    assert (await http.delete(f"/v1/admin/keys/{key['id']}")).status_code == 204
    response = await browser_like.get("/dashboard/jobs")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%2Fjobs"


async def test_sign_in_refusals_say_why(browser_like: httpx.AsyncClient, http: httpx.AsyncClient) -> None:
    wrong = await sign_in(browser_like, "jsk_0123456789abcdef_nope")
    assert wrong.status_code == 401
    assert "This API key is not valid" in wrong.text
    submit_only = await new_key(http, "acme", ["submit"])
    lacking = await sign_in(browser_like, submit_only["key"])
    assert lacking.status_code == 403
    assert "lacks the `read` scope" in lacking.text
    assert "jobsvc_session" not in browser_like.cookies


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("/dashboard/jobs?status=failed", "/dashboard/jobs?status=failed"),
        ("https://evil.example/dashboard", "/dashboard"),
        ("//evil.example/dashboard", "/dashboard"),
        ("/v1/jobs", "/dashboard"),
        ("/dashboard\\@evil.example", "/dashboard"),
    ],
)
async def test_sign_in_goes_back_only_to_a_dashboard_page(
    browser_like: httpx.AsyncClient, asked: str, lands: str
) -> None:
    response = await sign_in(browser_like, next=asked)
    assert response.status_code == 303
    assert response.headers["location"] == lands


async def test_without_a_session_pages_redirect_actions_redirect_and_the_stream_is_401(
    browser_like: httpx.AsyncClient,
) -> None:
    page = await browser_like.get("/dashboard/dead-letters?type=diag.fail")
    assert page.status_code == 303
    assert (
        page.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%2Fdead-letters%3Ftype%3Ddiag.fail"
    )
    action = await browser_like.post("/dashboard/dead-letters/purge", data={"csrf_token": "x"})
    assert action.status_code == 303
    assert action.headers["location"] == SIGN_IN
    stream = await browser_like.get("/dashboard/events")
    assert stream.status_code == 401


async def test_a_session_lasts_the_configured_time(
    browser_like: httpx.AsyncClient, redis: ArqRedis, settings: Any
) -> None:
    await sign_in(browser_like)
    (stored,) = [key async for key in redis.scan_iter(match=keys.dashboard_session("*"))]
    ttl_ms = await redis.pttl(stored)
    assert settings.dashboard_session_ttl_s * 1000 - 5_000 < ttl_ms <= settings.dashboard_session_ttl_s * 1000


async def test_static_files_are_served_revalidated(browser_like: httpx.AsyncClient) -> None:
    for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        response = await browser_like.get(f"/dashboard/static/{name}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
        assert response.headers["cache-control"] == "no-cache"
        again = await browser_like.get(
            f"/dashboard/static/{name}", headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304


async def test_the_dashboard_is_not_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert [path for path in paths if path.startswith("/dashboard")] == []


async def test_an_unknown_page_or_malformed_id_is_a_404_page(browser_like: httpx.AsyncClient) -> None:
    await sign_in(browser_like)
    for path in (
        "/dashboard/jobs/no-such-job",
        "/dashboard/jobs/%20bad%20id",
        "/dashboard/jobs/" + "x" * 200,
    ):
        response = await browser_like.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path


async def test_the_api_key_is_never_echoed_back(browser_like: httpx.AsyncClient) -> None:
    response = await sign_in(browser_like, "jsk_0123456789abcdef_a-secret-that-is-wrong")
    assert "a-secret-that-is-wrong" not in response.text
    ok = await browser_like.get("/dashboard")
    assert ADMIN_KEY not in ok.text
    assert auth(ADMIN_KEY)["Authorization"] not in ok.text


async def test_the_overview_draws_each_queues_last_hour_per_minute(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, run_jobs: Any
) -> None:
    for params in ({}, {}):
        assert (await http.post("/v1/jobs", json={"type": "diag.noop", "params": params})).status_code == 202
    failing = {"type": "diag.fail", "params": {"times": 5}, "max_attempts": 1}
    assert (await http.post("/v1/jobs", json=failing)).status_code == 202
    await run_jobs()
    await sign_in(browser_like)
    html = (await browser_like.get("/dashboard")).text

    default_row = html[html.index('data-label="Queue">default') :].split("</tr>")[0]
    assert 'aria-label="Last hour: 2 succeeded, 1 failed"' in default_row
    assert 1 <= default_row.count('class="tp-ok"') <= 2  # one bar a minute: this one, or two if it turned
    assert default_row.count('class="tp-failed"') == 1
    bulk_row = html[html.index('data-label="Queue">bulk') :].split("</tr>")[0]
    assert 'aria-label="Last hour: 0 succeeded, 0 failed"' in bulk_row
    assert "<rect" not in bulk_row


async def test_pausing_a_queue_needs_the_admin_scope_and_a_known_queue_and_otherwise_changes_nothing(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    await sign_in(browser_like)
    token = form_token((await browser_like.get("/dashboard")).text)
    for name in ("nope", "Not%20A%20Queue"):
        response = await browser_like.post(f"/dashboard/queues/{name}/pause", data={"csrf_token": token})
        assert response.status_code in (404, 422), name
        assert response.headers["content-type"].startswith("text/html"), name
    assert (await browser_like.post("/dashboard/queues/bulk/pause", data={})).status_code == 403  # no token

    reader = await new_key(http, "default", ["read", "submit", "cancel"])
    await browser_like.post("/dashboard/sign-out", data={"csrf_token": token})
    await sign_in(browser_like, reader["key"])
    token = form_token((await browser_like.get("/dashboard/jobs")).text)
    refused = await browser_like.post("/dashboard/queues/bulk/pause", data={"csrf_token": token})
    assert refused.status_code == 403
    assert await redis.hgetall(keys.PAUSED_QUEUES) == {}


async def test_cancel_all_needs_the_cancel_scope_and_a_form_token_and_otherwise_cancels_nothing(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    waiting = (await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})).json()["id"]
    await sign_in(browser_like)
    assert (await browser_like.post("/dashboard/jobs/cancel", data={})).status_code == 403  # no token
    token = form_token((await browser_like.get("/dashboard/jobs")).text)

    reader = await new_key(http, "default", ["read", "submit"])
    await browser_like.post("/dashboard/sign-out", data={"csrf_token": token})
    await sign_in(browser_like, reader["key"])
    page = (await browser_like.get("/dashboard/jobs")).text
    assert "Cancel all" not in page  # not offered
    refused = await browser_like.post("/dashboard/jobs/cancel", data={"csrf_token": form_token(page)})
    assert refused.status_code == 403
    assert (await http.get(f"/v1/jobs/{waiting}")).json()["status"] == "queued"


async def test_cancel_all_cancels_what_the_filters_match_and_says_how_many(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    submitted = [
        (await http.post("/v1/jobs", json={"type": t, "params": p})).json()["id"]
        for t, p in (
            ("diag.noop", {}),
            ("diag.noop", {}),
            ("diag.sleep", {"seconds": 0}),
        )
    ]
    await sign_in(browser_like)
    page = (await browser_like.get("/dashboard/jobs?type=diag.noop")).text
    assert "Cancel all matching" in page
    done = await browser_like.post(
        "/dashboard/jobs/cancel", data={"csrf_token": form_token(page), "type": "diag.noop", "status": ""}
    )
    assert done.status_code == 303
    assert (await browser_like.get(done.headers["location"])).text.count("2 unfinished jobs cancelled") == 1
    statuses = [(await http.get(f"/v1/jobs/{job_id}")).json()["status"] for job_id in submitted]
    assert statuses == ["cancelled", "cancelled", "queued"]
    finished = (await browser_like.get("/dashboard/jobs?status=cancelled")).text
    assert finished.count('data-job-id="') == 2  # listed, and nothing there to cancel: not offered
    assert "Cancel all" not in finished
