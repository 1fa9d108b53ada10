"""``webhook.deliver``: POST a signed JSON payload to a URL, retrying while the receiver is unwell.

Signed the Standard Webhooks way with the submitting tenant's own secret (jobs.webhook_signatures):
``webhook-id`` (the job id, the same on every attempt: the receiver drops repeats by it, as by
``Idempotency-Key``), ``webhook-timestamp`` (this attempt's, so a receiver refuses an old delivery
replayed) and ``webhook-signature``. A receiver verifies with any Standard Webhooks library and its
tenant's secret; another tenant's secret does not verify.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, UrlConstraints

from jobs.catalogue.patterns import DNS_LABEL, TOP_LABEL, none_of
from jobs.catalogue.spans import client_span
from jobs.context import Ctx
from jobs.definition import RetryPolicy, job_type
from jobs.errors import PermanentJobError, RetryableJobError
from jobs.limits import Limit
from jobs.outbound import registrable_domain
from jobs.webhook_signatures import signature_header

WEBHOOK_JOB_TIMEOUT_S = 30.0
MAX_EXTRA_HEADERS = 20
#: the receiver's answer is read up to this many bytes and then dropped
MAX_RESPONSE_BYTES = 1_048_576
USER_AGENT = "jobsvc-webhook/1"
#: headers jobsvc sets itself or that would break the request's framing (lower case)
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        # no longer set (deliveries were signed with one key for every tenant): still reserved, so that a
        # receiver that checks it is never handed one of a tenant's choosing
        "x-signature-256",
        "idempotency-key",
        "x-jobsvc-attempt",
    }
)
_TOKEN_CHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"  # RFC 9110 tchar
_TOKEN = re.compile(rf"^{_TOKEN_CHAR}+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00\r\n]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
#: the http(s) URLs HttpUrl accepts, in plain ASCII: a host name or an IPv4 address, a port, the rest
URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:(?:{DNS_LABEL}\.)*{TOP_LABEL}|(?:{_OCTET}\.){{3}}{_OCTET})"
    rf"(?::{_PORT})?(?:[/?#][\x21-\x7e]*)?$"
)


def _check_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    seen: set[str] = set()
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by jobsvc and cannot be overridden")
        if name.lower() in seen:
            raise ValueError(f"header {name!r} is given twice")
        seen.add(name.lower())
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"header {name!r} has CR, LF or NUL in its value")
    return headers


HeaderValue = Annotated[str, Field(max_length=8192, json_schema_extra={"pattern": r"^[^\x00\r\n]*$"})]
#: in the schema, what ``_check_headers`` accepts but for one header given twice in two cases
ExtraHeaders = Annotated[
    dict[str, HeaderValue],
    Field(
        max_length=MAX_EXTRA_HEADERS,
        json_schema_extra={"propertyNames": {"pattern": rf"^{none_of(RESERVED_HEADERS)}{_TOKEN_CHAR}+$"}},
    ),
]


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[HttpUrl, UrlConstraints(max_length=2048)] = Field(
        description="http(s) URL to POST to.", json_schema_extra={"pattern": URL_PATTERN}
    )
    payload: dict[str, Any] = Field(description="The JSON object to send.")
    headers: Annotated[ExtraHeaders | None, AfterValidator(_check_headers)] = Field(
        None,
        description="Extra request headers; the ones jobsvc sets cannot be overridden, and none may be given "
        "twice (in two cases).",
    )


class WebhookResult(BaseModel):
    status_code: int
    elapsed_ms: int = Field(description="From sending the request to the end of the response.")
    response_bytes: int = Field(description=f"Bytes of response body read (at most {MAX_RESPONSE_BYTES}).")


def _span_attributes(url: HttpUrl) -> dict[str, str | int]:
    """The HTTP client span's attributes; not the URL's path or query, which often carry a token."""
    return {
        "http.request.method": "POST",
        "url.scheme": url.scheme,
        "server.address": url.host or "",
        "server.port": url.port or (443 if url.scheme == "https" else 80),
    }


def _is_retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


@job_type(
    "webhook.deliver",
    description="POSTs a JSON payload to a URL, signed the Standard Webhooks way with the tenant's own "
    "secret; retries on 5xx, 429 and timeouts.",
    timeout_s=WEBHOOK_JOB_TIMEOUT_S,
    max_attempts=8,
    retry=RetryPolicy(base_s=2.0, cap_s=600.0),
    # at most 20 deliveries per second to any one registrable domain (sub-domains share it), across all
    # workers
    limit=Limit(rate=20, per_s=1.0, key=lambda params: registrable_domain(params.url.host or "")),
)
async def deliver_webhook(ctx: Ctx, params: WebhookParams) -> WebhookResult:
    config = ctx["config"]
    url = str(params.url)
    host = params.url.host
    body = json.dumps(params.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    signing = await ctx["webhook_secrets"].signing(ctx["tenant"])
    headers = {
        **(params.headers or {}),
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "webhook-id": ctx["job_id"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing, ctx["job_id"], timestamp, body),
        "Idempotency-Key": ctx["job_id"],
        "X-Jobsvc-Attempt": str(ctx["job_try"]),
    }
    # one budget for resolving, connecting, sending and reading, ending before the job's own timeout
    budget_s = min(config.webhook.timeout_s, WEBHOOK_JOB_TIMEOUT_S - 5)
    try:
        async with asyncio.timeout(budget_s):
            started = time.perf_counter()
            with client_span("POST", _span_attributes(params.url)) as span:
                span.inject(headers)
                request = ctx["http"].stream(
                    "POST", url, content=body, headers=headers, timeout=budget_s, follow_redirects=False
                )
                async with request as response:
                    span.http_status(response.status_code)
                    received = 0
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if received >= MAX_RESPONSE_BYTES:
                            received = MAX_RESPONSE_BYTES
                            break
    except TimeoutError:
        raise RetryableJobError(f"{host} did not answer within {budget_s:g}s") from None
    except httpx.TimeoutException as exc:
        raise RetryableJobError(f"{host} did not answer in time ({type(exc).__name__})") from None
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise PermanentJobError(f"cannot send to {host}: {exc}") from None
    except httpx.TransportError as exc:
        raise RetryableJobError(f"{host}: {type(exc).__name__}: {exc}") from None
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    status = response.status_code
    if 200 <= status < 300:
        return WebhookResult(status_code=status, elapsed_ms=elapsed_ms, response_bytes=received)
    if _is_retryable_status(status):
        raise RetryableJobError(f"{host} answered {status} {response.reason_phrase}")
    note = " (redirects are not followed)" if 300 <= status < 400 else ""
    raise PermanentJobError(f"{host} answered {status} {response.reason_phrase}{note}")
