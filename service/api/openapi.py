"""The OpenAPI document, with every job type's params and result schema in it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from jobs.registry import AnyJobType
from service.api.schemas import JobBatchSubmit

REF = "#/components/schemas/{model}"


def _component(schemas: dict[str, Any], model: type[BaseModel], mode: str) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    schemas.update(schema.pop("$defs", {}))
    name = schema.get("title", model.__name__)
    schemas.setdefault(name, schema)
    return {"$ref": REF.format(model=name)}


def build_openapi(app: FastAPI, job_types: Mapping[str, AnyJobType]) -> dict[str, Any]:
    """FastAPI's document, plus one submit variant per job type so /docs shows each type's params."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    variants = []
    for jt in sorted(job_types.values(), key=lambda jt: jt.name):
        params = _component(schemas, jt.params_model, "validation")
        result = _component(schemas, jt.result_model, "serialization")
        variant_name = "Submit_" + jt.name.replace(".", "_")
        schemas[variant_name] = {
            "title": f"Submit {jt.name}",
            "description": jt.description,
            "allOf": [
                {"$ref": REF.format(model="JobSubmit")},
                {"type": "object", "properties": {"type": {"const": jt.name}, "params": params}},
            ],
            "x-result-schema": result,
        }
        variants.append({"$ref": REF.format(model=variant_name)})
    batch = document["paths"]["/v1/jobs:batch"]["post"]["requestBody"]["content"]["application/json"]
    batch["schema"] = _component(schemas, JobBatchSubmit, "validation")
    submit = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    submit["schema"] = {"oneOf": variants} if variants else submit["schema"]
    return document
