"""Every endpoint through both clients, against the real app served by uvicorn, real workers and Redis:
batches, retries, dead letters, event streams, operations and admin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from jobsvc_client import (
    Conflict,
    JobSubmit,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)


async def failed_job(jobs: Any, run_jobs: Any) -> Any:
    job = await jobs.submit("diag.fail", {"times": 1}, max_attempts=1)
    await run_jobs()
    failed = await jobs.get(job.id)
    assert failed.status == "failed"
    return failed


async def test_a_batch_is_enqueued_whole_or_refused_naming_each_bad_item(jobs: Any) -> None:
    batch = await jobs.submit_batch([JobSubmit(type="diag.noop"), JobSubmit(type="diag.noop", priority=9)])
    assert [(job.type, job.status, job.priority) for job in batch.jobs] == [
        ("diag.noop", "queued", 5),
        ("diag.noop", "queued", 9),
    ]

    bad = [JobSubmit(type="diag.noop"), JobSubmit(type="diag.sleep", params={"seconds": -1})]
    with pytest.raises(ValidationFailed) as caught:
        await jobs.submit_batch(bad)
    assert [e.pointer for e in caught.value.errors] == ["/jobs/1/params/seconds"]
    assert len((await jobs.list()).jobs) == 2


async def test_jobs_are_cancelled_in_bulk_by_filter(jobs: Any) -> None:
    noops = [await jobs.submit("diag.noop") for _ in range(2)]
    sleep = await jobs.submit("diag.sleep", {"seconds": 0})
    cancelled = await jobs.cancel_matching(
        type="diag.noop", status="queued", created_before=datetime.now(UTC)
    )
    assert (cancelled.cancelled, cancelled.aborting) == (2, 0)
    assert [(await jobs.get(job.id)).status for job in [*noops, sleep]] == [
        "cancelled",
        "cancelled",
        "queued",
    ]


async def test_a_failed_job_is_retried_once_as_a_new_job_and_a_succeeded_one_never(
    jobs: Any, run_jobs: Any
) -> None:
    failed = await failed_job(jobs, run_jobs)
    again = await jobs.retry(failed.id)
    assert (again.replay_of, again.status) == (failed.id, "queued")
    with pytest.raises(Conflict):
        await jobs.retry(failed.id)  # it already ran again

    succeeded = await jobs.submit("diag.noop")
    await run_jobs()
    with pytest.raises(Conflict):
        await jobs.retry(succeeded.id)


async def test_dead_letters_are_listed_read_replayed_and_deleted(jobs: Any, run_jobs: Any) -> None:
    first, second = await failed_job(jobs, run_jobs), await failed_job(jobs, run_jobs)

    page = await jobs.list_dead_letters(limit=1)
    assert [letter.id for letter in page.dead_letters] == [second.id]
    assert page.next_cursor is not None
    every = await jobs.collect("iter_dead_letters", page_size=1)
    assert [letter.id for letter in every] == [second.id, first.id]
    letter = await jobs.get_dead_letter(first.id)
    assert (letter.job.status, letter.attempts[0].error.type) == ("failed", every[1].attempts[0].error.type)

    replayed = await jobs.replay_dead_letter(first.id)
    assert replayed.replay_of == first.id
    await jobs.delete_dead_letter(second.id)
    with pytest.raises(NotFound):
        await jobs.get_dead_letter(second.id)
    assert (await jobs.list_dead_letters()).dead_letters == []


async def test_dead_letters_are_replayed_and_purged_in_bulk(jobs: Any, run_jobs: Any) -> None:
    for _ in range(3):
        await failed_job(jobs, run_jobs)

    bulk = await jobs.replay_dead_letters(type="diag.fail", limit=2)
    assert bulk.count == len(bulk.replayed) == 2
    assert all(item.job.replay_of == item.dead_letter_id for item in bulk.replayed)

    assert (await jobs.purge_dead_letters(queue="bulk")).purged == 0
    assert (await jobs.purge_dead_letters()).purged == 1


async def test_job_events_follow_a_job_to_its_end(jobs: Any, background_worker: Any) -> None:
    job = await jobs.submit("diag.sleep", {"seconds": 0.2})
    # the stream opens with the job as it is: no worker runs until it has, so that is "queued"
    following = asyncio.create_task(asyncio.wait_for(jobs.collect("job_events", job.id), timeout=15))
    await asyncio.sleep(0.5)
    async with background_worker():
        events = await following

    statuses = [event.data["status"] for event in events if event.event == "status"]
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    assert all(event.id for event in events)
    assert events[-1].job().result == {"slept_s": 0.2}
    assert events[-1].job_id == job.id


async def test_tenant_events_resume_after_the_last_event_id(jobs: Any, run_jobs: Any) -> None:
    job = await jobs.submit("diag.noop")
    await run_jobs()

    seen = await jobs.collect("events", last_event_id="0", limit=3)
    assert [(event.job_id, event.data["status"]) for event in seen] == [
        (job.id, "queued"),
        (job.id, "in_progress"),
        (job.id, "succeeded"),
    ]
    rest = await jobs.collect("events", last_event_id=seen[1].id, limit=1)
    assert rest == seen[2:]
    only = await jobs.collect("events", last_event_id="0", status="succeeded", limit=1)
    assert only == seen[2:]


async def test_operators_see_queues_workers_schedules_and_readiness(
    jobs: Any, background_worker: Any
) -> None:
    assert (await jobs.health()).status == "ok"
    with pytest.raises(ServiceUnavailable) as caught:
        await jobs.ready()
    assert "worker" in caught.value.problem.detail

    await jobs.submit("diag.noop", delay_seconds=60)
    queues = {queue.name: queue for queue in (await jobs.queues()).queues}
    assert queues["default"].deferred == 1
    assert {schedule.name for schedule in (await jobs.schedules()).schedules} >= {"cleanup"}

    async with background_worker():
        async with asyncio.timeout(10):
            while not (await jobs.workers()).workers:
                await asyncio.sleep(0.05)
        assert (await jobs.ready()).checks == {"redis": "ok", "workers": "ok"}


async def test_admin_manages_keys_and_tenants(jobs: Any) -> None:
    new = await jobs.create_key("acme", ["submit", "read"], name="billing")
    assert new.key
    listed = {key.id: key for key in (await jobs.list_keys()).keys}
    assert (listed[new.id].tenant, listed[new.id].scopes, listed[new.id].name) == (
        "acme",
        ["submit", "read"],
        "billing",
    )
    assert new.webhook_secret is not None  # acme's first key brings its webhook secret
    assert new.webhook_secret.startswith("whsec_")
    rotated = await jobs.rotate_webhook_secret("acme", grace_s=60)
    assert (rotated.tenant, rotated.secret != new.webhook_secret) == ("acme", True)
    assert rotated.previous_valid_until is not None
    await jobs.revoke_key(new.id)
    assert new.id not in {key.id for key in (await jobs.list_keys()).keys}
    with pytest.raises(NotFound):
        await jobs.revoke_key(new.id)

    await jobs.submit("diag.noop")
    quotas = await jobs.set_quotas("default", max_open_jobs=1)
    assert (quotas.open_jobs, quotas.max_open_jobs) == (1, 1)
    assert "default" in {tenant.tenant for tenant in (await jobs.tenants()).tenants}
    with pytest.raises(RateLimited):
        await jobs.submit("diag.noop")
    assert (await jobs.set_quotas("default")).max_open_jobs > 1

    assert (await jobs.delete_tenant_jobs("default")).deleted_jobs == 1
    audit = await jobs.audit_log(limit=2)
    assert [entry.action for entry in audit.entries] == ["tenant.jobs.delete", "tenant.quotas"]
    assert (await jobs.list()).jobs == []
