"""Tenants: each sees only its own jobs, within its own quotas, and an admin can delete all of them.

Two tenants, acme and globex, each with a key of every scope but admin, created by the admin key.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.catalogue.diag import DIAG_LOG
from jobs.engine import keys
from service.api.app import create_app
from service.api.schemas import TenantQuotas
from service.config import Settings
from tests.conftest import auth
from tests.helpers import assert_problem, dead_letter_ids, serve

TENANT_SCOPES = ["submit", "read", "cancel"]
NOOP = {"type": "diag.noop", "params": {}}
FAIL_FOR_GOOD = {"type": "diag.fail", "params": {"times": 1}, "max_attempts": 1}
LATER = {"type": "diag.noop", "params": {}, "delay_seconds": 3600}


@dataclass(frozen=True)
class Tenants:
    admin: httpx.AsyncClient
    acme: httpx.AsyncClient
    globex: httpx.AsyncClient


@asynccontextmanager
async def tenant_clients(
    app: Any, admin: httpx.AsyncClient, *names: str
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """A client per tenant, each with a new key of every scope but admin."""
    async with AsyncExitStack() as stack:
        clients = []
        for name in names:
            created = await admin.post("/v1/admin/keys", json={"tenant": name, "scopes": TENANT_SCOPES})
            assert created.status_code == 201, created.text
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://jobsvc.test",
                headers=auth(created.json()["key"]),
            )
            clients.append(await stack.enter_async_context(client))
        yield clients


@pytest.fixture
async def tenants(app: Any, http: httpx.AsyncClient) -> AsyncIterator[Tenants]:
    async with tenant_clients(app, http, "acme", "globex") as (acme, globex):
        yield Tenants(admin=http, acme=acme, globex=globex)


@asynccontextmanager
async def served_with(settings: Settings, **changes: Any) -> AsyncIterator[Tenants]:
    """The app with other settings, and the two tenants' clients to it."""
    app = create_app(settings.model_copy(update=changes))
    async with serve(app) as admin, tenant_clients(app, admin, "acme", "globex") as (acme, globex):
        yield Tenants(admin=admin, acme=acme, globex=globex)


