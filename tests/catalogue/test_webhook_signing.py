"""Each tenant signs its webhook deliveries with its own secret, the Standard Webhooks way, and a receiver
verifies them with the ``standardwebhooks`` reference library: tenant B's secret refuses tenant A's
deliveries, a retry keeps its ``webhook-id``, a rotation signs with both secrets for its grace period,
and Redis holds the secrets sealed. A real HTTP receiver on 127.0.0.1, jobs run by an ARQ worker."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from standardwebhooks import Webhook, WebhookVerificationError

from jobs.engine import keys
from jobs.engine.webhook_secrets import SecretBox, UnreadableSecret
from service.config import Settings
from tests.helpers import assert_problem, client_with_key, key_for
from tests.helpers import read_job as read
from tests.webhook_receiver import HookServer, Received

TENANT_SCOPES = ["submit", "read"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


async def tenant(http: httpx.AsyncClient, app: Any, name: str) -> tuple[httpx.AsyncClient, str]:
    """A client with a new key of tenant ``name``, and the webhook secret its first key's answer shows."""
    created = await key_for(http, name, TENANT_SCOPES)
    return client_with_key(app, created["key"]), created["webhook_secret"]


async def deliver(client: httpx.AsyncClient, hooks: HookServer, run_jobs: Any) -> str:
    body = {"type": "webhook.deliver", "params": {"url": hooks.url, "payload": {"order": 42}}}
    submitted = await client.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    await run_jobs()
    job = await read(client, submitted.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return str(job["id"])


def verifies(secret: str, request: Received) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_a_delivery_verifies_with_its_tenants_secret_and_not_with_another_tenants(
    http: httpx.AsyncClient, app: Any, run_jobs: Any, hook_server: HookServer
) -> None:
    acme, acme_secret = await tenant(http, app, "acme")
    globex, globex_secret = await tenant(http, app, "globex")
    async with acme, globex:
        job_id = await deliver(acme, hook_server, run_jobs)
    [request] = hook_server.requests
    assert request.headers["webhook-id"] == job_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert (verifies(acme_secret, request), verifies(globex_secret, request)) == (True, False)
    assert acme_secret.startswith("whsec_")
    assert acme_secret != globex_secret
    assert "x-signature-256" not in request.headers  # no signature with a secret every receiver shares


async def test_a_retried_delivery_keeps_its_webhook_id_and_is_signed_anew(
    http: httpx.AsyncClient, app: Any, run_jobs: Any, hook_server: HookServer
) -> None:
    hook_server.statuses = [503]
    acme, secret = await tenant(http, app, "acme")
    async with acme:
        body = {"type": "webhook.deliver", "params": {"url": hook_server.url, "payload": {"n": 1}}}
        job_id = (await acme.post("/v1/jobs", json=body)).json()["id"]
        await run_jobs()  # the burst worker waits out the retry's backoff
        job = await read(acme, job_id)
        assert (job["status"], job["attempts"]) == ("succeeded", 2)
    first, second = hook_server.requests[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == job_id
    assert (verifies(secret, first), verifies(secret, second)) == (True, True)


async def test_during_a_rotations_grace_period_both_secrets_sign_and_after_it_only_the_new(
    http: httpx.AsyncClient, app: Any, run_jobs: Any, hook_server: HookServer, redis: ArqRedis
) -> None:
    acme, old = await tenant(http, app, "acme")
    async with acme:
        rotated = await http.post("/v1/admin/tenants/acme/webhook-secrets", json={"grace_s": 3600})
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_")
        assert new != old
        assert rotated.json()["previous_valid_until"] is not None
        await deliver(acme, hook_server, run_jobs)
        during = hook_server.requests[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert (verifies(old, during), verifies(new, during)) == (True, True)

        # the grace period ends: only the new secret signs
        await redis.hset(keys.tenant_webhook_secrets("acme"), "previous_until_ms", "1")  # type: ignore[misc]
        await deliver(acme, hook_server, run_jobs)
        after = hook_server.requests[-1]
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert (verifies(new, after), verifies(old, after)) == (True, False)


async def test_a_rotation_with_no_grace_stops_the_old_secret_at_once(
    http: httpx.AsyncClient, app: Any, run_jobs: Any, hook_server: HookServer
) -> None:
    acme, old = await tenant(http, app, "acme")
    async with acme:
        rotated = await http.post("/v1/admin/tenants/acme/webhook-secrets", json={"grace_s": 0})
        await deliver(acme, hook_server, run_jobs)
    [request] = hook_server.requests
    assert (verifies(rotated.json()["secret"], request), verifies(old, request)) == (True, False)


async def test_secrets_are_kept_sealed_and_shown_only_when_made(
    http: httpx.AsyncClient, app: Any, redis: ArqRedis, settings: Settings
) -> None:
    acme, secret = await tenant(http, app, "acme")
    await acme.aclose()
    second = await http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": TENANT_SCOPES})
    assert second.json()["webhook_secret"] is None  # the tenant has one already: never shown again
    stored = await redis.hgetall(keys.tenant_webhook_secrets("acme"))  # type: ignore[misc]
    assert not any(b"whsec_" in value or secret.encode() in value for value in stored.values())
    assert SecretBox(settings.webhook_secrets_key).open(stored[b"current"]) == secret
    with pytest.raises(UnreadableSecret):
        SecretBox(b"another service secret of 32 characters").open(stored[b"current"])
    listed = await http.get("/v1/admin/tenants")
    assert secret not in listed.text


async def test_only_an_admin_rotates_a_secret_and_a_bad_grace_changes_nothing(
    http: httpx.AsyncClient, app: Any, redis: ArqRedis
) -> None:
    acme, _ = await tenant(http, app, "acme")
    async with acme:
        assert_problem(await acme.post("/v1/admin/tenants/acme/webhook-secrets", json={}), 403)
    before = await redis.hgetall(keys.tenant_webhook_secrets("acme"))  # type: ignore[misc]
    for bad in ({"grace_s": -1}, {"grace_s": 10**9}, {"grace": 5}):
        assert_problem(await http.post("/v1/admin/tenants/acme/webhook-secrets", json=bad), 422)
    assert_problem(await http.post("/v1/admin/tenants/-bad-/webhook-secrets", json={}), 422)
    assert await redis.hgetall(keys.tenant_webhook_secrets("acme")) == before  # type: ignore[misc]
