"""A job that fails for good, followed in a real browser: its page, the dead letters, replay, delete."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site
from tests.helpers import wait_for_status

pytestmark = pytest.mark.slow


async def test_a_failing_job_shows_its_attempts_and_is_replayed_from_the_dead_letters(site: Site) -> None:
    job = await site.submit("diag.fail", {"times": 5}, max_attempts=2)
    await wait_for_status(site.api, job["id"], "failed")
    page = await site.new_page()
    await site.sign_in(page)

    await page.goto(f"{site.url}/dashboard/jobs/{job['id']}")
    await expect(page.locator('.job-head [data-field="status"]')).to_have_text("failed")
    await expect(page.get_by_role("heading", name="Error")).to_be_visible()
    await expect(page.locator(".timeline li")).to_have_count(2)
    await expect(page.locator(".timeline")).to_contain_text("failing attempt 2 of 5 on purpose")
    await page.get_by_text("Traceback", exact=True).click()
    await expect(page.locator("pre.traceback")).to_contain_text("RetryableJobError")

    await page.get_by_role("link", name="dead letters", exact=True).click()
    letter = page.locator(f'tr[data-dead-letter="{job["id"]}"]')
    await expect(letter).to_contain_text("RetryableJobError")
    await letter.get_by_role("button", name="Replay").click()

    await expect(page.get_by_role("status")).to_contain_text("Dead letter replayed as a new job.")
    await expect(letter).to_have_count(0)
    new_id = (await page.get_by_role("status").get_by_role("link").inner_text()).removeprefix("Job ").strip()
    replayed = (await site.api.get(f"/v1/jobs/{new_id}")).json()
    assert replayed["replay_of"] == job["id"]
    assert replayed["params"] == {"times": 5}


async def test_replay_all_and_delete_ask_first_and_act_on_the_matching_ones(site: Site) -> None:
    failing = [await site.submit("diag.fail", {"times": 5}, max_attempts=1) for _ in range(3)]
    for job in failing:
        await wait_for_status(site.api, job["id"], "failed")
    page = await site.new_page()
    await site.sign_in(page)
    await page.goto(f"{site.url}/dashboard/dead-letters")
    await expect(page.locator("tr[data-dead-letter]")).to_have_count(3)

    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Delete", exact=False).first.click()
    await expect(page.locator("tr[data-dead-letter]")).to_have_count(3)  # declined: nothing happened

    page.once("dialog", lambda dialog: dialog.accept())
    first = page.locator(f'tr[data-dead-letter="{failing[0]["id"]}"]')
    await first.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("status")).to_have_text("Dead letter deleted.")
    await expect(page.locator("tr[data-dead-letter]")).to_have_count(2)

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Replay all").click()
    await expect(page.get_by_role("status")).to_have_text("2 dead letters replayed as new jobs.")
    for job in failing[1:]:
        assert (await site.api.get(f"/v1/jobs/{job['id']}")).json()["replayed_as"]