async def post_job(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def job_ids(client: httpx.AsyncClient, **filters: Any) -> list[str]:
    response = await client.get("/v1/jobs", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


async def redis_contents(redis: ArqRedis) -> dict[bytes, Any]:
    """Every key of the database with its value, to tell what a request wrote."""
    contents: dict[bytes, Any] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            contents[key] = await redis.get(key)
        elif kind == "hash":
            contents[key] = await redis.hgetall(key)
        elif kind == "list":
            contents[key] = await redis.lrange(key, 0, -1)
        elif kind == "set":
            contents[key] = await redis.smembers(key)
        elif kind == "zset":
            contents[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            contents[key] = await redis.xrange(key)
        elif kind != "none":  # expired between SCAN and TYPE
            raise AssertionError(f"{key!r} is a {kind}: teach this helper to read it")
    return contents


def without_rate_counters(contents: dict[bytes, Any]) -> dict[bytes, Any]:
    """The per-second submit counters count refused submits too: by design, not a job written."""
    return {k: v for k, v in contents.items() if b":submits:" not in k}


async def lasting_contents(redis: ArqRedis) -> dict[bytes, Any]:
    """``redis_contents`` without the memory of recent claims and releases, once checked to be that: a
    few seconds long, and never a job's params (a resend of a claim reads the record again)."""
    contents = await redis_contents(redis)
    prefixes = (keys.CLAIMS_REMEMBERED_PREFIX.encode(), keys.RELEASES_REMEMBERED_PREFIX.encode())
    memory = [key for key in contents if key.startswith(prefixes)]
    for key in memory:
        assert 0 < await redis.pttl(key) <= 2 * keys.RESEND_MEMORY_MS, key
        assert b"params" not in contents.pop(key), key
    return contents


def mentions(contents: dict[bytes, Any], needle: str) -> list[bytes]:
    """The keys whose name or value mentions ``needle``."""
    return [
        key
        for key, value in contents.items()
        if needle.encode() in key or needle.encode() in repr(value).encode()
    ]


# -- another tenant's job is an unknown job ---------------------------------------------------------------

#: every route that takes a job id, as the other tenant would call it
JOB_ROUTES = [
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}?wait=1"),
    ("GET", "/v1/jobs/{id}/events"),
    ("DELETE", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/retry"),
    ("GET", "/v1/dead-letters/{id}"),
    ("POST", "/v1/dead-letters/{id}/replay"),
    ("DELETE", "/v1/dead-letters/{id}"),
]


@pytest.mark.parametrize(("method", "route"), JOB_ROUTES)
async def test_another_tenants_job_answers_exactly_as_an_unknown_id(
    tenants: Tenants, run_jobs: Any, method: str, route: str
) -> None:
    dead = await post_job(tenants.acme, FAIL_FOR_GOOD)
    await run_jobs()
    queued = await post_job(tenants.acme, NOOP)
    before = {
        job_id: (await tenants.acme.get(f"/v1/jobs/{job_id}")).json() for job_id in (queued["id"], dead["id"])
    }

    for acme_id in (queued["id"], dead["id"]):
        unknown_id = uuid.uuid4().hex
        theirs = await tenants.globex.request(method, route.format(id=acme_id))
        nobodys = await tenants.globex.request(method, route.format(id=unknown_id))
        assert_problem(theirs, 404)
        assert_problem(nobodys, 404)
        assert theirs.json()["detail"] == nobodys.json()["detail"].replace(unknown_id, acme_id)
        assert {**theirs.json(), "detail": ""} == {**nobodys.json(), "detail": ""}
        assert dict(theirs.headers) == dict(nobodys.headers)

    for job_id, job in before.items():  # nothing happened to acme's jobs
        assert (await tenants.acme.get(f"/v1/jobs/{job_id}")).json() == job
    assert await dead_letter_ids(tenants.acme) == [dead["id"]]


async def test_listings_show_only_the_callers_own_jobs_and_dead_letters(
    tenants: Tenants, run_jobs: Any
) -> None:
    acme_dead = await post_job(tenants.acme, FAIL_FOR_GOOD)
    globex_dead = await post_job(tenants.globex, FAIL_FOR_GOOD)
    await run_jobs()
    acme_jobs = [acme_dead["id"], (await post_job(tenants.acme, NOOP))["id"]]
    globex_jobs = [globex_dead["id"], (await post_job(tenants.globex, NOOP))["id"]]

    for client, own in ((tenants.acme, acme_jobs), (tenants.globex, globex_jobs)):
        assert sorted(await job_ids(client)) == sorted(own)
        assert await job_ids(client, type="diag.noop") == [own[1]]
        assert await job_ids(client, queue="default", status="queued") == [own[1]]
        assert await job_ids(client, status="failed") == [own[0]]
        assert await dead_letter_ids(client) == [own[0]]
        assert await dead_letter_ids(client, type="diag.fail") == [own[0]]
    assert await job_ids(tenants.admin) == []  # the admin key's tenant, `default`, has none

    replayed = await tenants.globex.post("/v1/dead-letters:replay", json={})
    assert replayed.status_code == 202, replayed.text
    assert [r["dead_letter_id"] for r in replayed.json()["replayed"]] == [globex_dead["id"]]
    assert await dead_letter_ids(tenants.acme) == [acme_dead["id"]]
    purged = await tenants.globex.post("/v1/dead-letters:purge", json={})
    assert purged.json() == {"purged": 0}
    assert await dead_letter_ids(tenants.acme) == [acme_dead["id"]]


async def test_a_job_cannot_depend_on_another_tenants_job(tenants: Tenants, redis: ArqRedis) -> None:
    parent = await post_job(tenants.acme, LATER)
    unknown_id = uuid.uuid4().hex
    before = without_rate_counters(await redis_contents(redis))

    theirs = await tenants.globex.post("/v1/jobs", json={**NOOP, "depends_on": [parent["id"]]})
    problem = assert_problem(theirs, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/depends_on/0"]
    nobodys = await tenants.globex.post("/v1/jobs", json={**NOOP, "depends_on": [unknown_id]})
    assert theirs.text == nobodys.text.replace(unknown_id, parent["id"])

    batch = await tenants.globex.post(
        "/v1/jobs:batch", json={"jobs": [{**NOOP, "depends_on": [parent["id"]]}]}
    )
    assert [e["pointer"] for e in assert_problem(batch, 422)["errors"]] == ["/jobs/0/depends_on/0"]

    assert without_rate_counters(await redis_contents(redis)) == before
    assert await job_ids(tenants.globex) == []


async def test_a_batch_with_one_job_depending_on_another_tenants_job_writes_none_of_its_jobs(
    tenants: Tenants, redis: ArqRedis
) -> None:
    parent = await post_job(tenants.acme, LATER)
    before = without_rate_counters(await redis_contents(redis))

    batch = await tenants.globex.post(
        "/v1/jobs:batch", json={"jobs": [NOOP, {**NOOP, "depends_on": [parent["id"]]}]}
    )
    assert [e["pointer"] for e in assert_problem(batch, 422)["errors"]] == ["/jobs/1/depends_on/0"]

    assert await job_ids(tenants.globex) == [], "the batch answered 422, yet its first job was enqueued"
    assert without_rate_counters(await redis_contents(redis)) == before


async def test_the_same_idempotency_key_makes_one_job_per_tenant(tenants: Tenants) -> None:
    acme = await post_job(tenants.acme, NOOP, **{"Idempotency-Key": "order-42"})
    globex = await post_job(tenants.globex, NOOP, **{"Idempotency-Key": "order-42"})
    assert acme["id"] != globex["id"]

    for client, own in ((tenants.acme, acme), (tenants.globex, globex)):
        again = await client.post("/v1/jobs", json=NOOP, headers={"Idempotency-Key": "order-42"})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == own["id"]
        assert await job_ids(client) == [own["id"]]


async def test_a_worker_runs_both_tenants_jobs_and_keeps_their_results_apart(
    tenants: Tenants, run_jobs: Any
) -> None:
    acme = await post_job(tenants.acme, {"type": "diag.sleep", "params": {"seconds": 0.01}})
    globex = await post_job(tenants.globex, {"type": "diag.sleep", "params": {"seconds": 0.02}})
    acme_child = await post_job(tenants.acme, {**NOOP, "depends_on": [acme["id"]]})

    await run_jobs()

    for client, job, slept in ((tenants.acme, acme, 0.01), (tenants.globex, globex, 0.02)):
        done = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert (done["status"], done["result"]) == ("succeeded", {"slept_s": slept})
    assert (await tenants.acme.get(f"/v1/jobs/{acme_child['id']}")).json()["status"] == "succeeded"
    assert_problem(await tenants.acme.get(f"/v1/jobs/{globex['id']}"), 404)
    assert_problem(await tenants.globex.get(f"/v1/jobs/{acme['id']}"), 404)
    listed = {t["tenant"]: t for t in (await tenants.admin.get("/v1/admin/tenants")).json()["tenants"]}
    assert (listed["acme"]["open_jobs"], listed["globex"]["open_jobs"]) == (0, 0)


# -- timing -----------------------------------------------------------------------------------------------


async def timing_ratio(client: httpx.AsyncClient, theirs: str, unknown: str, rounds: int = 300) -> float:
    """How much longer ``theirs`` takes than ``unknown``: the median over rounds of one read of each, in
    alternating order, so that load on the machine weighs on both reads of a round alike."""
    ratios = []
    for round_ in range(rounds + 20):
        took = {}
        for path in (theirs, unknown) if round_ % 2 else (unknown, theirs):
            started = time.perf_counter()
            response = await client.get(path)
            took[path] = time.perf_counter() - started
            assert response.status_code == 404
        if round_ >= 20:  # warm-up
            ratios.append(took[theirs] / took[unknown])
    return statistics.median(ratios)


@pytest.mark.parametrize("state", ["queued", "succeeded"])
async def test_reading_another_tenants_job_takes_as_long_as_an_unknown_id(
    tenants: Tenants, run_jobs: Any, state: str
) -> None:
    """Timing must not tell another tenant's ids from made-up ones. A measurement that a burst of load
    skewed is taken again, up to three times: a real difference shows in every one."""
    job = await post_job(tenants.acme, {"type": "diag.sleep", "params": {"seconds": 0}})
    if state == "succeeded":
        await run_jobs()
    assert (await tenants.acme.get(f"/v1/jobs/{job['id']}")).json()["status"] == state

    ratios = []
    async with asyncio.timeout(120):
        for _ in range(3):
            ratios.append(
                await timing_ratio(tenants.globex, f"/v1/jobs/{job['id']}", f"/v1/jobs/{uuid.uuid4().hex}")
            )
            if 0.7 < ratios[-1] < 1.4:
                return
    pytest.fail(
        f"another tenant's job takes {', '.join(f'{r:.2f}' for r in ratios)}x as long as an unknown id"
    )


async def redis_calls(redis: ArqRedis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name: int(stat["calls"]) for name, stat in stats.items()}


async def test_reading_another_tenants_job_costs_the_same_redis_commands_as_an_unknown_id(
    tenants: Tenants, redis: ArqRedis
) -> None:
    """What the timing test measures, counted: the same commands whether the id is someone's or nobody's."""
    job = await post_job(tenants.acme, NOOP)
    paths = {"theirs": f"/v1/jobs/{job['id']}", "unknown": f"/v1/jobs/{uuid.uuid4().hex}"}
    spent: dict[str, dict[str, int]] = {}
    for which, path in paths.items():
        assert (await tenants.globex.get(path)).status_code == 404  # warm: connections open, scripts loaded
        before = await redis_calls(redis)
        for _ in range(10):
            assert (await tenants.globex.get(path)).status_code == 404
        after = await redis_calls(redis)
        spent[which] = {
            name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name)
        }
    assert spent["theirs"] == spent["unknown"]


# -- quotas -----------------------------------------------------------------------------------------------


async def test_the_fourth_open_job_over_a_quota_of_three_is_refused_until_jobs_end(
    settings: Settings, redis: ArqRedis, run_jobs: Any
) -> None:
    async with served_with(settings, tenant_max_open_jobs=3) as tenants:
        first = [(await post_job(tenants.acme, NOOP))["id"] for _ in range(3)]
        before = without_rate_counters(await redis_contents(redis))

        refused = await tenants.acme.post("/v1/jobs", json=NOOP)
        problem = assert_problem(refused, 429)
        assert problem["title"] == "Quota exceeded"
        assert int(refused.headers["retry-after"]) >= 1
        assert_problem(await tenants.acme.post("/v1/jobs:batch", json={"jobs": [NOOP]}), 429)
        assert without_rate_counters(await redis_contents(redis)) == before
        assert sorted(await job_ids(tenants.acme)) == sorted(first)
        assert (await post_job(tenants.globex, NOOP))["status"] == "queued"  # another tenant's quota

        await run_jobs()

        assert (await post_job(tenants.acme, NOOP))["status"] == "queued"
        accepted = await tenants.acme.post("/v1/jobs:batch", json={"jobs": [NOOP, NOOP]})
        assert accepted.status_code == 202, accepted.text
        assert_problem(await tenants.acme.post("/v1/jobs", json=NOOP), 429)


async def test_running_dead_letters_again_counts_against_the_open_jobs_quota(
    settings: Settings, redis: ArqRedis, run_jobs: Any
) -> None:
    async with served_with(settings, tenant_max_open_jobs=1) as tenants:
        dead = []
        for _ in range(2):
            dead.append((await post_job(tenants.acme, FAIL_FOR_GOOD))["id"])
            await run_jobs()
        await post_job(tenants.acme, NOOP)  # its one open job
        assert_problem(await tenants.acme.post("/v1/jobs", json=NOOP), 429)

        assert_problem(await tenants.acme.post(f"/v1/dead-letters/{dead[0]}/replay"), 429)
        assert_problem(await tenants.acme.post(f"/v1/jobs/{dead[1]}/retry"), 429)
        # a bulk replay that can run none again is refused as a whole, with Retry-After
        assert_problem(await tenants.acme.post("/v1/dead-letters:replay", json={}), 429)
        assert sorted(await dead_letter_ids(tenants.acme)) == sorted(dead)


async def start_of_a_second() -> None:
    """Wait for the wall clock's next second, so that a burst of submits falls within one second."""
    await asyncio.sleep(1.001 - time.time() % 1)


async def test_the_sixth_submit_in_a_second_over_a_rate_of_five_is_refused(
    settings: Settings, redis: ArqRedis
) -> None:
    async with served_with(settings, tenant_submits_per_s=5) as tenants:
        await start_of_a_second()
        accepted = [await tenants.acme.post("/v1/jobs", json=NOOP) for _ in range(5)]
        refused = await tenants.acme.post("/v1/jobs", json=NOOP)
        assert [r.status_code for r in accepted] == [202] * 5
        assert_problem(refused, 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 1
        assert len(await job_ids(tenants.acme)) == 5
        assert (await post_job(tenants.globex, NOOP))["status"] == "queued"  # another tenant's rate

        await start_of_a_second()
        before = without_rate_counters(await redis_contents(redis))
        too_many = await tenants.acme.post("/v1/jobs:batch", json={"jobs": [NOOP] * 6})
        assert_problem(too_many, 429)
        assert "retry-after" in too_many.headers
        assert without_rate_counters(await redis_contents(redis)) == before
        assert len(await job_ids(tenants.acme)) == 5

        await start_of_a_second()
        five = await tenants.acme.post("/v1/jobs:batch", json={"jobs": [NOOP] * 5})
        assert five.status_code == 202, five.text


async def test_an_admin_sets_a_tenants_quotas_and_sees_its_open_jobs(
    tenants: Tenants, settings: Settings
) -> None:
    for _ in range(2):
        await post_job(tenants.acme, NOOP)

    changed = await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"max_open_jobs": 2})
    assert changed.status_code == 200, changed.text
    kept_bytes = changed.json()["kept_bytes"]
    assert kept_bytes > 0
    assert changed.json() == {
        "tenant": "acme",
        "open_jobs": 2,
        "kept_jobs": 2,
        "kept_bytes": kept_bytes,
        "max_open_jobs": 2,
        "submits_per_s": settings.tenant_submits_per_s,
        "max_kept_jobs": settings.tenant_max_kept_jobs,
        "max_kept_bytes": settings.tenant_max_kept_bytes,
        "weight": 1,
        "max_priority": 9,
        "queues": None,
    }
    assert (await tenants.admin.get("/v1/admin/tenants/acme")).json() == changed.json()
    listed = {t["tenant"]: t for t in (await tenants.admin.get("/v1/admin/tenants")).json()["tenants"]}
    assert listed["acme"] == changed.json()
    assert_problem(await tenants.acme.post("/v1/jobs", json=NOOP), 429)
    assert (await post_job(tenants.globex, NOOP))["status"] == "queued"
    assert listed.keys() >= {"acme"}

    back = await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={})
    assert back.json()["max_open_jobs"] == settings.tenant_max_open_jobs
    assert (await post_job(tenants.acme, NOOP))["status"] == "queued"

    assert_problem(await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"max_open_jobs": 0}), 422)
    assert_problem(await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"open": 1}), 422)
    assert_problem(await tenants.acme.put("/v1/admin/tenants/acme/quotas", json={"max_open_jobs": 9}), 403)


