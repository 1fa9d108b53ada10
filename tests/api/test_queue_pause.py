"""Pausing a queue, an incident control: its jobs are still accepted and wait, no worker starts one,
running ones finish; the pause shows in /v1/queues and the metrics, outlives workers and Redis
restarts, and a resume lets workers start the waiting jobs at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis
from tests.conftest import ADMIN_KEY
from tests.helpers import assert_problem, read_job, serve, submit, wait_for_status


def queue(listing: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [q for q in listing["queues"] if q["name"] == name]
    return found


def paused_gauge(metrics_text: str, name: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "jobsvc_queue_paused" and sample.labels["queue"] == name:
                return sample.value
    raise AssertionError("no jobsvc_queue_paused sample for " + name)


async def test_a_paused_queue_accepts_jobs_and_starts_none_until_resumed(
    http: httpx.AsyncClient, background_worker: Any
) -> None:
    async with background_worker():
        running = await submit(http, "diag.sleep", {"seconds": 1})
        await wait_for_status(http, running["id"], "in_progress")

        paused = await http.post("/v1/queues/default:pause")
        assert paused.status_code == 200
        assert paused.json()["paused_at"] is not None
        waiting = await submit(http, "diag.noop", {})
        await wait_for_status(http, running["id"], "succeeded")  # running ones finish
        await asyncio.sleep(1.0)
        assert (await read_job(http, waiting["id"]))["status"] == "queued"
        assert queue((await http.get("/v1/queues")).json(), "default")["paused_at"] is not None
        assert paused_gauge((await http.get("/metrics")).text, "default") == 1
        assert paused_gauge((await http.get("/metrics")).text, "bulk") == 0
        assert (await http.post("/v1/queues/default:pause")).json()["paused_at"] == paused.json()["paused_at"]

        resumed = await http.post("/v1/queues/default:resume")
        assert resumed.status_code == 200
        assert resumed.json()["paused_at"] is None
        await wait_for_status(http, waiting["id"], "succeeded", timeout_s=2)


async def test_pausing_a_queue_that_does_not_exist_is_a_404_that_changes_nothing(
    http: httpx.AsyncClient,
) -> None:
    assert_problem(await http.post("/v1/queues/nope:pause"), 404)
    assert all(q["paused_at"] is None for q in (await http.get("/v1/queues")).json()["queues"])


async def test_a_pause_outlives_a_redis_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    settings = Settings(
        admin_api_key=ADMIN_KEY, redis_url=server.start(), diagnostics=True, data_dir=tmp_path
    )
    try:
        async with serve(create_app(settings)) as http:
            assert (await http.post("/v1/queues/critical:pause")).status_code == 200
            server.stop()
            server.start()
            assert queue((await http.get("/v1/queues")).json(), "critical")["paused_at"] is not None
    finally:
        server.stop()
