"""Keyboard only, visible focus, and a 375 px wide phone: every page, in a real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, ViewportSize, expect

from tests.browser.conftest import Site
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_for_status

pytestmark = pytest.mark.slow

PHONE: ViewportSize = {"width": 375, "height": 740}


async def focused(page: Page) -> dict[str, str]:
    """The focused element: its tag, accessible text, and whether a focus ring shows."""
    return await page.evaluate(  # type: ignore[no-any-return]
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {
                tag: el.tagName.toLowerCase(),
                text: (el.labels && el.labels[0] ? el.labels[0].textContent : el.textContent).trim(),
                ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2 ? "yes" : "no",
            };
        }"""
    )


async def test_signing_in_and_moving_around_with_the_keyboard_only(site: Site) -> None:
    page = await site.new_page()
    await page.goto(f"{site.url}/dashboard")

    await page.keyboard.press("Tab")
    assert await focused(page) == {"tag": "a", "text": "Skip to content", "ring": "yes"}
    await expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
    await page.keyboard.press("Tab")
    assert await focused(page) == {"tag": "a", "text": "jobsvc", "ring": "yes"}
    await page.keyboard.press("Tab")
    assert await focused(page) == {"tag": "input", "text": "API key", "ring": "yes"}
    await page.keyboard.type(ADMIN_KEY)
    await page.keyboard.press("Tab")
    assert await focused(page) == {"tag": "button", "text": "Sign in", "ring": "yes"}
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    # a fragment followed before the page has loaded is scrolled to, and focused, again at its load:
    # the keys below are a user's on a loaded page
    await page.wait_for_load_state("load")

    # the skip link jumps over the header; the header's links come in reading order
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.keyboard.press("Shift+Tab")  # back into the header, last control first
    assert (await focused(page))["text"] == "Sign out"
    order = []
    await page.goto(f"{site.url}/dashboard")  # a new page: focus starts over at the top
    for _ in range(6):
        await page.keyboard.press("Tab")
        order.append((await focused(page))["text"])
    assert order == ["Skip to content", "jobsvc", "Overview", "Jobs", "Dead letters", "Schedules"]
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Enter")  # "Dead letters"
    await expect(page.get_by_role("heading", name="Dead letters", level=1)).to_be_visible()


async def test_every_page_fits_a_375px_screen_without_sideways_scrolling(site: Site) -> None:
    done = await site.submit("diag.noop", {})
    failed = await site.submit("diag.fail", {"times": 5}, max_attempts=1)
    await site.submit("diag.noop", {}, delay_seconds=600)
    await wait_for_status(site.api, done["id"], "succeeded")
    await wait_for_status(site.api, failed["id"], "failed")
    page = await site.new_page(viewport=PHONE)
    await site.sign_in(page)

    for path in (
        "/dashboard",
        "/dashboard/jobs",
        f"/dashboard/jobs/{failed['id']}",
        f"/dashboard/jobs/{done['id']}",
        "/dashboard/dead-letters",
        "/dashboard/schedules",
        "/dashboard/workers",
    ):
        await page.goto(f"{site.url}{path}")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 375px"
        await expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