async def function_started(worker: Any, job_id: str) -> None:
    """Wait until the worker runs the job's function (``in_progress`` shows from the claim, a bit before)."""
    async with asyncio.timeout(10):
        while job_id not in worker.job_tasks:
            await asyncio.sleep(0.01)


# -- storage budgets: what a tenant keeps in Redis, ended jobs included --------------------------------------

#: a job whose params are about 60 KB, that waits an hour: cancelled before it could run
LARGE = {
    "type": "webhook.deliver",
    "params": {"url": "https://example.com/hook", "payload": {"blob": "x" * 60_000}},
    "delay_seconds": 3600,
}


async def acme_kept_bytes_in_redis(tenants: Tenants, redis: ArqRedis) -> int:
    """What acme's job and result records take in Redis, counted from the records themselves."""
    ids = await job_ids(tenants.acme)
    records = [key for job_id in ids for key in (keys.arq_job(job_id), keys.arq_result(job_id))]
    return sum([await redis.strlen(key) for key in records])


async def test_submitting_large_params_and_cancelling_in_a_loop_stops_at_the_storage_budget(
    tenants: Tenants, redis: ArqRedis
) -> None:
    """Every quota of open jobs and submits holds in this loop; only the budget stops it filling Redis. A
    cancelled job keeps its result (params included) and, for a minute, its record: twice its params."""
    budget = 400_000
    set_budget = await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"max_kept_bytes": budget})
    assert set_budget.status_code == 200, set_budget.text
    accepted = 0
    while (response := await tenants.acme.post("/v1/jobs", json=LARGE)).status_code == 202:
        accepted += 1
        assert (await tenants.acme.delete(f"/v1/jobs/{response.json()['id']}")).status_code == 202
        assert accepted < 10, "the budget never refused a submit"
    problem = assert_problem(response, 429)
    assert problem["type"] == "/problems/storage-budget-exceeded"
    assert f"{budget} bytes" in problem["detail"]
    assert "retry-after" in response.headers

    view = (await tenants.admin.get("/v1/admin/tenants/acme")).json()
    assert (view["open_jobs"], view["kept_jobs"], accepted) == (0, 3, 3)
    assert view["kept_bytes"] == await acme_kept_bytes_in_redis(tenants, redis)
    assert 3 * 2 * 60_000 < view["kept_bytes"] <= budget
    assert (await post_job(tenants.globex, LARGE))["status"] == "deferred"  # another tenant's budget


