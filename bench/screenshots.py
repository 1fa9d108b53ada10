"""Screenshots of every dashboard page, for the README and docs/OPERATIONS.md.

    .venv/bin/python -m bench.screenshots            # writes docs/screenshots/*.png, about 20 s

It runs ``jobsvc dev`` (an embedded Valkey, the API and one worker that serves ``critical`` and
``default`` only, so a job sent to ``bulk`` stays queued) in a temporary directory on a free port, submits
jobs that end up in every state, and photographs each page at desktop width in Debian's Chromium
(``/usr/bin/chromium``, or ``JOBSVC_CHROMIUM``), the browser the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("JOBSVC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
WIDTH, HEIGHT = 1280, 800
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def dev_stack(data_dir: Path, admin_key: str) -> AsyncIterator[str]:
    """``jobsvc dev`` on a free port until the block ends; yields its URL once a worker is ready."""
    port = free_port()
    env = {
        **os.environ,
        "JOBSVC_DATA_DIR": str(data_dir),
        "JOBSVC_PORT": str(port),
        "JOBSVC_ADMIN_API_KEY": admin_key,
        "JOBSVC_DIAGNOSTICS": "true",
        "JOBSVC_QUEUES": "critical,default",
        "JOBSVC_LOG_LEVEL": "warning",
    }
    env.pop("JOBSVC_REDIS_URL", None)
    jobsvc = Path(sys.executable).parent / "jobsvc"
    process = await asyncio.create_subprocess_exec(
        str(jobsvc), "dev", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as client:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.returncode is not None:
                    raise SystemExit(f"jobsvc dev exited with {process.returncode}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("jobsvc dev did not become ready")
                await asyncio.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def submit(api: httpx.AsyncClient, job_type: str, params: dict[str, Any], **extra: Any) -> str:
    response = await api.post("/v1/jobs", json={"type": job_type, "params": params, **extra})
    response.raise_for_status()
    return str(response.json()["id"])


async def until(api: httpx.AsyncClient, job_id: str, *statuses: str) -> None:
    for _ in range(200):
        if (await api.get(f"/v1/jobs/{job_id}")).json()["status"] in statuses:
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"job {job_id} never reached {statuses}")


async def populate(api: httpx.AsyncClient) -> dict[str, str]:
    """Jobs in every state; returns the ids the job pages are taken of."""
    for label in ("welcome-mail", "nightly-export"):
        await until(api, await submit(api, "diag.record", {"label": label}), "succeeded")
    await until(api, await submit(api, "diag.sleep", {"seconds": 0.3}), "succeeded")
    failed = await submit(api, "diag.fail", {"times": 9}, max_attempts=3)
    await until(api, failed, "failed")
    await until(api, await submit(api, "diag.fail", {"times": 9}, max_attempts=2, queue="critical"), "failed")
    cancelled = await submit(api, "diag.noop", {}, delay_seconds=3600)
    (await api.delete(f"/v1/jobs/{cancelled}")).raise_for_status()
    await submit(api, "diag.noop", {}, queue="bulk")  # no worker serves bulk: stays queued
    await submit(api, "diag.noop", {}, delay_seconds=900)
    running = await submit(api, "diag.sleep", {"seconds": 30})
    await until(api, running, "in_progress")
    await submit(api, "diag.record", {"label": "after-the-sleep"}, depends_on=[running])
    await asyncio.sleep(5.2)  # a few progress reports; it runs on through the screenshots
    return {"failed": failed, "running": running}


async def shoot(page: Page, url: str, name: str) -> None:
    await page.goto(url)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/screenshots/{name}.png")


async def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    admin_key = "screenshots-admin-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="jobsvc-screenshots-") as data_dir:
        async with (
            dev_stack(Path(data_dir), admin_key) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}) as api,
            async_playwright() as playwright,
        ):
            ids = await populate(api)
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            await shoot(page, f"{url}/dashboard", "sign-in")
            await page.get_by_label("API key").fill(admin_key)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{url}/dashboard")
            await shoot(page, f"{url}/dashboard", "overview")
            await shoot(page, f"{url}/dashboard/jobs", "jobs")
            await shoot(page, f"{url}/dashboard/jobs/{ids['running']}", "job-running")
            await shoot(page, f"{url}/dashboard/jobs/{ids['failed']}", "job-failed")
            await shoot(page, f"{url}/dashboard/dead-letters", "dead-letters")
            await shoot(page, f"{url}/dashboard/schedules", "schedules")
            await shoot(page, f"{url}/dashboard/workers", "workers")
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
