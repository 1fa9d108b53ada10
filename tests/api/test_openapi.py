"""The OpenAPI document is exact enough for generated clients: a variant per job type, chosen by `type`,
that the service accepts as it stands; and what no schema can state is refused as its description says."""

from __future__ import annotations

from typing import Any

import httpx
import hypothesis
import pytest
from arq import ArqRedis
from hypothesis import strategies as st
from pydantic import BaseModel

from jobs.context import Ctx
from jobs.definition import job_type
from jobs.registry import job_types
from service.api.openapi import submit_union
from service.api.submissions import STORABLE_INTS
from tests.helpers import assert_problem

SUBMIT_PATHS = ("/v1/jobs", "/v1/jobs:batch")


def _body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return schema


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def _submit_union(document: dict[str, Any], path: str) -> dict[str, Any]:
    """The union of variants a submit body is: the body itself, or each item of a batch."""
    schema = _body_schema(document, path)
    if path == "/v1/jobs:batch":
        schema = _resolve(document, schema)["properties"]["jobs"]["items"]
    return schema


@pytest.fixture
async def document(http: httpx.AsyncClient) -> dict[str, Any]:
    served: dict[str, Any] = (await http.get("/openapi.json")).json()
    return served


@pytest.mark.parametrize("path", SUBMIT_PATHS)
async def test_the_discriminator_maps_every_submittable_job_type_to_its_variant(
    document: dict[str, Any], path: str
) -> None:
    union = _submit_union(document, path)
    mapping = union["discriminator"]["mapping"]
    assert union["discriminator"]["propertyName"] == "type"
    submittable = {name for name, job_type in job_types(diagnostics=True).items() if not job_type.internal}
    assert set(mapping) == submittable  # internal types (maintenance.*) run on schedules only
    assert [variant["$ref"] for variant in union["oneOf"]] == list(mapping.values())
    for name, ref in mapping.items():
        variant = _resolve(document, {"$ref": ref})
        assert variant["properties"]["type"]["const"] == name
        assert "type" in variant["required"]


def minimal_instance(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The smallest value ``schema`` accepts: required properties only, the first enum value or branch,
    the lower bounds, and for a pattern a string Hypothesis finds for it."""
    schema = _resolve(document, schema)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema or "oneOf" in schema:
        return minimal_instance(document, (schema.get("anyOf") or schema["oneOf"])[0])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: minimal_instance(document, properties[name]) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(document, schema["items"])] * schema.get("minItems", 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10**6)
        if "pattern" not in schema:
            return "a" * low
        return hypothesis.find(
            st.from_regex(schema["pattern"], fullmatch=True),
            lambda text: low <= len(text) <= high,
            # the first string found, unshrunk: shrinking through a pattern's lookaheads takes seconds
            settings=hypothesis.settings(derandomize=True, database=None, phases=[hypothesis.Phase.generate]),
        )
    return None if kind == "null" else False


def submission_from_document(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The variant's example, or else its minimal instance."""
    ref = _submit_union(document, "/v1/jobs")["discriminator"]["mapping"][name]
    variant = _resolve(document, {"$ref": ref})
    if variant.get("examples"):
        example: dict[str, Any] = variant["examples"][0]
        return example
    body: dict[str, Any] = minimal_instance(document, variant)
    return body


async def test_a_job_of_every_type_built_from_the_document_alone_is_accepted(
    http: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    for name in _submit_union(document, "/v1/jobs")["discriminator"]["mapping"]:
        body = submission_from_document(document, name)
        response = await http.post("/v1/jobs", json=body)
        assert response.status_code == 202, (body, response.text)
        assert response.json()["type"] == name


class Nothing(BaseModel):
    """Params and result of a job type defined in a test (module level: annotations are read by name)."""


async def test_a_variant_offers_only_the_queues_its_type_may_run_on() -> None:
    @job_type("test.urgent", queue="critical", queues=("default",))
    async def urgent(ctx: Ctx, params: Nothing) -> Nothing:
        return params

    schemas: dict[str, Any] = {}
    submit_union(schemas, {urgent.name: urgent}, max_params_bytes=1024)
    queue = schemas["Submit_test_urgent"]["properties"]["queue"]
    assert queue["anyOf"][0]["enum"] == ["critical", "default"]
    assert schemas["Submit_test_urgent"]["required"] == ["type"]  # params may be left out


async def test_every_problem_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                where = f"{method.upper()} {path} {status}"
                assert list(response["content"]) == ["application/problem+json"], where
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, where


@pytest.mark.parametrize(
    ("path", "method", "status", "header"),
    [
        ("/v1/jobs", "post", "202", "Location"),
        ("/v1/jobs", "post", "200", "Location"),
        ("/v1/jobs/{job_id}/retry", "post", "202", "Location"),
        ("/v1/dead-letters/{job_id}/replay", "post", "202", "Location"),
        ("/v1/jobs", "post", "429", "Retry-After"),
        ("/v1/jobs", "get", "503", "Retry-After"),
        ("/v1/jobs", "get", "401", "WWW-Authenticate"),
        ("/v1/jobs", "get", "403", "WWW-Authenticate"),
    ],
)
async def test_the_headers_an_answer_carries_are_documented(
    document: dict[str, Any], path: str, method: str, status: str, header: str
) -> None:
    assert document["paths"][path][method]["responses"][status]["headers"][header]["required"] is True


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            {"type": "diag.noop", "backoff": {"base_s": 10, "cap_s": 5}},
            "/backoff",
        ),
        (
            {"type": "webhook.deliver", "params": {"url": "http://a.example", "payload": {"n": 2**64}}},
            "/params/payload/n",
        ),
        (
            {
                "type": "webhook.deliver",
                "params": {"url": "http://a.example", "payload": {"n": [STORABLE_INTS.start - 1]}},
            },
            "/params/payload/n/0",
        ),
    ],
)
async def test_rules_stated_in_words_are_refused_with_422(
    http: httpx.AsyncClient, redis: ArqRedis, body: dict[str, Any], pointer: str
) -> None:
    problem = assert_problem(await http.post("/v1/jobs", json=body), 422)
    assert [error["pointer"] for error in problem["errors"]] == [pointer]
    assert await redis.dbsize() == 0


async def test_the_largest_storable_integers_are_accepted(http: httpx.AsyncClient) -> None:
    payload = {"low": STORABLE_INTS.start, "high": STORABLE_INTS.stop - 1}
    body = {"type": "webhook.deliver", "params": {"url": "http://a.example", "payload": payload}}
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["params"]["payload"] == payload


async def test_any_cursor_the_document_allows_reads_a_page(http: httpx.AsyncClient) -> None:
    for path in ("/v1/jobs", "/v1/dead-letters"):
        response = await http.get(path, params={"cursor": "1700000000000." + "ab" * 3})
        assert response.status_code == 200, response.text