async def test_ended_jobs_count_against_the_jobs_a_tenant_may_keep_until_deleted(
    tenants: Tenants, redis: ArqRedis, run_jobs: Any
) -> None:
    await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"max_kept_jobs": 3})
    for _ in range(3):
        await post_job(tenants.acme, NOOP)
    await run_jobs()

    before = without_rate_counters(await redis_contents(redis))
    refused = await tenants.acme.post("/v1/jobs", json=NOOP)
    assert assert_problem(refused, 429)["type"] == "/problems/storage-budget-exceeded"
    batch = await tenants.acme.post("/v1/jobs:batch", json={"jobs": [NOOP]})
    assert assert_problem(batch, 429)["type"] == "/problems/storage-budget-exceeded"
    assert without_rate_counters(await redis_contents(redis)) == before
    view = (await tenants.admin.get("/v1/admin/tenants/acme")).json()
    assert (view["open_jobs"], view["kept_jobs"]) == (0, 3)
    assert (await post_job(tenants.globex, NOOP))["status"] == "queued"

    assert (await tenants.admin.delete("/v1/admin/tenants/acme/jobs")).json()["deleted_jobs"] == 3
    assert (await tenants.admin.get("/v1/admin/tenants/acme")).json()["kept_jobs"] == 0
    assert (await post_job(tenants.acme, NOOP))["status"] == "queued"


