"""An operator pauses a queue from the overview during an incident, and resumes it."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from tests.browser.conftest import Site
from tests.helpers import read_job, wait_for_status


async def test_an_operator_pauses_a_queue_and_resumes_it_from_the_overview(site: Site) -> None:
    page = await site.new_page()
    await site.sign_in(page)
    bulk = page.get_by_role("row").filter(has_text="Large batches")

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Pause queue bulk").click()
    await expect(page.get_by_role("status")).to_contain_text("Queue paused")
    await expect(bulk.get_by_text("paused", exact=True)).to_be_visible()
    job = await site.submit("diag.noop", {}, queue="bulk")
    await asyncio.sleep(0.5)
    assert (await read_job(site.api, job["id"]))["status"] == "queued"  # accepted, and waiting

    await page.get_by_role("button", name="Resume queue bulk").click()
    await expect(page.get_by_role("status")).to_contain_text("Queue resumed")
    await expect(bulk.get_by_text("paused", exact=True)).to_have_count(0)
    await wait_for_status(site.api, job["id"], "succeeded", timeout_s=5)
