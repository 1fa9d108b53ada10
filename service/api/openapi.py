"""The OpenAPI document, exact enough that clients generated from it work.

FastAPI documents the submit bodies as the type-agnostic ``JobSubmit``, because that is what the routes
parse before they look the type up. Here each registered job type gets a variant of its own, with its
params schema, its allowed queues and whether params may be left out, and both submit bodies become a
union of those variants discriminated by ``type``: what a variant accepts, the service accepts. What no
JSON Schema can state (a window around now, one field compared with another, a parent job that must
exist) is said in words in the descriptions and answered with a documented 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from jobs.registry import AnyJobType
from service.api.schemas import JobBatchSubmit, JobSubmit, Problem
from service.api.submissions import MAX_PARAMS_DEPTH, STORABLE_INTS

REF = "#/components/schemas/{model}"


def _component(schemas: dict[str, Any], model: type[BaseModel], mode: str) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    schemas.update(schema.pop("$defs", {}))
    name = schema.get("title", model.__name__)
    schemas.setdefault(name, schema)
    return {"$ref": REF.format(model=name)}


def _variant_name(job_type_name: str) -> str:
    return "Submit_" + job_type_name.replace(".", "_")


def _variant(
    schemas: dict[str, Any], job_type: AnyJobType, common: Mapping[str, Any], max_params_bytes: int
) -> dict[str, Any]:
    """``JobSubmit`` narrowed to one job type: its name, its params, the queues it may run on."""
    params_ref = _component(schemas, job_type.params_model, "validation")
    params_required = bool(schemas[params_ref["$ref"].rsplit("/", 1)[1]].get("required"))
    queues = list(job_type.allowed_queues)
    properties = {
        **common["properties"],
        "type": {"const": job_type.name, "type": "string", "title": "Type"},
        "params": {
            **params_ref,
            "description": f"At most {max_params_bytes} bytes as JSON, nested at most {MAX_PARAMS_DEPTH} "
            f"levels deep; integers within 64 bits (from {STORABLE_INTS.start} to {STORABLE_INTS.stop - 1}).",
            **({} if params_required else {"default": {}}),
        },
        "queue": {
            "anyOf": [{"type": "string", "enum": queues}, {"type": "null"}],
            "default": None,
            "title": "Queue",
            "description": f"A queue {job_type.name} may run on; defaults to `{job_type.queue}`.",
        },
    }
    return {
        **common,
        "title": f"Submit {job_type.name}",
        "description": job_type.description,
        "properties": properties,
        "required": ["type", "params"] if params_required else ["type"],
        "x-result-schema": _component(schemas, job_type.result_model, "serialization"),
    }


def submit_union(
    schemas: dict[str, Any], job_types: Mapping[str, AnyJobType], max_params_bytes: int
) -> dict[str, Any]:
    """One variant per job type, discriminated by ``type``; each variant is a component of its own."""
    common = JobSubmit.model_json_schema(ref_template=REF, mode="validation")
    schemas.update(common.pop("$defs", {}))
    mapping = {}
    for job_type in sorted(job_types.values(), key=lambda jt: jt.name):
        name = _variant_name(job_type.name)
        schemas[name] = _variant(schemas, job_type, common, max_params_bytes)
        mapping[job_type.name] = REF.format(model=name)
    return {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }


def build_openapi(app: FastAPI, job_types: Mapping[str, AnyJobType]) -> dict[str, Any]:
    """FastAPI's document, with the submit bodies as unions of one variant per job type."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _component(schemas, Problem, "serialization")  # every problem answer refers to it
    if not job_types:
        return document
    union = submit_union(schemas, job_types, app.state.settings.max_params_bytes)
    submit = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    submit["schema"] = union
    batch = document["paths"]["/v1/jobs:batch"]["post"]["requestBody"]["content"]["application/json"]
    batch["schema"] = _component(schemas, JobBatchSubmit, "validation")
    schemas["JobBatchSubmit"]["properties"]["jobs"]["items"] = union
    return document