async def test_a_submit_larger_than_the_whole_storage_budget_is_413_and_writes_nothing(
    tenants: Tenants, redis: ArqRedis
) -> None:
    await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"max_kept_bytes": 50_000})
    before = without_rate_counters(await redis_contents(redis))
    refused = await tenants.acme.post("/v1/jobs", json=LARGE)
    assert assert_problem(refused, 413)["type"] == "/problems/larger-than-storage-budget"
    assert without_rate_counters(await redis_contents(redis)) == before


async def test_an_admin_lowers_its_own_tenants_budget_and_only_an_operator_raises_it(
    tenants: Tenants, app: Any, settings: Settings
) -> None:
    own = await tenants.admin.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["admin"]})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test", headers=auth(own.json()["key"])
    ) as acme_admin:
        lowered = await acme_admin.put("/v1/admin/tenants/acme/quotas", json={"max_kept_jobs": 10})
        assert lowered.json()["max_kept_jobs"] == 10
        raised = await acme_admin.put("/v1/admin/tenants/acme/quotas", json={"max_kept_bytes": 1 << 40})
        assert assert_problem(raised, 403)["type"] == "/problems/forbidden"
        reset = await acme_admin.put("/v1/admin/tenants/acme/quotas", json={})  # back up to the defaults
        assert_problem(reset, 403)
        assert_problem(await acme_admin.get("/v1/admin/tenants/globex"), 403)
    by_operator = await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={})
    assert by_operator.json()["max_kept_jobs"] == settings.tenant_max_kept_jobs


