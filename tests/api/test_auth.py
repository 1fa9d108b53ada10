"""API keys and scopes: every route under /v1 asks for a key and the one scope it declares; keys are
created, listed and revoked by an admin, and only their hash is ever stored."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from fastapi.routing import iter_route_contexts

from service.api.app import create_app
from service.cli import main
from service.config import Settings
from tests.conftest import ADMIN_KEY, auth
from tests.helpers import assert_problem, serve

SCOPES = ("submit", "read", "cancel", "admin", "operator")
#: the tenant the matrix's keys (and jobs) belong to
TENANT = "matrix"


@dataclass(frozen=True)
class Sample:
    """A valid request to one route: what a key with the route's scope gets through with."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    #: an event stream that never ends by itself: got through when it is still open after a moment
    endless: bool = False


@dataclass(frozen=True)
class Ids:
    """Real ids for the routes that take one; each consuming route gets its own."""

    queued: str
    to_cancel: str
    failed: str
    dead_to_read: str
    dead_to_replay: str
    dead_to_delete: str
    spare_key: str


NOOP = {"type": "diag.noop", "params": {}}
NONE_OF_THEM = {"type": "diag.noop"}  # a dead-letter selection that matches no dead letter

#: route (method, path) -> the scope it requires and a sample valid request. Every route under /v1 must be
#: here: a new route without a decision fails ``test_every_v1_route_has_a_scope_decision``.
ROUTES: dict[tuple[str, str], tuple[str, Any]] = {
    ("POST", "/v1/jobs"): ("submit", lambda i: Sample("POST", "/v1/jobs", NOOP)),
    ("POST", "/v1/jobs:batch"): ("submit", lambda i: Sample("POST", "/v1/jobs:batch", {"jobs": [NOOP]})),
    ("POST", "/v1/jobs/{job_id}/retry"): ("submit", lambda i: Sample("POST", f"/v1/jobs/{i.failed}/retry")),
    ("POST", "/v1/dead-letters/{job_id}/replay"): (
        "submit",
        lambda i: Sample("POST", f"/v1/dead-letters/{i.dead_to_replay}/replay"),
    ),
    ("POST", "/v1/dead-letters:replay"): (
        "submit",
        lambda i: Sample("POST", "/v1/dead-letters:replay", NONE_OF_THEM),
    ),
    ("GET", "/v1/jobs"): ("read", lambda i: Sample("GET", "/v1/jobs")),
    ("GET", "/v1/jobs/{job_id}"): ("read", lambda i: Sample("GET", f"/v1/jobs/{i.queued}")),
    # a finished job, so that its event stream ends after its first event
    ("GET", "/v1/events"): ("read", lambda i: Sample("GET", "/v1/events", endless=True)),
    ("GET", "/v1/jobs/{job_id}/events"): (
        "read",
        lambda i: Sample("GET", f"/v1/jobs/{i.dead_to_read}/events"),
    ),
    ("GET", "/v1/job-types"): ("read", lambda i: Sample("GET", "/v1/job-types")),
    ("GET", "/v1/dead-letters"): ("read", lambda i: Sample("GET", "/v1/dead-letters")),
    ("GET", "/v1/dead-letters/{job_id}"): (
        "read",
        lambda i: Sample("GET", f"/v1/dead-letters/{i.dead_to_read}"),
    ),
    ("DELETE", "/v1/jobs/{job_id}"): ("cancel", lambda i: Sample("DELETE", f"/v1/jobs/{i.to_cancel}")),
    ("POST", "/v1/jobs:cancel"): (
        "cancel",
        lambda i: Sample("POST", "/v1/jobs:cancel", {"type": "nothing.matches"}),
    ),
    ("DELETE", "/v1/dead-letters/{job_id}"): (
        "cancel",
        lambda i: Sample("DELETE", f"/v1/dead-letters/{i.dead_to_delete}"),
    ),
    ("POST", "/v1/dead-letters:purge"): (
        "cancel",
        lambda i: Sample("POST", "/v1/dead-letters:purge", NONE_OF_THEM),
    ),
    ("GET", "/v1/queues"): ("operator", lambda i: Sample("GET", "/v1/queues")),
    ("POST", "/v1/queues/{name}:pause"): ("operator", lambda i: Sample("POST", "/v1/queues/bulk:pause")),
    ("POST", "/v1/queues/{name}:resume"): ("operator", lambda i: Sample("POST", "/v1/queues/bulk:resume")),
    ("GET", "/v1/workers"): ("operator", lambda i: Sample("GET", "/v1/workers")),
    ("GET", "/v1/schedules"): ("operator", lambda i: Sample("GET", "/v1/schedules")),
    ("POST", "/v1/admin/keys"): (
        "admin",
        lambda i: Sample("POST", "/v1/admin/keys", {"tenant": TENANT, "scopes": ["read"]}),
    ),
    ("GET", "/v1/admin/keys"): ("admin", lambda i: Sample("GET", "/v1/admin/keys")),
    ("DELETE", "/v1/admin/keys/{key_id}"): (
        "admin",
        lambda i: Sample("DELETE", f"/v1/admin/keys/{i.spare_key}"),
    ),
    ("GET", "/v1/admin/tenants"): ("admin", lambda i: Sample("GET", "/v1/admin/tenants")),
    ("GET", "/v1/admin/tenants/{tenant}"): ("admin", lambda i: Sample("GET", f"/v1/admin/tenants/{TENANT}")),
    ("PUT", "/v1/admin/tenants/{tenant}/quotas"): (
        "admin",
        lambda i: Sample("PUT", f"/v1/admin/tenants/{TENANT}/quotas", {"max_open_jobs": 1000}),
    ),
    ("POST", "/v1/admin/tenants/{tenant}/webhook-secrets"): (
        "admin",
        lambda i: Sample("POST", f"/v1/admin/tenants/{TENANT}/webhook-secrets", {"grace_s": 60}),
    ),
    ("DELETE", "/v1/admin/tenants/{tenant}/jobs"): (
        "admin",
        lambda i: Sample("DELETE", f"/v1/admin/tenants/{TENANT}/jobs"),  # last: the jobs above are done with
    ),
    ("GET", "/v1/admin/audit"): ("operator", lambda i: Sample("GET", "/v1/admin/audit")),
}

