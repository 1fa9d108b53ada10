"""An operator cancels a backlog from the jobs page: the filtered jobs, after a confirmation."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from tests.browser.conftest import Site
from tests.helpers import read_job


async def test_cancel_all_matching_asks_first_then_cancels_the_filtered_jobs_only(site: Site) -> None:
    backlog = [await site.submit("diag.noop", {}, delay_seconds=3600) for _ in range(3)]
    other = await site.submit("diag.sleep", {"seconds": 0}, delay_seconds=3600)
    page = await site.new_page()
    await site.sign_in(page)
    await page.goto(f"{site.url}/dashboard/jobs?type=diag.noop")
    await expect(page.locator("tr[data-job-id]")).to_have_count(3)

    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Cancel all matching").click()
    await asyncio.sleep(0.3)  # time enough for a form sent anyway to land
    assert {(await read_job(site.api, job["id"]))["status"] for job in backlog} == {"deferred"}

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel all matching").click()
    await expect(page.get_by_role("status")).to_have_text(
        "3 unfinished jobs cancelled; running ones stop within moments."
    )
    assert {(await read_job(site.api, job["id"]))["status"] for job in backlog} == {"cancelled"}
    assert (await read_job(site.api, other["id"]))["status"] == "deferred"
