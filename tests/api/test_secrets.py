"""Secrets never leak: not into logs, error answers, the catalogue, the OpenAPI document or job records.

One full run with every secret configured (an SMTP password, the webhook secret, the admin key, a tenant's
API key, a Redis user's password) sends mail, delivers webhooks (one failing for good), gets refused
for bad keys and bad input, and then searches everything it can read for each secret.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from arq import ArqRedis
from pydantic import SecretStr

from service.api.app import create_app
from service.config import Settings
from tests.catalogue.test_email import PASSWORD, USER, smtp_server  # noqa: F401 - the fixture
from tests.conftest import ADMIN_KEY, auth, make_worker
from tests.helpers import serve
from tests.webhook_receiver import HookServer

WEBHOOK_SECRET = "whsec-" + secrets.token_urlsafe(32)
REDIS_USER = "jobsvc-secrets-test"
REDIS_PASSWORD = "redis-" + secrets.token_urlsafe(24)


def with_credentials(url: str) -> str:
    """``url`` with the test's Redis user and password in it."""
    parts = urlsplit(url)
    netloc = f"{REDIS_USER}:{REDIS_PASSWORD}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
async def redis_user(redis: ArqRedis) -> AsyncIterator[None]:
    """A Redis ACL user with a password, for the service to log in as (removed afterwards)."""
    await redis.execute_command("ACL", "SETUSER", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all")
    try:
        yield
    finally:
        await redis.execute_command("ACL", "DELUSER", REDIS_USER)


async def dump(redis: ArqRedis) -> str:
    """Every key and value of the database, as text."""
    parts: list[str] = []
    async for key in redis.scan_iter(count=500):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        else:
            value = kind
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


async def test_no_secret_reaches_logs_answers_or_records(
    settings: Settings,
    redis: ArqRedis,
    redis_user: None,
    smtp_server: Any,  # noqa: F811
    hook_server: HookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    configured = settings.model_copy(
        update={
            "redis_url": with_credentials(settings.effective_redis_url),
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "smtp_user": USER,
            "smtp_password": SecretStr(PASSWORD),
            "webhook_secret": SecretStr(WEBHOOK_SECRET),
            "webhook_allow_private": True,
        }
    )
    logging.getLogger("jobsvc.test").info("settings in use: %s / %r", configured, configured)
    answers: list[str] = []

    async with serve(create_app(configured)) as admin:
        created = await admin.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["submit", "read"]})
        assert created.status_code == 201
        tenant_key = created.json()["key"]
        tenant_webhook_secret = created.json()["webhook_secret"]
        http = httpx.AsyncClient(
            transport=admin._transport, base_url=str(admin.base_url), headers=auth(tenant_key)
        )
        async with http:
            mail = await http.post(
                "/v1/jobs",
                json={
                    "type": "email.send",
                    "params": {"to": ["bob@example.com"], "subject": "Hi", "body": "x"},
                },
            )
            hook_server.statuses = [200, 404]
            hooks = [
                await http.post(
                    "/v1/jobs",
                    json={"type": "webhook.deliver", "params": {"url": hook_server.url, "payload": {}}},
                )
                for _ in range(2)
            ]
            assert {r.status_code for r in [mail, *hooks]} == {202}
            worker = make_worker(configured, burst=True, poll_delay=0)
            try:
                await worker.main()
            finally:
                await worker.close()
            for response in [mail, *hooks]:
                done = await http.get(f"/v1/jobs/{response.json()['id']}")
                answers.append(done.text)
            answers += [
                (await http.get("/v1/job-types")).text,
                (await http.get("/openapi.json")).text,
                (await http.get("/v1/dead-letters")).text,
                (await http.get("/v1/jobs")).text,
                (await http.post("/v1/jobs", json={"type": "email.send", "params": {}})).text,
                (await http.get("/v1/admin/keys")).text,  # 403: this key is no admin
            ]
        for bad in (tenant_key[:-3] + "xyz", ADMIN_KEY + "x", "jsk_0123456789abcdef_nope"):
            answers.append((await admin.get("/v1/jobs", headers=auth(bad))).text)
        answers.append((await admin.get("/v1/admin/keys")).text)

    assert len(smtp_server.received) == 1
    assert smtp_server.logins  # the password was used
    assert hook_server.requests[0].headers["webhook-signature"].startswith("v1,")
    everything = "\n".join([caplog.text, *answers, await dump(redis)])
    assert len(caplog.records) > 20  # the run did log
    tenant_secret = tenant_key.split("_", 2)[2]  # the secret itself may hold "_"
    for name, secret in [
        ("SMTP password", PASSWORD),
        ("webhook secret", WEBHOOK_SECRET),
        ("tenant's webhook signing secret", tenant_webhook_secret),
        ("tenant's webhook signing secret's key", tenant_webhook_secret.removeprefix("whsec_")),
        ("admin key", ADMIN_KEY),
        ("tenant key", tenant_key),
        ("tenant key's secret", tenant_secret),
        ("Redis password", REDIS_PASSWORD),
    ]:
        assert secret not in everything, f"the {name} leaked"
