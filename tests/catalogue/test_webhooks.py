"""webhook.deliver against a real HTTP server on 127.0.0.1, submitted through the API and run by ARQ."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from jobs.catalogue.webhooks import WebhookParams, deliver_webhook
from jobs.engine import keys
from jobs.engine.connection import RedisTarget
from jobs.errors import PermanentJobError
from jobs.limits import partition_of
from jobs.outbound import IPAddress, OutboundGuard, registrable_domain
from service.config import Settings
from tests.helpers import free_port, make_due
from tests.helpers import read_job as read
from tests.helpers import submit as submit_job
from tests.webhook_receiver import HANG, HookServer


@pytest.fixture
def settings_update() -> dict[str, Any]:
    """Overridden by tests that need other webhook settings."""
    return {}


@pytest.fixture
def settings(settings: Settings, settings_update: dict[str, Any]) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True, **settings_update})


async def submit(http: httpx.AsyncClient, params: dict[str, Any], **extra: Any) -> str:
    return str((await submit_job(http, "webhook.deliver", params, **extra))["id"])


async def test_delivery_posts_the_exact_signed_body_and_succeeds(
    http: httpx.AsyncClient, run_jobs: Any, hook_server: HookServer, settings: Settings
) -> None:
    payload = {
        "order": 42,
        "items": [{"sku": "A-1", "qty": 2}],
        "note": "café ☕",
        "paid": True,
        "coupon": None,
    }
    job_id = await submit(http, {"url": hook_server.url, "payload": payload, "headers": {"X-Tenant": "acme"}})

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    assert job["result"]["status_code"] == 200
    assert job["result"]["response_bytes"] == len(hook_server.reply)
    assert job["result"]["elapsed_ms"] >= 0
    [request] = hook_server.requests
    assert (request.method, request.path) == ("POST", "/hooks/orders")
    assert request.body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(request.body) == payload
    # signed the Standard Webhooks way (tests/catalogue/test_webhook_signing.py verifies the signature)
    assert request.headers["webhook-id"] == job_id
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["idempotency-key"] == job_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "jobsvc-webhook/1"
    assert request.headers["x-jobsvc-attempt"] == "1"
    assert request.headers["x-tenant"] == "acme"


@pytest.mark.parametrize("status", [404, 410, 302])
async def test_client_error_or_redirect_fails_after_one_attempt(
    http: httpx.AsyncClient, run_jobs: Any, hook_server: HookServer, status: int
) -> None:
    hook_server.statuses.append(status)
    job_id = await submit(http, {"url": hook_server.url, "payload": {}})

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"]["type"] == "PermanentJobError"
    assert str(status) in job["error"]["message"]
    assert len(hook_server.requests) == 1


@pytest.mark.parametrize("status", [503, 429])
async def test_server_error_is_retried_and_succeeds_on_the_second_attempt(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    hook_server: HookServer,
    status: int,
    longest_backoff: None,
) -> None:
    hook_server.statuses.append(status)
    job_id = await submit(http, {"url": hook_server.url, "payload": {"event": "paid"}})

    await run_jobs(max_burst_jobs=1)
    waiting = await read(http, job_id)
    assert waiting["status"] == "deferred"
    assert waiting["attempts"] == 1
    assert waiting["error"]["type"] == "RetryableJobError"
    assert str(status) in waiting["error"]["message"]

    await make_due(redis, job_id)
    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2
    assert job["result"]["status_code"] == 200
    first, second = hook_server.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == job_id
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == job_id
    assert (first.headers["x-jobsvc-attempt"], second.headers["x-jobsvc-attempt"]) == ("1", "2")


async def test_unreachable_receiver_is_retryable(http: httpx.AsyncClient, run_jobs: Any) -> None:
    job_id = await submit(
        http, {"url": f"http://127.0.0.1:{free_port()}/hook", "payload": {}}, max_attempts=1
    )

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "RetryableJobError"
    assert "ConnectError" in job["error"]["message"]


@pytest.mark.parametrize("settings_update", [{"webhook_timeout_s": 0.2}])
async def test_receiver_that_never_answers_times_out_as_retryable(
    http: httpx.AsyncClient, run_jobs: Any, hook_server: HookServer
) -> None:
    hook_server.statuses.append(HANG)
    job_id = await submit(http, {"url": hook_server.url, "payload": {}}, max_attempts=1)

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "RetryableJobError"
    assert "did not answer" in job["error"]["message"]


@pytest.mark.parametrize("settings_update", [{"webhook_allow_private": False}])
async def test_loopback_url_is_refused_when_private_addresses_are_not_allowed(
    http: httpx.AsyncClient, run_jobs: Any, hook_server: HookServer
) -> None:
    job_id = await submit(http, {"url": hook_server.url, "payload": {}})

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"]["type"] == "PermanentJobError"
    assert "non-public address" in job["error"]["message"]
    assert hook_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://192.168.1.10:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://localhost/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
    ],
)
async def test_the_guard_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(PermanentJobError):
        await OutboundGuard(allow_private=False).check_url(url)


async def test_a_refusal_names_the_host_never_the_addresses_it_resolves_to() -> None:
    async def intranet(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.20.30.40")]

    with pytest.raises(PermanentJobError) as refused:
        await OutboundGuard(allow_private=False, resolver=intranet).check_url("https://wiki.corp.example/")
    assert "wiki.corp.example" in str(refused.value)
    assert "10.20.30.40" not in str(refused.value)
    assert "93.184.215.14" not in str(refused.value)


async def test_the_guard_allows_loopback_only_when_asked() -> None:
    await OutboundGuard(allow_private=True).check_url("http://127.0.0.1:8080/hook")
    await OutboundGuard(allow_private=True).check_url("https://localhost/hook")
    with pytest.raises(PermanentJobError):
        await OutboundGuard(allow_private=True).check_url("ftp://127.0.0.1/")


@pytest.mark.parametrize(
    "params",
    [
        {"url": "not a url", "payload": {}},
        {"url": "ftp://example.com/hook", "payload": {}},
        {"url": "https://example.com/" + "x" * 2048, "payload": {}},
        {"url": "https://example.com/hook", "payload": [1, 2]},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"Content-Type": "text/plain"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"x-signature-256": "sha256=00"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"Webhook-Signature": "v1,AAAA"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"webhook-id": "msg_1"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"Idempotency-Key": "k"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"Host": "internal"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"Bad Header": "v"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {"X-A": "v\r\nX-B: w"}},
        {"url": "https://example.com/hook", "payload": {}, "headers": {f"X-{i}": "v" for i in range(21)}},
        {"url": "https://example.com/hook", "payload": {}, "method": "PUT"},
    ],
    ids=[
        "not-a-url",
        "ftp",
        "url-too-long",
        "payload-not-object",
        "content-type",
        "old-signature",
        "webhook-signature",
        "webhook-id",
        "idempotency-key",
        "host",
        "bad-header-name",
        "crlf-in-value",
        "21-headers",
        "extra-field",
    ],
)
async def test_invalid_params_are_refused_and_nothing_is_enqueued(
    http: httpx.AsyncClient, redis: ArqRedis, params: dict[str, Any]
) -> None:
    response = await http.post("/v1/jobs", json={"type": "webhook.deliver", "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"].startswith("/params")
    assert await redis.zcard(keys.arq_queue("default")) == 0


async def test_a_webhook_never_reaches_the_services_own_redis_even_with_private_addresses_allowed(
    http: httpx.AsyncClient, run_jobs: Any, hook_server: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook server stands in for Redis: the worker is told Redis listens on its port."""
    port = int(hook_server.url.rsplit(":", 1)[1].split("/")[0])
    monkeypatch.setattr(RedisTarget, "endpoints", property(lambda target: (("localhost", port),)))
    job_id = await submit(http, {"url": hook_server.url, "payload": {"SET": "x"}})

    await run_jobs()

    job = await read(http, job_id)
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert "own Redis" in job["error"]["message"]
    assert hook_server.requests == []