# -- fair share and policy: what one tenant may take from the others -----------------------------------------


def recorded(label: str, **fields: Any) -> dict[str, Any]:
    """A ``diag.record`` job: its label goes into the diagnostics log when it starts."""
    return {"type": "diag.record", "params": {"label": label}, **fields}


async def test_a_flood_from_one_tenant_delays_another_tenants_job_by_about_one_job(
    tenants: Tenants, redis: ArqRedis, run_jobs: Any
) -> None:
    for start in range(0, 300, 100):
        flood = {"jobs": [recorded(f"acme-{i}") for i in range(start, start + 100)]}
        assert (await tenants.acme.post("/v1/jobs:batch", json=flood)).status_code == 202
    await post_job(tenants.globex, recorded("globex"))
    await run_jobs(max_jobs=1)  # one at a time: the log is the order the workers took them in
    order = [label.decode() for label in await redis.lrange(DIAG_LOG, 0, -1)]
    assert len(order) == 301
    assert order.index("globex") <= 1, order[:5]
    assert [label for label in order if label.startswith("acme")] == [f"acme-{i}" for i in range(300)]


async def test_a_heavier_tenant_gets_more_turns_in_proportion(
    tenants: Tenants, redis: ArqRedis, run_jobs: Any
) -> None:
    weighted = await tenants.admin.put("/v1/admin/tenants/globex/quotas", json={"weight": 4})
    assert weighted.json()["weight"] == 4
    for client, name in ((tenants.acme, "acme"), (tenants.globex, "globex")):
        batch = {"jobs": [recorded(f"{name}-{i}") for i in range(50)]}
        assert (await client.post("/v1/jobs:batch", json=batch)).status_code == 202
    await run_jobs(max_jobs=1)
    first_25 = [label.decode() for label in await redis.lrange(DIAG_LOG, 0, 24)]
    assert sum(label.startswith("globex") for label in first_25) == 20, first_25


