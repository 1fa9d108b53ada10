"""Who sees and does what, in a real browser: sessions, scopes, tenants, CSRF, signing out."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import LIVE_MS, Site, csrf_token
from tests.helpers import wait_for_status

pytestmark = pytest.mark.slow


async def failed_job(site: Site, **extra: object) -> str:
    """A job that failed for good (a dead letter)."""
    job = await site.submit("diag.fail", {"times": 5}, max_attempts=1, **extra)
    await wait_for_status(site.api, job["id"], "failed")
    return str(job["id"])


async def test_the_session_cookie_is_http_only_strict_and_not_the_key(site: Site) -> None:
    page = await site.new_page()
    await site.sign_in(page)
    (cookie,) = [c for c in await site.context.cookies() if c["name"] == "jobsvc_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    assert cookie["secure"] is False  # plain http here; https sets it (tests/dashboard)
    assert await page.evaluate("document.cookie") == "", "a script can read the session cookie"


async def test_a_read_only_key_sees_no_action_and_its_actions_answer_403(site: Site) -> None:
    dead = await failed_job(site)
    waiting = (await site.submit("diag.noop", {}, delay_seconds=600))["id"]
    reader = await site.key("default", ["read"])
    page = await site.new_page()
    await site.sign_in(page, reader)

    await page.goto(f"{site.url}/dashboard/jobs/{waiting}")
    await expect(page.locator('.job-head [data-field="status"]')).to_have_text("deferred")
    await page.goto(f"{site.url}/dashboard/jobs/{dead}")
    await expect(page.locator('.job-head [data-field="status"]')).to_have_text("failed")
    await page.goto(f"{site.url}/dashboard/dead-letters")
    await expect(page.locator(f'tr[data-dead-letter="{dead}"]')).to_be_visible()
    for path in (f"/dashboard/jobs/{waiting}", f"/dashboard/jobs/{dead}", "/dashboard/dead-letters"):
        await page.goto(f"{site.url}{path}")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await expect(page.locator("main form[method=post]")).to_have_count(0)
        for action in ("Cancel job", "Retry as a new job", "Replay", "Delete", "Replay all", "Delete all"):
            await expect(page.get_by_role("button", name=action)).to_have_count(0)
    await expect(page.get_by_role("link", name="Workers")).to_have_count(0)

    token = csrf_token(await page.content())
    for action in (
        f"/dashboard/jobs/{waiting}/cancel",
        f"/dashboard/jobs/{dead}/retry",
        f"/dashboard/dead-letters/{dead}/replay",
        f"/dashboard/dead-letters/{dead}/delete",
        "/dashboard/dead-letters/replay",
        "/dashboard/dead-letters/purge",
    ):
        response = await page.request.post(f"{site.url}{action}", form={"csrf_token": token}, max_redirects=0)
        assert response.status == 403, action
    assert (await page.request.get(f"{site.url}/dashboard/workers")).status == 403
    assert (await site.api.get(f"/v1/jobs/{waiting}")).json()["status"] == "deferred"
    assert (await site.api.get(f"/v1/dead-letters/{dead}")).status_code == 200


async def test_another_tenants_key_does_not_see_the_first_tenants_jobs(site: Site) -> None:
    theirs = (await site.submit("diag.noop", {}, delay_seconds=600))["id"]
    dead = await failed_job(site)
    acme = await site.key("acme", ["read", "submit"])
    page = await site.new_page()
    await site.sign_in(page, acme)

    await page.goto(f"{site.url}/dashboard/jobs")
    await expect(page.get_by_text("No jobs yet")).to_be_visible()
    await page.get_by_label("Job id").fill(theirs)
    await page.get_by_role("button", name="Find").click()
    await expect(page.get_by_role("alert")).to_contain_text(f"No job with id {theirs}")
    for path in (f"/dashboard/jobs/{theirs}", f"/dashboard/jobs/{dead}", f"/dashboard/jobs/{theirs}/row"):
        assert (await page.request.get(f"{site.url}{path}")).status == 404, path
    await page.goto(f"{site.url}/dashboard/dead-letters")
    await expect(page.get_by_text("No dead letters")).to_be_visible()

    # live: the other tenant's new jobs never reach this page; this tenant's do
    await page.goto(f"{site.url}/dashboard/jobs")
    await expect(page.locator("#live-state")).to_have_text("Live")
    stranger = (await site.submit("diag.noop", {}))["id"]
    own = (await site.submit("diag.noop", {}, key=acme))["id"]
    await expect(page.locator(f'tr[data-job-id="{own}"]')).to_be_visible(timeout=LIVE_MS)
    await expect(page.locator(f'tr[data-job-id="{stranger}"]')).to_have_count(0)


async def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    waiting = (await site.submit("diag.noop", {}, delay_seconds=600))["id"]
    page = await site.new_page()
    await site.sign_in(page)
    await page.goto(f"{site.url}/dashboard/jobs/{waiting}")
    token = csrf_token(await page.content())
    cancel = f"{site.url}/dashboard/jobs/{waiting}/cancel"

    for form in ({}, {"csrf_token": ""}, {"csrf_token": token[:-2] + "xx"}):
        response = await page.request.post(cancel, form=form, max_redirects=0)
        assert response.status == 403, form
        assert "Form expired" in await response.text()
    assert (await site.api.get(f"/v1/jobs/{waiting}")).json()["status"] == "deferred"

    # the page's own button carries the token
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel job").click()
    await expect(page.get_by_role("status")).to_have_text("Job cancelled.")
    await expect(page.locator('.job-head [data-field="status"]')).to_have_text("cancelled")


async def test_a_sign_in_post_without_its_form_token_is_refused(site: Site) -> None:
    page = await site.new_page()
    response = await page.request.post(
        f"{site.url}/dashboard/sign-in", form={"api_key": "x" * 40}, max_redirects=0
    )
    assert response.status == 403
    assert [c for c in await site.context.cookies() if c["name"] == "jobsvc_session"] == []


async def test_a_wrong_key_is_refused_with_the_reason(site: Site) -> None:
    page = await site.new_page()
    await page.goto(f"{site.url}/dashboard")
    await page.get_by_label("API key").fill("jsk_0123456789abcdef_not-a-real-secret")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("This API key is not valid")
    await expect(page.get_by_label("API key")).to_be_focused()
    # the watch fails the test on console errors; a 401 page logs one, expected here
    site.watch.errors.clear()


async def test_signing_out_ends_the_session_on_the_server(site: Site) -> None:
    page = await site.new_page()
    await site.sign_in(page)
    (before,) = [c for c in await site.context.cookies() if c["name"] == "jobsvc_session"]

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await page.goto(f"{site.url}/dashboard/jobs")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    await site.context.add_cookies([before])  # the old cookie, put back: its session is gone
    await page.goto(f"{site.url}/dashboard/jobs")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.url == f"{site.url}/dashboard/sign-in?next=%2Fdashboard%2Fjobs"
