"""Dead letters and retries through the API: real server, real ARQ workers, real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from asgi_lifespan import LifespanManager
from PIL import Image

from jobs.catalogue.images import tenant_root
from jobs.definition import MAX_ATTEMPTS_LIMIT
from jobs.engine import keys
from service.api.app import create_app
from service.config import Settings
from tests.conftest import ADMIN_KEY, auth, make_worker
from tests.helpers import assert_problem, client_with_key, dead_letter_ids, key_for, read_job, submit

MISSING_IMAGE = {"source": "uploads/late.png", "width": 16, "height": 16}


async def dead_job(
    http: httpx.AsyncClient, run_jobs: Any, job_type: str, params: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """Submit a job that fails for good and run it; returns the failed job."""
    job = await submit(http, job_type, params, **extra)
    await run_jobs()
    failed = await read_job(http, job["id"])
    assert failed["status"] == "failed", failed
    return failed


@pytest.fixture
def storage(settings: Settings) -> Path:
    """The default tenant's storage root."""
    root = tenant_root(settings.effective_storage_dir, "default")
    root.mkdir(parents=True, exist_ok=True)
    return root


# -- what becomes a dead letter ---------------------------------------------------------------------------


async def test_job_that_used_up_its_attempts_is_a_dead_letter_with_each_attempt(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    job = await submit(http, "diag.fail", {"times": 5}, max_attempts=2)
    await run_jobs()  # a burst worker keeps polling while the retry waits in the queue

    failed = await read_job(http, job["id"])
    assert failed["status"] == "failed"
    assert failed["attempts"] == 2
    listing = (await http.get("/v1/dead-letters")).json()
    assert listing["next_cursor"] is None
    [letter] = listing["dead_letters"]
    assert letter["id"] == job["id"]
    assert letter["job"]["params"] == {"times": 5}
    assert letter["job"]["status"] == "failed"
    assert letter["job"]["max_attempts"] == 2
    assert letter["replayed_as"] is None
    assert [a["attempt"] for a in letter["attempts"]] == [1, 2]
    for attempt in letter["attempts"]:
        assert attempt["error"]["type"] == "RetryableJobError"
        assert attempt["started_at"] <= attempt["finished_at"] <= letter["failed_at"]
        assert attempt["started_at"].endswith("Z")
    assert "failing attempt 2" in letter["attempts"][1]["error"]["message"]
    assert "RetryableJobError" in letter["traceback"]
    assert (await http.get(f"/v1/dead-letters/{job['id']}")).json() == letter


async def test_permanent_failure_is_a_dead_letter_after_one_attempt(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    job = await dead_job(http, run_jobs, "image.thumbnail", MISSING_IMAGE)

    letter = (await http.get(f"/v1/dead-letters/{job['id']}")).json()
    assert job["attempts"] == 1
    assert [a["error"]["type"] for a in letter["attempts"]] == ["PermanentJobError"]
    assert "does not exist" in letter["attempts"][0]["error"]["message"]
    assert "PermanentJobError" in letter["traceback"]


async def test_cancelled_and_succeeded_jobs_are_not_dead_letters(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    cancelled = await submit(http, "diag.noop", {})
    assert (await http.delete(f"/v1/jobs/{cancelled['id']}")).json()["status"] == "cancelled"
    succeeded = await submit(http, "diag.noop", {})
    await run_jobs()

    assert (await read_job(http, succeeded["id"]))["status"] == "succeeded"
    assert await dead_letter_ids(http) == []
    for job in (cancelled, succeeded):
        assert_problem(await http.get(f"/v1/dead-letters/{job['id']}"), 404)


async def test_job_of_a_type_the_worker_does_not_know_is_a_dead_letter(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    job = await submit(http, "diag.noop", {})  # the API knows diag.*, the worker below does not
    worker = make_worker(settings.model_copy(update={"diagnostics": False}), burst=True, poll_delay=0)
    try:
        await worker.main()
    finally:
        await worker.close()

    failed = await read_job(http, job["id"])
    assert failed["status"] == "failed"
    assert "'diag.noop' not found" in failed["error"]["message"]
    letter = (await http.get(f"/v1/dead-letters/{job['id']}")).json()
    assert letter["job"]["error"] == failed["error"]
    assert letter["attempts"] == []  # no attempt ever started


async def test_job_that_expired_before_any_worker_took_it_is_a_dead_letter(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    job = await submit(http, "diag.noop", {})
    await redis.delete(keys.arq_job(job["id"]))  # what JOBSVC_QUEUED_JOB_EXPIRY_S does to a job left waiting
    await run_jobs()

    failed = await read_job(http, job["id"])
    assert (failed["status"], failed["error"]["message"]) == ("failed", "job expired")
    assert (await http.get(f"/v1/dead-letters/{job['id']}")).status_code == 200


async def test_job_past_arqs_own_attempt_cap_is_a_dead_letter(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    job = await submit(http, "diag.noop", {}, max_attempts=1)
    # picked up and lost that many times
    await redis.hset(keys.job_meta(job["id"]), "tries", MAX_ATTEMPTS_LIMIT)
    await run_jobs()

    failed = await read_job(http, job["id"])
    assert failed["status"] == "failed"
    assert f"max {MAX_ATTEMPTS_LIMIT} retries exceeded" in failed["error"]["message"]
    assert (await http.get(f"/v1/dead-letters/{job['id']}")).status_code == 200


# -- replay, retry, delete ------------------------------------------------------------------------------


async def test_replay_runs_a_new_linked_job_that_succeeds_once_the_cause_is_gone(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    dead = await dead_job(http, run_jobs, "image.thumbnail", MISSING_IMAGE, priority=7, max_attempts=3)
    (storage / "uploads").mkdir()
    Image.new("RGB", (64, 32), (10, 20, 30)).save(storage / "uploads" / "late.png")

    response = await http.post(f"/v1/dead-letters/{dead['id']}/replay")

    assert response.status_code == 202, response.text
    replay = response.json()
    assert response.headers["location"] == f"/v1/jobs/{replay['id']}"
    assert replay["id"] != dead["id"]
    assert replay["status"] == "queued"
    assert replay["replay_of"] == dead["id"]
    for field in ("type", "params", "queue", "priority", "max_attempts"):
        assert replay[field] == dead[field], field
    assert await dead_letter_ids(http) == []
    assert (await read_job(http, dead["id"]))["replayed_as"] == replay["id"]
    assert_problem(await http.get(f"/v1/dead-letters/{dead['id']}"), 404)
    assert_problem(await http.post(f"/v1/dead-letters/{dead['id']}/replay"), 404)  # not twice

    await run_jobs()
    done = await read_job(http, replay["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["width"] == 16
    assert done["replay_of"] == dead["id"]


async def test_concurrent_replays_of_one_dead_letter_run_it_once(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    dead = await dead_job(http, run_jobs, "diag.fail", {"times": 1}, max_attempts=1)
    path = f"/v1/dead-letters/{dead['id']}/replay"

    answers = await asyncio.gather(
        *(http.post(path) for _ in range(5)), http.post(f"/v1/jobs/{dead['id']}/retry")
    )

    accepted = [answer for answer in answers if answer.status_code == 202]
    assert len(accepted) == 1
    assert {answer.status_code for answer in answers} <= {202, 404, 409}
    assert (await read_job(http, dead["id"]))["replayed_as"] == accepted[0].json()["id"]
    assert await redis.zcard(keys.arq_queue("default")) == 1


async def test_replay_of_a_type_that_no_longer_exists_is_not_found_and_keeps_the_dead_letter(
    http: httpx.AsyncClient, run_jobs: Any, settings: Settings
) -> None:
    dead = await dead_job(http, run_jobs, "diag.fail", {"times": 1}, max_attempts=1)
    app = create_app(settings.model_copy(update={"diagnostics": False}))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test", headers=auth(ADMIN_KEY)
        ) as without_diag,
    ):
        problem = assert_problem(await without_diag.post(f"/v1/dead-letters/{dead['id']}/replay"), 404)
        assert problem["type"] == "/problems/unknown-job-type"
        bulk = await without_diag.post("/v1/dead-letters:replay", json={})
        assert bulk.status_code == 202
        assert bulk.json() == {"replayed": [], "count": 0}

    assert await dead_letter_ids(http) == [dead["id"]]
    assert (await read_job(http, dead["id"]))["replayed_as"] is None


async def test_delete_removes_the_dead_letter_and_its_records(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    dead = await dead_job(http, run_jobs, "diag.fail", {"times": 1}, max_attempts=1)

    response = await http.delete(f"/v1/dead-letters/{dead['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await http.get(f"/v1/dead-letters/{dead['id']}"), 404)
    assert_problem(await http.get(f"/v1/jobs/{dead['id']}"), 404)
    assert_problem(await http.delete(f"/v1/dead-letters/{dead['id']}"), 404)
    job_id = dead["id"]
    assert not await redis.exists(keys.arq_result(job_id), keys.job_meta(job_id), keys.job_attempts(job_id))


async def test_retry_runs_a_failed_job_again_as_a_new_linked_job(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    dead = await dead_job(http, run_jobs, "diag.fail", {"times": 1}, max_attempts=1, priority=2)

    response = await http.post(f"/v1/jobs/{dead['id']}/retry")

    assert response.status_code == 202, response.text
    retry = response.json()
    assert response.headers["location"] == f"/v1/jobs/{retry['id']}"
    assert retry["replay_of"] == dead["id"]
    assert (retry["type"], retry["params"], retry["priority"], retry["max_attempts"]) == (
        "diag.fail",
        {"times": 1},
        2,
        1,
    )
    assert (await read_job(http, dead["id"]))["replayed_as"] == retry["id"]
    assert await dead_letter_ids(http) == []  # it left the dead letters, as a replay does
    problem = assert_problem(await http.post(f"/v1/jobs/{dead['id']}/retry"), 409)  # once only
    assert retry["id"] in problem["detail"]


async def test_retry_runs_a_cancelled_job_again(http: httpx.AsyncClient, run_jobs: Any) -> None:
    cancelled = await submit(http, "diag.noop", {})
    await http.delete(f"/v1/jobs/{cancelled['id']}")

    response = await http.post(f"/v1/jobs/{cancelled['id']}/retry")

    assert response.status_code == 202, response.text
    retry = response.json()
    assert retry["replay_of"] == cancelled["id"]
    await run_jobs()
    assert (await read_job(http, retry["id"]))["status"] == "succeeded"


async def test_retry_of_a_job_that_did_not_fail_is_a_conflict(http: httpx.AsyncClient, run_jobs: Any) -> None:
    succeeded = await submit(http, "diag.noop", {})
    await run_jobs()
    waiting = await submit(http, "diag.noop", {}, delay_seconds=60)

    problem = assert_problem(await http.post(f"/v1/jobs/{succeeded['id']}/retry"), 409)

    assert problem["type"] == "/problems/job-not-retryable"
    assert (await read_job(http, succeeded["id"]))["replayed_as"] is None
    assert_problem(await http.post(f"/v1/jobs/{waiting['id']}/retry"), 409)
    listed = (await http.get("/v1/jobs")).json()["jobs"]
    assert [job["id"] for job in listed] == [waiting["id"], succeeded["id"]]  # no new job


# -- bulk and listing ---------------------------------------------------------------------------------


async def make_dead_letters(
    http: httpx.AsyncClient, run_jobs: Any, fails: int, images: int = 0
) -> tuple[list[str], list[str]]:
    """``fails`` dead diag.fail jobs and ``images`` dead image.thumbnail jobs, run by one worker."""
    fail_ids = [(await submit(http, "diag.fail", {"times": 1}, max_attempts=1))["id"] for _ in range(fails)]
    image_ids = [(await submit(http, "image.thumbnail", MISSING_IMAGE))["id"] for _ in range(images)]
    await run_jobs()
    return fail_ids, image_ids


async def test_bulk_replay_replays_only_the_given_type_up_to_the_limit(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    fail_ids, image_ids = await make_dead_letters(http, run_jobs, fails=3, images=1)

    response = await http.post("/v1/dead-letters:replay", json={"type": "diag.fail", "limit": 2})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["count"] == 2
    replayed = {item["dead_letter_id"]: item["job"] for item in body["replayed"]}
    assert set(replayed) < set(fail_ids)
    for old_id, job in replayed.items():
        assert job["replay_of"] == old_id
        assert job["type"] == "diag.fail"
        assert job["status"] == "queued"
    assert sorted(await dead_letter_ids(http)) == sorted(set(fail_ids) - set(replayed) | set(image_ids))

    rest = (await http.post("/v1/dead-letters:replay", json={"type": "diag.fail"})).json()
    assert rest["count"] == 1
    assert await dead_letter_ids(http) == image_ids


async def test_purge_by_type_removes_only_that_type(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    fail_ids, image_ids = await make_dead_letters(http, run_jobs, fails=2, images=1)

    response = await http.post("/v1/dead-letters:purge", json={"type": "diag.fail"})

    assert response.status_code == 200, response.text
    assert response.json() == {"purged": 2}
    assert await dead_letter_ids(http) == image_ids
    for job_id in fail_ids:
        assert_problem(await http.get(f"/v1/jobs/{job_id}"), 404)
    assert (await http.post("/v1/dead-letters:purge", json={})).json() == {"purged": 1}
    assert await dead_letter_ids(http) == []


async def test_pages_of_two_see_every_dead_letter_once_newest_first(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    fail_ids, image_ids = await make_dead_letters(http, run_jobs, fails=4, images=1)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get("/v1/dead-letters", params=params)).json()
        assert len(page["dead_letters"]) <= 2
        seen += page["dead_letters"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert sorted(letter["id"] for letter in seen) == sorted(fail_ids + image_ids)
    failed_at = [letter["failed_at"] for letter in seen]
    assert failed_at == sorted(failed_at, reverse=True)
    assert await dead_letter_ids(http, type="image.thumbnail") == image_ids
    assert sorted(await dead_letter_ids(http, queue="default")) == sorted(fail_ids + image_ids)
    assert await dead_letter_ids(http, queue="reports") == []


async def test_a_dead_letter_whose_records_expired_is_dropped_when_met(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    [expired, kept], _ = await make_dead_letters(http, run_jobs, fails=2)
    await redis.delete(keys.arq_result(expired), keys.job_meta(expired), keys.job_attempts(expired))

    assert await dead_letter_ids(http) == [kept]
    assert await redis.zscore(keys.dead_letters(keys.DEFAULT_TENANT), expired) is None


# -- errors -----------------------------------------------------------------------------------------------


async def test_unknown_ids_are_not_found_on_every_endpoint(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/dead-letters/no-such-job"),
        ("POST", "/v1/dead-letters/no-such-job/replay"),
        ("DELETE", "/v1/dead-letters/no-such-job"),
        ("POST", "/v1/jobs/no-such-job/retry"),
    ]:
        problem = assert_problem(await http.request(method, path), 404)
        assert problem["detail"].endswith("no-such-job.")


async def everything(redis: ArqRedis) -> tuple[list[bytes], list[Any]]:
    """Every key and the dead letters with their scores: what a request that writes nothing leaves alone."""
    names = sorted([name async for name in redis.scan_iter(count=1000)])
    return names, await redis.zrange(keys.dead_letters(keys.DEFAULT_TENANT), 0, -1, withscores=True)


async def test_bad_input_is_refused_and_writes_nothing(
    http: httpx.AsyncClient, run_jobs: Any, redis: ArqRedis
) -> None:
    await make_dead_letters(http, run_jobs, fails=2)
    before = await everything(redis)

    for path, body in [
        ("/v1/dead-letters:replay", {"limit": 0}),
        ("/v1/dead-letters:replay", {"limit": 1001}),
        ("/v1/dead-letters:replay", {"typo": "diag.fail"}),
        ("/v1/dead-letters:replay", {"type": "Not A Type"}),
        ("/v1/dead-letters:purge", {"type": "diag.fail", "limit": 5}),
        ("/v1/dead-letters:purge", {"queue": "UPPER"}),
    ]:
        problem = assert_problem(await http.post(path, json=body), 422)
        assert problem["errors"], (path, body)
    assert_problem(await http.post("/v1/dead-letters:purge"), 422)  # no body: no accidental purge
    for params in ({"limit": 0}, {"limit": 501}, {"type": "x"}):
        assert_problem(await http.get("/v1/dead-letters", params=params), 422)
    assert_problem(await http.get("/v1/dead-letters", params={"cursor": "not-a-cursor"}), 400)
    assert_problem(await http.post("/v1/dead-letters/bad%2Fid/replay"), 404)
    assert_problem(await http.post("/v1/dead-letters/-bad/replay"), 422)

    assert await everything(redis) == before


async def test_a_tenant_reads_each_failures_type_and_message_and_only_an_operator_the_traceback(
    http: httpx.AsyncClient, app: Any, run_jobs: Any
) -> None:
    created = await key_for(http, "default", ["submit", "read"])
    tenant_admin = await key_for(http, "default", ["read", "admin"])
    async with client_with_key(app, created["key"]) as reader:
        failing = (
            await reader.post(
                "/v1/jobs", json={"type": "diag.fail", "params": {"times": 5}, "max_attempts": 1}
            )
        ).json()
        await run_jobs()
        seen = (await reader.get(f"/v1/dead-letters/{failing['id']}")).json()
        [listed] = (await reader.get("/v1/dead-letters")).json()["dead_letters"]
    assert seen["traceback"] == listed["traceback"] == ""  # it names the worker's files and code
    assert seen["attempts"][0]["error"]["type"] == "RetryableJobError"
    assert "failing attempt 1" in seen["attempts"][0]["error"]["message"]
    async with client_with_key(app, tenant_admin["key"]) as admin:  # a tenant's admin runs no worker
        assert (await admin.get(f"/v1/dead-letters/{failing['id']}")).json()["traceback"] == ""
    as_admin = (await http.get(f"/v1/dead-letters/{failing['id']}")).json()  # the bootstrap key: an operator
    assert "Traceback" in as_admin["traceback"]
    assert "RetryableJobError" in as_admin["traceback"]
