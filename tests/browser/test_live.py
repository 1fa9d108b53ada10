"""Live updates in a real browser: jobs submitted over the REST API show up and change on open pages,
pushed over the dashboard's event stream, patched in place."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import LIVE_MS, Site

pytestmark = pytest.mark.slow


async def test_a_submitted_job_appears_and_turns_succeeded_without_a_reload(site: Site) -> None:
    page = await site.new_page()
    await site.sign_in(page)
    await page.get_by_role("link", name="Jobs", exact=True).click()
    await expect(page.get_by_text("No jobs yet")).to_be_visible()
    await expect(page.locator("#live-state")).to_have_text("Live")
    await page.evaluate("window.stillTheSamePage = true")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    job = await site.submit("diag.noop", {})

    status = page.locator(f'tr[data-job-id="{job["id"]}"] [data-field="status"]')
    await expect(status).to_have_text("succeeded", timeout=LIVE_MS)
    await expect(page.get_by_text("No jobs yet")).to_be_hidden()
    assert await page.evaluate("window.stillTheSamePage") is True, "the page was reloaded"
    # pushed, not polled: the one request the page made is the new job's row
    assert requested == [f"{site.url}/dashboard/jobs/{job['id']}/row"]


async def test_a_row_is_patched_in_place_keeping_focus(site: Site) -> None:
    page = await site.new_page()
    await site.sign_in(page)
    await page.goto(f"{site.url}/dashboard/jobs")
    await expect(page.locator("#live-state")).to_have_text("Live")
    job = await site.submit("diag.sleep", {"seconds": 3})
    row = page.locator(f'tr[data-job-id="{job["id"]}"]')
    link = row.get_by_role("link", name=job["id"])
    await link.focus()
    same_row = await row.element_handle()

    await expect(row.locator('[data-field="status"]')).to_have_text("in progress")
    await expect(row.locator('[data-field="progress"]')).to_contain_text("of 3")
    await expect(row.locator('[data-field="status"]')).to_have_text("succeeded", timeout=6_000)

    assert await same_row.evaluate("row => row.isConnected"), "the row was replaced, not patched"
    assert await page.evaluate("document.activeElement.textContent") == job["id"], "focus was lost"
    await expect(row.locator('[data-field="progress"]')).to_be_hidden()
    await expect(page.locator("#announcer")).to_have_text(f"Job {job['id'][:8]} succeeded")


async def test_a_filtered_page_only_gains_rows_that_match(site: Site) -> None:
    page = await site.new_page()
    await site.sign_in(page)
    await page.goto(f"{site.url}/dashboard/jobs?type=diag.sleep")
    await expect(page.locator("#live-state")).to_have_text("Live")

    other = await site.submit("diag.noop", {})
    wanted = await site.submit("diag.sleep", {"seconds": 0})

    await expect(page.locator(f'tr[data-job-id="{wanted["id"]}"]')).to_be_visible(timeout=LIVE_MS)
    await expect(page.locator(f'tr[data-job-id="{other["id"]}"]')).to_have_count(0)


async def test_a_job_page_follows_its_job_to_the_end(site: Site) -> None:
    job = await site.submit("diag.sleep", {"seconds": 1.5})
    page = await site.new_page()
    await site.sign_in(page)
    await page.goto(f"{site.url}/dashboard/jobs/{job['id']}")
    await expect(page.get_by_role("heading", name="Params")).to_be_visible()

    status = page.locator('.job-head [data-field="status"]')
    await expect(status).to_have_text("succeeded", timeout=5_000)
    await expect(page.get_by_role("heading", name="Result")).to_be_visible()
    await expect(page.locator(".timeline")).to_contain_text("Attempt 1")
    await expect(page.locator(".timeline")).to_contain_text("succeeded")
    await expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
