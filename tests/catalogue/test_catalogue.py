"""The job type catalogue and the OpenAPI document describe every type's params and result."""

from __future__ import annotations

import httpx
from arq import ArqRedis

from jobs.registry import job_types
from service.api.app import create_app
from service.config import JobLimitOverride, Settings
from tests.helpers import serve


async def test_job_types_lists_every_registered_type_but_the_internal_ones_with_its_schemas(
    http: httpx.AsyncClient,
) -> None:
    body = (await http.get("/v1/job-types")).json()
    listed = {jt["name"]: jt for jt in body["job_types"]}
    registered = job_types(diagnostics=True)
    assert set(listed) == {name for name, job_type in registered.items() if not job_type.internal}
    assert "maintenance.cleanup" in registered
    sleep = listed["diag.sleep"]
    assert sleep["params_schema"]["properties"]["seconds"]["maximum"] == 3600
    assert sleep["result_schema"]["properties"]["slept_s"]["type"] == "number"
    assert sleep["queue"] == "default"
    assert sleep["timeout_s"] > 0
    assert sleep["max_attempts"] >= 1
    assert sleep["retry"]["base_s"] > 0


async def test_openapi_documents_each_job_types_params_and_result(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    request = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in request["oneOf"]}
    assert "Submit_diag_sleep" in variants
    assert "SleepParams" in schemas
    assert schemas["SleepParams"]["properties"]["seconds"]["type"] == "number"
    assert schemas["Submit_diag_sleep"]["x-result-schema"] == {"$ref": "#/components/schemas/SleepResult"}
    assert (await http.get("/docs")).status_code == 200


async def test_diagnostic_types_are_absent_when_diagnostics_are_off() -> None:
    assert not any(name.startswith("diag.") for name in job_types(diagnostics=False))
    assert "diag.crash" in job_types(diagnostics=True)


async def test_job_types_show_their_queues_and_limits_with_operator_overrides(
    settings: Settings, redis: ArqRedis
) -> None:
    tuned = settings.model_copy(
        update={
            "job_limits": {
                "diag.sleep": JobLimitOverride(concurrency=3),
                "webhook.deliver": JobLimitOverride(rate=5),
            }
        }
    )
    async with serve(create_app(tuned)) as http:
        listed = {jt["name"]: jt for jt in (await http.get("/v1/job-types")).json()["job_types"]}
    assert listed["webhook.deliver"]["limit"] == {"rate": 5, "per_s": 1.0, "concurrency": None, "keyed": True}
    assert listed["image.thumbnail"]["limit"] == {
        "rate": None, "per_s": 1.0, "concurrency": 2, "keyed": False,
    }  # fmt: skip
    assert listed["diag.sleep"]["limit"]["concurrency"] == 3
    assert listed["diag.noop"]["limit"] is None
    assert listed["diag.noop"]["queues"] == ["critical", "default", "bulk"]