async def test_the_redis_guard_knows_every_name_of_the_endpoint_and_only_its_port() -> None:
    never = (("127.0.0.1", 6390),)
    for url in ("http://localhost:6390/", "http://127.0.0.1:6390/x", "http://[::1]:6390/"):
        with pytest.raises(PermanentJobError, match="own Redis"):
            await OutboundGuard(allow_private=True, never=never).check_url(url)
    await OutboundGuard(allow_private=True, never=never).check_url("http://127.0.0.1:6391/")
    assert RedisTarget("redis://user:pw@cache.internal:6380/0").endpoints == (("cache.internal", 6380),)
    assert RedisTarget("rediss://cache.internal/0").endpoints == (("cache.internal", 6379),)
    assert RedisTarget("unix:///run/redis.sock").endpoints == ()
    # behind Sentinels: the Sentinels (the servers they name are added when a worker starts)
    sentinels = (("sentinel-0", 26379), ("sentinel-1", 26380))
    assert RedisTarget("redis://:pw@ignored/0", sentinels=sentinels).endpoints == sentinels


def test_sub_domains_share_their_registrable_domains_rate_limit() -> None:
    """A tenant cannot dodge the per-host limit with a.example.com, b.example.com, …; separate owners
    under a shared suffix (the Public Suffix List's private section) keep separate buckets."""
    limit = deliver_webhook.limit
    assert limit is not None

    def partition(url: str) -> str:
        return partition_of(limit, WebhookParams.model_validate({"url": url, "payload": {}}))

    assert partition("https://a.hooks.example.com/x") == partition("https://b.example.com/y")
    assert partition("https://eu.shop.example.co.uk/") == partition("https://example.co.uk/")
    assert partition("https://example.com/") != partition("https://example.org/")
    assert partition("https://alice.github.io/") != partition("https://bob.github.io/")
    assert partition("http://203.0.113.7/") != partition("http://203.0.113.8/")
    assert registrable_domain("Hooks.Example.COM.") == "example.com"
    assert registrable_domain("[2001:db8::1]") == "2001:db8::1"
    assert registrable_domain("localhost") == "localhost"