async def test_a_tenant_submits_only_to_its_queues_and_up_to_its_priority(
    tenants: Tenants, redis: ArqRedis
) -> None:
    limited = await tenants.admin.put(
        "/v1/admin/tenants/acme/quotas", json={"queues": ["default", "bulk"], "max_priority": 5}
    )
    assert (limited.json()["queues"], limited.json()["max_priority"]) == (["default", "bulk"], 5)
    before = without_rate_counters(await redis_contents(redis))
    for body in (
        {**NOOP, "queue": "critical"},
        {**NOOP, "priority": 9},
    ):
        refused = await tenants.acme.post("/v1/jobs", json=body)
        assert assert_problem(refused, 403)["type"] == "/problems/not-allowed-for-tenant", body
        in_batch = await tenants.acme.post("/v1/jobs:batch", json={"jobs": [NOOP, body]})
        assert assert_problem(in_batch, 403)["type"] == "/problems/not-allowed-for-tenant", body
    assert without_rate_counters(await redis_contents(redis)) == before
    assert (await post_job(tenants.acme, {**NOOP, "queue": "bulk", "priority": 5}))["status"] == "queued"
    assert (await post_job(tenants.globex, {**NOOP, "queue": "critical", "priority": 9}))[
        "status"
    ] == "queued"
    unknown = await tenants.admin.put("/v1/admin/tenants/acme/quotas", json={"queues": ["nowhere"]})
    assert_problem(unknown, 422)


async def test_an_admin_narrows_its_tenants_policy_and_only_an_operator_widens_it(
    tenants: Tenants, app: Any
) -> None:
    own = await tenants.admin.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["admin"]})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test", headers=auth(own.json()["key"])
    ) as acme_admin:
        narrowed = await acme_admin.put(
            "/v1/admin/tenants/acme/quotas", json={"queues": ["default"], "max_priority": 5}
        )
        assert narrowed.status_code == 200, narrowed.text
        settable = {name: narrowed.json()[name] for name in TenantQuotas.Update.model_fields}
        for wider in ({"queues": ["default", "critical"]}, {"max_priority": 6}, {"weight": 2}):
            refused = await acme_admin.put("/v1/admin/tenants/acme/quotas", json={**settable, **wider})
            assert_problem(refused, 403, str(wider))
        same = await acme_admin.put("/v1/admin/tenants/acme/quotas", json=settable)
        assert same.status_code == 200, same.text


# -- deleting a tenant's jobs -----------------------------------------------------------------------------


async def test_deleting_a_tenants_jobs_removes_every_trace_and_leaves_the_others(
    tenants: Tenants, redis: ArqRedis, run_jobs: Any, background_worker: Any
) -> None:
    acme = [(await post_job(tenants.acme, body))["id"] for body in (NOOP, FAIL_FOR_GOOD)]
    globex = [(await post_job(tenants.globex, body))["id"] for body in (NOOP, FAIL_FOR_GOOD)]
    await run_jobs()
    waiting = await post_job(tenants.acme, LATER)
    acme += [waiting["id"], (await post_job(tenants.acme, {**NOOP, "depends_on": [waiting["id"]]}))["id"]]
    globex.append((await post_job(tenants.globex, LATER))["id"])
    globex_before = {job_id: (await tenants.globex.get(f"/v1/jobs/{job_id}")).json() for job_id in globex}

    async with background_worker() as worker:
        running = await post_job(tenants.acme, {"type": "diag.sleep", "params": {"seconds": 1.5}})
        acme.append(running["id"])
        await function_started(worker, running["id"])
        its_run = worker.tasks[running["id"]]

        deleted = await tenants.admin.delete("/v1/admin/tenants/acme/jobs")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"tenant": "acme", "deleted_jobs": len(acme)}

        done, _ = await asyncio.wait([its_run], timeout=10)  # aborted, or run to its end: either way over
        assert done, "the deleted job's run never ended"

    contents = await lasting_contents(redis)
    for job_id in acme:  # the running one's too: its worker wrote nothing back, its meta being gone
        left = mentions(contents, job_id)
        assert left == [], f"job {job_id} left {left}"
    # the tenant itself stays: its keys and its webhook secret are not jobs
    assert [k for k in contents if b"acme" in k and b":submits:" not in k] == [
        keys.tenant_webhook_secrets("acme").encode()
    ]

    for job_id in acme:
        assert_problem(await tenants.acme.get(f"/v1/jobs/{job_id}"), 404)
        assert_problem(await tenants.acme.get(f"/v1/dead-letters/{job_id}"), 404)
    assert await job_ids(tenants.acme) == []
    assert await job_ids(tenants.acme, type="diag.noop") == []
    assert await dead_letter_ids(tenants.acme) == []
    listed = {t["tenant"]: t for t in (await tenants.admin.get("/v1/admin/tenants")).json()["tenants"]}
    assert listed["acme"]["open_jobs"] == 0

    assert {
        job_id: (await tenants.globex.get(f"/v1/jobs/{job_id}")).json() for job_id in globex
    } == globex_before
    assert sorted(await job_ids(tenants.globex)) == sorted(globex)
    assert await dead_letter_ids(tenants.globex) == [globex[1]]
    assert listed["globex"]["open_jobs"] == 1

    assert (await post_job(tenants.acme, NOOP))["status"] == "queued"  # acme carries on, from nothing


