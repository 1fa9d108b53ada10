"""An ``admin`` key manages its own tenant only; an ``operator`` key (which only the bootstrap admin key
mints) manages every tenant and the cluster and reads the audit log, where every admin action lands."""

from __future__ import annotations

from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from tests.helpers import assert_problem, client_with_key, key_for

NOOP = {"type": "diag.noop", "params": {}}


async def admin_of(http: httpx.AsyncClient, app: Any, tenant: str) -> httpx.AsyncClient:
    return client_with_key(app, (await key_for(http, tenant, ["admin", "submit", "read"]))["key"])


async def test_an_admin_manages_its_own_tenant_and_nothing_of_another(
    http: httpx.AsyncClient, app: Any, redis: ArqRedis
) -> None:
    globex_key = await key_for(http, "globex", ["read"])
    await client_with_key(app, globex_key["key"]).aclose()
    async with await admin_of(http, app, "acme") as acme, client_with_key(app, globex_key["key"]) as globex:
        await globex.get("/v1/jobs")  # globex exists and works
        before = await redis.dbsize()
        for refused in (
            await acme.post("/v1/admin/keys", json={"tenant": "globex", "scopes": ["read", "submit"]}),
            await acme.put("/v1/admin/tenants/globex/quotas", json={"max_open_jobs": 1}),
            await acme.post("/v1/admin/tenants/globex/webhook-secrets", json={}),
            await acme.delete("/v1/admin/tenants/globex/jobs"),
        ):
            problem = assert_problem(refused, 403)
            assert "own tenant (acme) only" in problem["detail"]
        assert_problem(await acme.delete(f"/v1/admin/keys/{globex_key['id']}"), 404)  # as if unknown
        assert await redis.dbsize() == before
        assert (await globex.get("/v1/jobs")).status_code == 200  # its key still works

        listed = (await acme.get("/v1/admin/keys")).json()["keys"]
        assert {key["tenant"] for key in listed} == {"acme"}
        tenants = (await acme.get("/v1/admin/tenants")).json()["tenants"]
        assert {tenant["tenant"] for tenant in tenants} <= {"acme"}

        # its own tenant: keys, secret, jobs, and quotas no higher than the defaults
        assert (
            await acme.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["read"]})
        ).status_code == 201
        assert (await acme.post("/v1/admin/tenants/acme/webhook-secrets", json={})).status_code == 201
        lowered = {"max_open_jobs": 10, "submits_per_s": 5}
        assert (await acme.put("/v1/admin/tenants/acme/quotas", json=lowered)).status_code == 200
        for raising in ({"max_open_jobs": 11, "submits_per_s": 5}, {"max_open_jobs": 10}, {}):
            refused = await acme.put("/v1/admin/tenants/acme/quotas", json=raising)  # {}: the defaults
            assert "Only an operator" in assert_problem(refused, 403)["detail"], raising
        [shown] = (await acme.get("/v1/admin/tenants")).json()["tenants"]
        assert (shown["max_open_jobs"], shown["submits_per_s"]) == (10, 5)
        assert (await acme.delete("/v1/admin/tenants/acme/jobs")).status_code == 200


async def test_the_cluster_and_operator_keys_are_an_operators_and_only_the_bootstrap_admin_mints_them(
    http: httpx.AsyncClient, app: Any
) -> None:
    async with await admin_of(http, app, "default") as admin:
        for path in ("/v1/queues", "/v1/workers", "/v1/schedules", "/v1/admin/audit"):
            assert "`operator`" in assert_problem(await admin.get(path), 403)["detail"], path
        assert_problem(await admin.post("/v1/queues/bulk:pause"), 403)
        minted = await admin.post("/v1/admin/keys", json={"tenant": "default", "scopes": ["operator"]})
        assert "bootstrap admin" in assert_problem(minted, 403)["detail"]

    operator_key = await key_for(http, "ops", ["operator", "admin"])  # the bootstrap admin may
    async with client_with_key(app, operator_key["key"]) as operator:
        assert (await operator.get("/v1/queues")).status_code == 200
        assert (
            await operator.put("/v1/admin/tenants/acme/quotas", json={"max_open_jobs": 10**6})
        ).status_code == 200
        again = await operator.post("/v1/admin/keys", json={"tenant": "ops", "scopes": ["operator"]})
        assert_problem(again, 403)  # an operator does not mint operators either
        assert {"ops", "default"} <= {
            key["tenant"] for key in (await operator.get("/v1/admin/keys")).json()["keys"]
        }


async def test_every_admin_action_is_in_the_audit_log_for_operators(
    http: httpx.AsyncClient, app: Any, redis: ArqRedis
) -> None:
    async with await admin_of(http, app, "acme") as acme:
        minted = (await acme.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["read"]})).json()
        await acme.delete(f"/v1/admin/keys/{minted['id']}")
        await acme.put("/v1/admin/tenants/acme/quotas", json={"submits_per_s": 5})
        await acme.post("/v1/admin/tenants/acme/webhook-secrets", json={"grace_s": 60})
        await acme.delete("/v1/admin/tenants/acme/jobs")
        assert_problem(await acme.delete("/v1/admin/tenants/globex/jobs"), 403)  # refused: not an action
    await http.post("/v1/queues/bulk:pause")
    await http.post("/v1/queues/bulk:resume")

    entries = (await http.get("/v1/admin/audit", params={"limit": 50})).json()["entries"]
    actions = [(entry["action"], entry["tenant"], entry["target"]) for entry in entries]
    assert actions[:8] == [
        ("queue.resume", "default", "bulk"),
        ("queue.pause", "default", "bulk"),
        ("tenant.jobs.delete", "acme", "acme"),
        ("tenant.webhook_secret.rotate", "acme", "acme"),
        ("tenant.quotas", "acme", "acme"),
        ("key.revoke", "acme", "acme"),
        ("key.create", "acme", "acme"),
        ("key.create", "default", "acme"),  # the bootstrap admin minted acme's admin key
    ]
    assert entries[6]["details"]["key_id"] == minted["id"]
    assert minted["key"] not in str(await redis.xrange(keys.AUDIT_LOG))  # names keys, never their secrets
    assert entries[0]["at"] >= entries[-1]["at"]
