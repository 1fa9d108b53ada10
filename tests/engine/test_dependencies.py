"""depends_on: a job waits until the jobs it depends on succeed, reads their results, and is cancelled
with the reason when one of them fails for good or is cancelled."""

from __future__ import annotations

from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from tests.helpers import read_job, submit, wait_for_status


async def test_a_chain_runs_in_order_and_each_link_reads_the_result_before_it(
    http: httpx.AsyncClient, background_worker: Any
) -> None:
    first = await submit(http, "diag.record", {"label": "first"})
    second = await submit(http, "diag.record", {"label": "second"}, depends_on=[first["id"]])
    third = await submit(http, "diag.record", {"label": "third"}, depends_on=[second["id"]])
    assert (second["status"], second["waiting_for"], second["depends_on"]) == ("queued", 1, [first["id"]])

    async with background_worker():
        done = await wait_for_status(http, third["id"], "succeeded")
    first_done, second_done = await read_job(http, first["id"]), await read_job(http, second["id"])
    assert [first_done["result"]["position"], second_done["result"]["position"]] == [1, 2]
    assert done["result"]["position"] == 3
    assert second_done["result"]["dependencies"] == {first["id"]: first_done["result"]}
    assert done["result"]["dependencies"] == {second["id"]: second_done["result"]}
    assert first_done["finished_at"] <= second_done["started_at"]
    assert second_done["finished_at"] <= done["started_at"]


async def test_a_fan_in_waits_for_every_parent(http: httpx.AsyncClient, run_jobs: Any) -> None:
    quick = await submit(http, "diag.record", {"label": "quick"})
    later = await submit(http, "diag.record", {"label": "later"}, delay_seconds=30)
    fan_in = await submit(http, "diag.record", {"label": "fan-in"}, depends_on=[quick["id"], later["id"]])
    assert fan_in["waiting_for"] == 2

    await run_jobs(max_burst_jobs=1)
    waiting = await read_job(http, fan_in["id"])
    assert (waiting["status"], waiting["waiting_for"]) == ("queued", 1)

    await http.delete(f"/v1/jobs/{later['id']}")  # the other parent is cancelled instead of running
    cancelled = await read_job(http, fan_in["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["message"] == f"dependency {later['id']} cancelled"


async def test_a_parent_failing_for_good_cancels_its_dependents_down_the_chain(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    parent = await submit(http, "diag.fail", {"times": 3}, max_attempts=1)
    child = await submit(http, "diag.record", {"label": "child"}, depends_on=[parent["id"]])
    grandchild = await submit(http, "diag.record", {"label": "grandchild"}, depends_on=[child["id"]])
    unrelated = await submit(http, "diag.record", {"label": "unrelated"})

    await run_jobs()

    assert (await read_job(http, parent["id"]))["status"] == "failed"
    child_now, grandchild_now = await read_job(http, child["id"]), await read_job(http, grandchild["id"])
    assert (child_now["status"], child_now["error"]["message"]) == (
        "cancelled",
        f"dependency {parent['id']} failed",
    )
    assert (grandchild_now["status"], grandchild_now["error"]["message"]) == (
        "cancelled",
        f"dependency {child['id']} cancelled",
    )
    assert child_now["attempts"] == 0
    assert (await read_job(http, unrelated["id"]))["status"] == "succeeded"
    assert await redis.lrange("jobsvc:diag:log", 0, -1) == [b"unrelated"]


async def test_cancelling_a_waiting_dependent_keeps_it_cancelled_when_its_parent_succeeds(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    parent = await submit(http, "diag.record", {"label": "parent"})
    child = await submit(http, "diag.record", {"label": "child"}, depends_on=[parent["id"]])
    assert (await http.delete(f"/v1/jobs/{child['id']}")).status_code == 202
    await run_jobs()
    assert (await read_job(http, parent["id"]))["status"] == "succeeded"
    assert (await read_job(http, child["id"]))["status"] == "cancelled"


async def test_an_unknown_parent_is_refused_and_nothing_is_written(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    known = await submit(http, "diag.record", {"label": "known"})
    before = await keys_but_rate_counters(redis)
    response = await http.post(
        "/v1/jobs",
        json={"type": "diag.record", "params": {"label": "x"}, "depends_on": [known["id"], "no-such-job"]},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["pointer"] for error in response.json()["errors"]] == ["/depends_on/1"]
    assert await keys_but_rate_counters(redis) == before


async def test_depending_on_a_job_that_already_failed_is_a_conflict(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    parent = await submit(http, "diag.fail", {"times": 3}, max_attempts=1)
    await run_jobs()
    before = await keys_but_rate_counters(redis)
    response = await http.post(
        "/v1/jobs", json={"type": "diag.record", "params": {"label": "x"}, "depends_on": [parent["id"]]}
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("dependency-failed")
    assert await keys_but_rate_counters(redis) == before


async def keys_but_rate_counters(redis: ArqRedis) -> set[bytes]:
    """Every key, less the per-second submit counters: they count refused submits too, by design, and one
    comes or goes as a second turns."""
    return {key async for key in redis.scan_iter(count=1000) if b":submits:" not in key}


async def test_a_parent_that_already_succeeded_does_not_hold_its_dependent_back(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    parent = await submit(http, "diag.record", {"label": "parent"})
    await run_jobs()
    child = await submit(http, "diag.record", {"label": "child"}, depends_on=[parent["id"]])
    assert child["waiting_for"] == 0
    await run_jobs()
    assert (await read_job(http, child["id"]))["status"] == "succeeded"


async def fan_out(http: httpx.AsyncClient, parent_id: str, count: int) -> list[str]:
    """``count`` dependents of one parent, submitted in batches of 1,000."""
    children: list[str] = []
    while len(children) < count:
        batch = [{"type": "diag.noop", "depends_on": [parent_id]}] * min(1000, count - len(children))
        response = await http.post("/v1/jobs:batch", json={"jobs": batch})
        assert response.status_code == 202, response.text
        children += [job["id"] for job in response.json()["jobs"]]
    return children


async def test_a_fan_out_of_thousands_is_released_or_cancelled_whole(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    """Settled a step at a time (queue_ops.SETTLE_STEP), so Redis is never held by one long script."""
    succeeding = await submit(http, "diag.noop", {})
    failing = await submit(http, "diag.fail", {"times": 3}, max_attempts=1)
    released = await fan_out(http, succeeding["id"], 2_500)
    doomed = await fan_out(http, failing["id"], 2_500)

    await run_jobs()

    assert {(await read_job(http, job_id))["status"] for job_id in released[::250]} == {"succeeded"}
    assert {(await read_job(http, job_id))["status"] for job_id in doomed[::250]} == {"cancelled"}
    listed = await http.get("/v1/jobs", params={"status": "queued", "limit": 1})
    assert listed.json()["jobs"] == []  # none left waiting
    assert await redis.zcard(keys.SETTLING) == 0