async def test_deleting_a_tenants_jobs_leaves_tenants_whose_names_start_alike(
    app: Any, tenants: Tenants, run_jobs: Any
) -> None:
    async with tenant_clients(app, tenants.admin, "acme-eu", "acmecorp") as alike:
        theirs = [
            [(await post_job(client, body))["id"] for body in (NOOP, FAIL_FOR_GOOD)] for client in alike
        ]
        await post_job(tenants.acme, NOOP)
        await run_jobs()

        deleted = await tenants.admin.delete("/v1/admin/tenants/acme/jobs")
        assert deleted.json() == {"tenant": "acme", "deleted_jobs": 1}

        for client, ids in zip(alike, theirs, strict=True):
            assert sorted(await job_ids(client)) == sorted(ids)
            assert await job_ids(client, type="diag.noop") == [ids[0]]
            assert await job_ids(client, queue="default", status="failed") == [ids[1]]
            assert await dead_letter_ids(client) == [ids[1]]


async def test_deleting_a_tenants_jobs_forgets_their_idempotency_keys(tenants: Tenants) -> None:
    """An Idempotency-Key names a job; once the job is deleted with its tenant's data, the key is free."""
    await post_job(tenants.acme, NOOP, **{"Idempotency-Key": "order-42"})
    assert (await tenants.admin.delete("/v1/admin/tenants/acme/jobs")).json()["deleted_jobs"] == 1

    again = await tenants.acme.post("/v1/jobs", json=NOOP, headers={"Idempotency-Key": "order-42"})
    assert again.status_code == 202, again.text


async def test_deleting_the_jobs_of_a_tenant_without_any_deletes_nothing(tenants: Tenants) -> None:
    job = await post_job(tenants.globex, NOOP)
    deleted = await tenants.admin.delete("/v1/admin/tenants/nobody/jobs")
    assert deleted.json() == {"tenant": "nobody", "deleted_jobs": 0}
    assert (await tenants.globex.get(f"/v1/jobs/{job['id']}")).status_code == 200


async def test_a_deleted_running_job_that_reports_progress_before_its_abort_lands_leaves_nothing(
    tenants: Tenants, redis: ArqRedis, background_worker: Any
) -> None:
    """A worker looks for abort requests once per poll (JOBSVC_WORKER_POLL_DELAY_S, 1 s by default): until
    then the deleted job runs on and reports progress. Here the worker never looks, so the job runs to its
    end, reporting progress after it was deleted."""
    async with background_worker(allow_abort_jobs=False) as worker:
        running = await post_job(tenants.acme, {"type": "diag.sleep", "params": {"seconds": 1.5}})
        await function_started(worker, running["id"])
        its_run = worker.tasks[running["id"]]
        assert (await tenants.admin.delete("/v1/admin/tenants/acme/jobs")).json()["deleted_jobs"] == 1
        done, _ = await asyncio.wait([its_run], timeout=10)
        assert done, "the deleted job's run never ended"

    contents = await lasting_contents(redis)
    left = {key: contents[key] for key in mentions(contents, running["id"])}
    # only the abort request no worker took, which maintenance.cleanup prunes
    assert left.keys() == {keys.ABORT_SET.encode()}, left
