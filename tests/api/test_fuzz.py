"""Fuzz every operation of the API with schemathesis, generated from the app's own OpenAPI document.

In-process over ASGI, through the real lifespan, against the real test server: no 5xx, and every response
is one the document declares (status code, content type, body schema, headers), for valid requests and for
invalid ones; and no valid request is refused, but for the refusals that depend on state
(``bench.fuzz.STATE_REFUSALS``). A short, derandomized run for CI; ``bench/fuzz.py`` is the long one
(docs/SECURITY.md).

schemathesis calls the app synchronously: its ASGI client runs the app, lifespan included, on an event loop
in a thread of its own, so the Redis pool the lifespan opens lives there and the tests are plain functions.
Its fixture-based pytest integration (``from_fixture(...).parametrize()``) fails under pytest 9.2 (it sets
``node._nodeid``), so each operation is a parametrized test here that drives Hypothesis itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from arq import ArqRedis
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import positive_data_acceptance

# the long run's checks and what they let through, so both runs judge alike
from bench.fuzz import (
    CHECKS,
    ENDLESS_STREAMS,
    NOT_READY_503,
    accept_valid_requests,
    follow_rules_in_words,
    refused_for_state,
)
from service.api.app import create_app
from service.config import Settings


@dataclass(frozen=True)
class KnownFailure:
    """A failure found by fuzzing and reported, not yet fixed: this check is skipped for responses with
    this status, and the test is marked xfail when one was seen (every other check still runs)."""

    check: CheckFunction
    status: int
    reason: str


#: "METHOD /path" -> a failure found by fuzzing and not yet fixed; none at the moment
KNOWN_FAILURES: dict[str, KnownFailure] = {}
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
#: examples per operation and mode: ~25 operations, about 45 tests, about 30 s in all
CI_EXAMPLES = 15
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def documented_cases() -> list[Any]:
    """One pytest param per operation and mode in the document create_app serves (building it does no I/O).

    Negative mode only where there is something to make invalid: a parameter or a request body.
    """
    document = create_app(Settings(diagnostics=True)).openapi()
    cases = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS or f"{method.upper()} {path}" in ENDLESS_STREAMS:
                continue
            has_inputs = bool(operation.get("parameters") or operation.get("requestBody"))
            for mode in MODES if has_inputs else MODES[:1]:
                cases.append(
                    pytest.param(method.upper(), path, mode, id=f"{mode.value} {method.upper()} {path}")
                )
    return cases


def auth_headers(settings: Settings) -> dict[str, str]:
    """What every request carries once /v1 requires an API key: the bootstrap admin key, when set."""
    if settings.admin_api_key is None:
        return {}
    return {"Authorization": f"Bearer {settings.admin_api_key.get_secret_value()}"}


@pytest.fixture
def api_schema(settings: Settings, redis: ArqRedis) -> Iterator[schemathesis.BaseSchema]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    try:
        yield schema
    finally:
        shutdown_lifespans()  # closes the app's pool, on the loop it was opened on


@pytest.mark.parametrize(("method", "path", "mode"), documented_cases())
def test_operation_conforms_to_the_openapi_document(
    api_schema: schemathesis.BaseSchema,
    settings: Settings,
    method: str,
    path: str,
    mode: schemathesis.GenerationMode,
) -> None:
    headers = auth_headers(settings)
    label = f"{method} {path}"
    known = KNOWN_FAILURES.get(label)
    known_seen: list[str] = []
    accept_valid_requests(api_schema, label)

    @hypothesis.given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=CI_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def fuzz(case: schemathesis.Case[Any]) -> None:
        if mode is schemathesis.GenerationMode.POSITIVE:
            follow_rules_in_words(case)
        response = case.call(headers=headers)
        checks = list(CHECKS)
        if label in NOT_READY_503:
            checks.remove(not_a_server_error)
            assert response.status_code < 500 or response.json()["type"] == "/problems/not-ready"
        if refused_for_state(response):
            checks.remove(positive_data_acceptance)
        if known is not None and response.status_code == known.status:
            checks.remove(known.check)
            known_seen.append(case.as_curl_command(headers=headers))
        case.validate_response(response, checks=checks, headers=headers)

    fuzz()
    if known is not None and known_seen:
        pytest.xfail(f"{known.reason} (e.g. {known_seen[0]})")