#: routes outside /v1 that answer without a key
OPEN_ROUTES = ("/healthz", "/readyz", "/docs", "/openapi.json")


def v1_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves under /v1, HEAD aside."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path == "/v1" or path.startswith(("/v1/", "/v1:")):
            found |= {(method, path) for method in route.methods or () if method != "HEAD"}
    return found


async def create_key(
    http: httpx.AsyncClient, tenant: str, scopes: list[str], name: str = ""
) -> dict[str, Any]:
    response = await http.post("/v1/admin/keys", json={"tenant": tenant, "scopes": scopes, "name": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def send(http: httpx.AsyncClient, sample: Sample, headers: dict[str, str]) -> httpx.Response:
    if not sample.endless:
        return await http.request(sample.method, sample.path, json=sample.body, headers=headers)
    try:
        async with asyncio.timeout(1.0):
            return await http.request(sample.method, sample.path, json=sample.body, headers=headers)
    except TimeoutError:  # refusals answer at once; the stream is open, so the key got through
        return httpx.Response(200)


async def matrix_ids(http: httpx.AsyncClient, run_jobs: Any) -> Ids:
    """The matrix tenant's jobs: failed ones (dead letters) run by a worker, then waiting ones."""
    owner = auth((await create_key(http, TENANT, list(SCOPES)))["key"])
    dead = [(await submit_as(http, owner, "diag.fail", {"times": 1}, max_attempts=1))["id"] for _ in range(4)]
    await run_jobs()
    queued, to_cancel = [(await submit_as(http, owner, "diag.noop", {}))["id"] for _ in range(2)]
    spare = (await create_key(http, TENANT, ["read"], name="spare"))["id"]
    return Ids(queued, to_cancel, dead[0], dead[1], dead[2], dead[3], spare)


async def submit_as(
    http: httpx.AsyncClient, headers: dict[str, str], job_type: str, params: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    response = await http.post(
        "/v1/jobs", json={"type": job_type, "params": params, **extra}, headers=headers
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


# -- the matrix: every /v1 route x every kind of caller ---------------------------------------------------


async def test_every_v1_route_has_a_scope_decision(app: Any) -> None:
    served = v1_routes(app)
    assert served, "no /v1 route found: the route enumeration is broken"
    assert served - ROUTES.keys() == set(), "routes without a scope decision in ROUTES"
    assert ROUTES.keys() - served == set(), "ROUTES names routes the app no longer serves"
    assert {scope for scope, _ in ROUTES.values()} == set(SCOPES)


async def test_every_v1_route_without_a_key_answers_401_with_a_bearer_challenge(
    app: Any, http: httpx.AsyncClient, run_jobs: Any
) -> None:
    ids = await matrix_ids(http, run_jobs)
    no_key = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test")
    async with no_key:
        for route, (_, sample_of) in ROUTES.items():
            sample = sample_of(ids)
            response = await no_key.request(sample.method, sample.path, json=sample.body)
            assert_problem(response, 401, f"{route}")
            assert response.headers["www-authenticate"].startswith("Bearer"), route


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer nonsense",
        "Bearer jsk_0123456789abcdef_" + "x" * 43,  # well-formed, no such key
        "Bearer jsk_0123456789ABCDEF_secret",  # id not lowercase hex
        "Bearer jsk__secret",
        "Bearer " + ADMIN_KEY + "x",
        "Basic " + ADMIN_KEY,
        "Bearer",
        ADMIN_KEY,
    ],
)
async def test_every_v1_route_with_a_malformed_or_unknown_key_answers_401(
    http: httpx.AsyncClient, run_jobs: Any, authorization: str
) -> None:
    ids = await matrix_ids(http, run_jobs)
    for route, (_, sample_of) in ROUTES.items():
        response = await send(http, sample_of(ids), {"Authorization": authorization})
        assert_problem(response, 401, f"{route} with {authorization!r}")
        assert response.headers["www-authenticate"].startswith("Bearer"), route


async def test_every_v1_route_with_a_key_lacking_its_scope_answers_403_insufficient_scope(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    ids = await matrix_ids(http, run_jobs)
    lacking = {
        scope: auth((await create_key(http, TENANT, [s for s in SCOPES if s != scope]))["key"])
        for scope in SCOPES
    }
    for route, (scope, sample_of) in ROUTES.items():
        response = await send(http, sample_of(ids), lacking[scope])
        problem = assert_problem(response, 403, f"{route} without {scope}")
        assert f"`{scope}`" in problem["detail"], route
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge, route
        assert f'scope="{scope}"' in challenge, route


async def test_every_v1_route_with_just_its_scope_gets_through(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    ids = await matrix_ids(http, run_jobs)
    only = {scope: auth((await create_key(http, TENANT, [scope]))["key"]) for scope in SCOPES}
    for route, (scope, sample_of) in ROUTES.items():
        response = await send(http, sample_of(ids), only[scope])
        assert response.status_code < 300, (
            f"{route} with only {scope}: {response.status_code} {response.text}"
        )


@pytest.mark.parametrize("path", OPEN_ROUTES)
async def test_health_and_docs_answer_without_a_key(app: Any, redis: ArqRedis, path: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test"
    ) as anyone:
        response = await anyone.get(path)
    assert response.status_code not in (401, 403), response.text
    # /readyz is 503 without a live worker: what matters is that no key was asked for
    assert response.status_code in (200, 503), response.text


# -- key lifecycle ----------------------------------------------------------------------------------------


async def all_of_redis(redis: ArqRedis) -> list[bytes]:
    """Every key name and every value of the database, as bytes."""
    found: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        found.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            found.append(await redis.get(key) or b"")
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                found += [field, value]
        elif kind == "list":
            found += await redis.lrange(key, 0, -1)
        elif kind == "set":
            found += list(await redis.smembers(key))
        elif kind == "zset":
            found += [member for member, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _, fields in await redis.xrange(key):
                for field, value in fields.items():
                    found += [field, value]
        else:
            raise AssertionError(f"{key!r} is a {kind}: teach this helper to read it")
    return found


async def test_a_new_key_is_shown_once_and_only_its_hash_is_kept(
    app: Any, http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    response = await http.post(
        "/v1/admin/keys", json={"tenant": "acme", "scopes": ["read", "submit"], "name": "ci"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    key: str = created["key"]
    assert key.startswith(f"jsk_{created['id']}_")
    assert (created["tenant"], created["scopes"], created["name"]) == ("acme", ["submit", "read"], "ci")
    secret = key.removeprefix(f"jsk_{created['id']}_")

    listing = await http.get("/v1/admin/keys")
    assert listing.status_code == 200
    [shown] = [k for k in listing.json()["keys"] if k["id"] == created["id"]]
    assert "key" not in shown
    assert {k: v for k, v in created.items() if k not in ("key", "webhook_secret")} == shown
    webhook_secret = created["webhook_secret"]  # acme's first key: its webhook secret, this once
    assert webhook_secret.startswith("whsec_")
    for hidden in (
        webhook_secret,
        secret,
        hashlib.sha256(secret.encode()).hexdigest(),
        hashlib.sha256(key.encode()).hexdigest(),
    ):
        assert hidden not in listing.text

    stored = await all_of_redis(redis)
    assert not [chunk for chunk in stored if secret.encode() in chunk], "the secret is stored in Redis"
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored  # what is kept instead

    works = await http.get("/v1/jobs", headers=auth(key))
    assert works.status_code == 200, works.text


async def test_a_revoked_key_answers_401_at_once(http: httpx.AsyncClient) -> None:
    created = await create_key(http, "acme", ["read"])
    assert (await http.get("/v1/jobs", headers=auth(created["key"]))).status_code == 200

    revoked = await http.delete(f"/v1/admin/keys/{created['id']}")
    assert revoked.status_code == 204, revoked.text

    assert_problem(await http.get("/v1/jobs", headers=auth(created["key"])), 401)
    listing = (await http.get("/v1/admin/keys")).json()["keys"]
    assert created["id"] not in [k["id"] for k in listing]
    assert_problem(await http.delete(f"/v1/admin/keys/{created['id']}"), 404)


async def test_revoking_an_unknown_key_id_answers_404(http: httpx.AsyncClient) -> None:
    problem = assert_problem(await http.delete("/v1/admin/keys/0123456789abcdef"), 404)
    assert "0123456789abcdef" in problem["detail"]
    assert_problem(await http.delete("/v1/admin/keys/not-a-key-id"), 422)


async def test_the_admin_key_cannot_be_revoked_or_listed(http: httpx.AsyncClient) -> None:
    listing = await http.get("/v1/admin/keys")
    assert listing.status_code == 200
    assert ADMIN_KEY not in listing.text
    assert_problem(await http.delete("/v1/admin/keys/admin"), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "Acme", "scopes": ["read"]},
        {"tenant": "-acme", "scopes": ["read"]},
        {"tenant": "ac me", "scopes": ["read"]},
        {"tenant": "acme/x", "scopes": ["read"]},
        {"tenant": "acme:x", "scopes": ["read"]},
        {"tenant": "", "scopes": ["read"]},
        {"tenant": "a" * 64, "scopes": ["read"]},
        {"tenant": "acme", "scopes": ["write"]},
        {"tenant": "acme", "scopes": ["read", "root"]},
        {"tenant": "acme", "scopes": []},
        {"tenant": "acme"},
        {"scopes": ["read"]},
        {"tenant": "acme", "scopes": ["read"], "admin": True},
    ],
)
async def test_a_key_for_a_bad_tenant_name_or_unknown_scope_is_refused_with_422(
    http: httpx.AsyncClient, redis: ArqRedis, body: dict[str, Any]
) -> None:
    problem = assert_problem(await http.post("/v1/admin/keys", json=body), 422)
    assert problem["errors"], problem
    assert (await http.get("/v1/admin/keys")).json()["keys"] == []


@pytest.mark.parametrize("tenant", ["Acme", "-acme", "a" * 64, "acme*"])
async def test_tenant_routes_refuse_bad_tenant_names_with_422(http: httpx.AsyncClient, tenant: str) -> None:
    assert_problem(await http.put(f"/v1/admin/tenants/{tenant}/quotas", json={"max_open_jobs": 1}), 422)
    assert_problem(await http.get(f"/v1/admin/tenants/{tenant}"), 422)
    assert_problem(await http.delete(f"/v1/admin/tenants/{tenant}/jobs"), 422)


async def test_a_key_sees_only_its_tenant_and_its_scopes(http: httpx.AsyncClient) -> None:
    reader = auth((await create_key(http, "acme", ["read"]))["key"])
    submitter = auth((await create_key(http, "acme", ["submit"]))["key"])
    job = await submit_as(http, submitter, "diag.noop", {})
    assert (await http.get(f"/v1/jobs/{job['id']}", headers=reader)).status_code == 200
    assert_problem(await http.get(f"/v1/jobs/{job['id']}", headers=submitter), 403)
    assert_problem(await http.get(f"/v1/jobs/{job['id']}"), 404)  # the admin key is tenant `default`


# -- the CLI ----------------------------------------------------------------------------------------------


async def jobsvc(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_cli_creates_lists_and_revokes_keys(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        await jobsvc(
            "keys", "create", "--tenant", "acme", "--scopes", "submit,read", "--name", "ci", "--url", api_url
        )
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert (created["tenant"], created["scopes"], created["name"]) == ("acme", ["submit", "read"], "ci")
    key = created["key"]

    async with httpx.AsyncClient(base_url=api_url, headers=auth(key)) as acme:
        submitted = await acme.post("/v1/jobs", json=NOOP)
        assert submitted.status_code == 202, submitted.text
        assert_problem(await acme.delete(f"/v1/jobs/{submitted.json()['id']}"), 403)

        assert await jobsvc("--url", api_url, "keys", "list") == 0
        out = capsys.readouterr().out
        listed = json.loads(out)["keys"]
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0]
        assert key.split("_", 2)[2] not in out

        assert await jobsvc("--url", api_url, "keys", "revoke", created["id"]) == 0
        assert capsys.readouterr().out.strip() == f"revoked {created['id']}"
        assert_problem(await acme.get("/v1/jobs"), 401)

    assert await jobsvc("--url", api_url, "keys", "revoke", created["id"]) == 1
    assert "API key not found" in capsys.readouterr().err
    assert await jobsvc("--url", api_url, "keys", "list") == 0
    assert json.loads(capsys.readouterr().out)["keys"] == []


async def test_cli_refuses_unknown_scopes_and_bad_tenants(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await jobsvc("--url", api_url, "keys", "create", "--tenant", "acme", "--scopes", "read,root") == 2
    assert "root" in capsys.readouterr().err

    assert (
        await jobsvc("--url", api_url, "keys", "create", "--tenant", "Not A Tenant", "--scopes", "read") == 1
    )
    assert "/tenant" in capsys.readouterr().err


async def test_cli_without_the_admin_scope_exits_1(
    api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await jobsvc("--url", api_url, "keys", "create", "--tenant", "acme", "--scopes", "read") == 0
    reader = json.loads(capsys.readouterr().out)["key"]
    monkeypatch.setenv("JOBSVC_API_KEY", reader)
    assert await jobsvc("--url", api_url, "keys", "list") == 1
    assert "lacks the `admin` scope" in capsys.readouterr().err
    monkeypatch.setenv("JOBSVC_API_KEY", f"jsk_{uuid.uuid4().hex[:16]}_nope")
    assert await jobsvc("--url", api_url, "keys", "list") == 1
    assert "not valid" in capsys.readouterr().err


async def test_an_address_that_sends_too_many_invalid_keys_is_refused_until_the_minute_ends(
    settings: Settings, redis: ArqRedis
) -> None:
    """Guessing keys is slowed to a few a minute per address; other addresses are not held up."""
    app = create_app(settings.model_copy(update={"auth_failures_per_minute": 3}))
    async with serve(app) as admin:
        valid = (await admin.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["read"]})).json()[
            "key"
        ]

        def client_from(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://jobsvc.test")

        async with client_from("203.0.113.7") as guesser, client_from("198.51.100.2") as bystander:
            for guess in ("jsk_0123456789abcdef_nope", "not-even-a-key", valid[:-2] + "xx"):
                assert_problem(await guesser.get("/v1/jobs", headers=auth(guess)), 401)
            refused = await guesser.get("/v1/jobs", headers=auth(valid))  # even a valid key, for now
            problem = assert_problem(refused, 429)
            assert "invalid API keys" in problem["detail"]
            assert 0 < int(refused.headers["Retry-After"]) <= 60
            assert (await bystander.get("/v1/jobs", headers=auth(valid))).status_code == 200

        counters = [key async for key in redis.scan_iter(match="jobsvc:authfail:*")]
        assert len(counters) == 1
        assert b"203.0.113.7" not in counters[0]  # the address is hashed into the name
        assert 60 < await redis.ttl(counters[0]) <= 120


async def test_valid_keys_count_no_failure(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    created = (await http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["read"]})).json()
    for _ in range(50):
        assert (await http.get("/v1/job-types", headers=auth(created["key"]))).status_code == 200
    assert [key async for key in redis.scan_iter(match="jobsvc:authfail:*")] == []


async def test_another_tenants_key_with_every_tenant_scope_reaches_nothing_of_the_matrix_tenant(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    """Every route, with a key of another tenant holding submit, read, cancel and admin: the matrix
    tenant's jobs, dead letters and keys answer as unknown ones do (404), its settings are refused (403),
    the cluster's routes need an operator (403), and what it may call shows it only its own."""
    ids = await matrix_ids(http, run_jobs)
    theirs = {ids.queued, ids.to_cancel, ids.failed, ids.dead_to_read, ids.dead_to_replay, ids.dead_to_delete}
    intruder = auth((await create_key(http, "intruder", ["submit", "read", "cancel", "admin"]))["key"])
    for route, (scope, sample_of) in ROUTES.items():
        sample = sample_of(ids)
        response = await send(http, sample, intruder)
        names_theirs = any(job_id in sample.path for job_id in theirs) or ids.spare_key in sample.path
        acts_on_theirs = f"/tenants/{TENANT}" in sample.path or (sample.body or {}).get("tenant") == TENANT
        if scope == "operator":
            assert_problem(response, 403, f"{route}")
        elif names_theirs:
            assert_problem(response, 404, f"{route}")
        elif acts_on_theirs:
            assert_problem(response, 403, f"{route}")
        else:
            assert response.status_code < 300, f"{route}: {response.status_code} {response.text}"
            assert not any(job_id in response.text for job_id in theirs), f"{route} showed the other tenant's"
    owner = auth((await create_key(http, TENANT, ["read"]))["key"])
    for job_id in theirs:  # nothing of theirs was changed by the intruder's calls
        job = (await http.get(f"/v1/jobs/{job_id}", headers=owner)).json()
        assert (job["status"], job["replayed_as"]) in (("queued", None), ("failed", None)), job
    assert ids.spare_key in {key["id"] for key in (await http.get("/v1/admin/keys")).json()["keys"]}


async def test_an_operators_key_of_another_tenant_manages_every_tenant_yet_reads_none_of_its_jobs(
    http: httpx.AsyncClient, run_jobs: Any
) -> None:
    """Every route, with an operator's key (minted by the bootstrap key) of another tenant: the cluster's
    routes and every tenant's settings, keys and data answer it; jobs and dead letters stay their
    tenant's, so the matrix tenant's answer as unknown ones do (404)."""
    ids = await matrix_ids(http, run_jobs)
    theirs = {ids.queued, ids.to_cancel, ids.failed, ids.dead_to_read, ids.dead_to_replay, ids.dead_to_delete}
    operator = auth((await create_key(http, "ops", list(SCOPES)))["key"])
    for route, (_, sample_of) in ROUTES.items():
        sample = sample_of(ids)
        response = await send(http, sample, operator)
        if any(job_id in sample.path for job_id in theirs):
            assert_problem(response, 404, f"{route}")
        else:
            assert response.status_code < 300, f"{route}: {response.status_code} {response.text}"
            assert not any(job_id in response.text for job_id in theirs), f"{route} showed the tenant's jobs"
    assert ids.spare_key not in {key["id"] for key in (await http.get("/v1/admin/keys")).json()["keys"]}
