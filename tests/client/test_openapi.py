"""The client against the OpenAPI document the app serves: every operation has a method that sends the
right request, and every model reads (or sends) what the service answers (or accepts).

Type compatibility is coarse on purpose: JSON types, enums, arrays' items and which component a value
is; constraints (lengths, patterns, bounds) are the service's to enforce.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import httpx
import jobsvc_client.models as client_models
import pytest
from jobsvc_client import OPERATIONS, JobSubmit
from jobsvc_client._core import Call, Paging, Request, Stream
from jobsvc_client._operations import Operations, iteration, operation
from jobsvc_client.models import REQUEST_MODELS
from pydantic import BaseModel

#: client model -> the served component it stands for, where the names differ
COMPONENT_OF = {"QuotasUpdate": "Update"}
#: client models that are no component: a Server-Sent Event's envelope
NOT_COMPONENTS = {"JobEvent"}
#: served components that are a client model narrowed (the submit variants: JobSubmit for one job type)
VARIANTS = {"JobSubmit": re.compile(r"Submit_\w+")}
REF = "#/components/schemas/{model}"

Schema = Mapping[str, Any]


@pytest.fixture
async def document(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def client_models_checked() -> list[type[BaseModel]]:
    found = [getattr(client_models, name) for name in client_models.__all__]
    models = [m for m in found if isinstance(m, type) and issubclass(m, BaseModel)]
    return [m for m in models if m.__name__ not in NOT_COMPONENTS]


def component(name: str) -> str:
    return COMPONENT_OF.get(name, name)


class Side:
    """One side's schemas, by name: the served components, or the client models' own definitions."""

    def __init__(self, schemas: Mapping[str, Schema], *, rename: bool) -> None:
        self.schemas, self.rename = schemas, rename

    def alternatives(self, schema: Schema) -> list[Schema]:
        """The schema's branches, refs to enums inlined and refs to models as ``{"model": component}``."""
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [branch for option in schema[key] for branch in self.alternatives(option)]
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            target = self.schemas[name]
            if "enum" in target:
                return [target]
            return [{"model": component(name) if self.rename else name}]
        return [schema]


def fits(sent: Schema, sender: Side, reader_schema: Schema, reader: Side) -> bool:
    """Whether every value ``sent`` admits is one ``reader_schema`` admits."""
    options = reader.alternatives(reader_schema)
    if any(not set(option) & {"type", "model", "enum", "const"} for option in options):
        return True  # the reader takes anything
    return all(any(_fits(branch, sender, o, reader) for o in options) for branch in sender.alternatives(sent))


def _fits(sent: Schema, sender: Side, option: Schema, reader: Side) -> bool:
    if "model" in sent or "model" in option:
        name, served = sent.get("model", "object"), option.get("model", "")
        if name in VARIANTS and VARIANTS[name].fullmatch(served):
            return True
        return name == served or ("model" in sent and option.get("type") == "object")
    kind, wanted = sent.get("type"), option.get("type")
    if kind is None or not (kind == wanted or (kind, wanted) == ("integer", "number")):
        return False
    if "enum" in option or "const" in option:
        allowed = set(option.get("enum", [option.get("const")]))
        return set(sent.get("enum", [sent["const"]] if "const" in sent else [])) <= allowed != set()
    if kind == "array":
        return fits(sent.get("items", {}), sender, option.get("items", {}), reader)
    return True


def compare(model: type[BaseModel], served: Mapping[str, Schema], *, answer: bool) -> list[str]:
    """What in ``model`` disagrees with its served component: for an answer, each field the client reads
    must be there, of a type the client takes, and required if the client requires it; for a request,
    each field the client sends must be accepted, and each one the service requires required here."""
    name = component(model.__name__)
    if name not in served:
        return [f"{model.__name__}: the service has no component {name}"]
    own = model.model_json_schema(ref_template=REF, mode="validation" if answer else "serialization")
    client, service = Side(own.get("$defs", {}), rename=True), Side(served, rename=False)
    theirs = served[name]
    mine_required, theirs_required = set(own.get("required", [])), set(theirs.get("required", []))
    problems = []
    for field, schema in own["properties"].items():
        where = f"{model.__name__}.{field}"
        if field not in theirs["properties"]:
            problems.append(f"{where}: not in the served {name}")
            continue
        served_field = theirs["properties"][field]
        if answer and not fits(served_field, service, schema, client):
            problems.append(f"{where}: the client cannot read every value of {served_field}")
        if not answer and not fits(schema, client, served_field, service):
            problems.append(f"{where}: the service does not accept every value of {schema}")
        if answer and field in mine_required - theirs_required:
            problems.append(f"{where}: required by the client, optional in the served {name}")
    if not answer:
        problems += [
            f"{model.__name__}.{f}: required by the service" for f in theirs_required - mine_required
        ]
    return problems


def test_every_client_model_agrees_with_its_served_component(document: dict[str, Any]) -> None:
    served = document["components"]["schemas"]
    problems = [
        problem
        for model in client_models_checked()
        for problem in compare(model, served, answer=model not in REQUEST_MODELS)
    ]
    assert not problems, "\n".join(problems)


def test_every_served_operation_has_a_method_of_both_clients(document: dict[str, Any]) -> None:
    served = {
        op["operationId"]: f"{method.upper()} {path}"
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }
    missing = [f"{op_id} ({served[op_id]})" for op_id in sorted(served.keys() - OPERATIONS.keys())]
    assert not missing, "operations of the served API without a client method: " + ", ".join(missing)
    stale = sorted(OPERATIONS.keys() - served.keys())
    assert not stale, "client methods of operations the API no longer serves: " + ", ".join(stale)
    for op_id, name in OPERATIONS.items():
        declared = Operations.__dict__.get(name)
        assert isinstance(declared, operation | iteration), f"{op_id}: no method {name} on the clients"


def test_each_method_sends_the_request_of_its_operation(document: dict[str, Any]) -> None:
    for op_id, name in OPERATIONS.items():
        method, path = _served_route(document, op_id)
        request = _request_of(Operations.__dict__[name].build)
        assert request.method == method, f"{name} sends {request.method}, {op_id} is {method}"
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
        assert re.fullmatch(pattern, request.path), f"{name} sends {request.path}, {op_id} is {path}"


def _served_route(document: dict[str, Any], op_id: str) -> tuple[str, str]:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if op["operationId"] == op_id:
                return method.upper(), path
    raise AssertionError(f"{op_id} is not served")


def _request_of(build: Any) -> Request:
    """The first request an operation sends, its required arguments filled with plausible values."""
    fillers = {"jobs": [JobSubmit(type="diag.noop")], "scopes": ["read"]}
    arguments = [
        fillers.get(parameter.name, "x1")
        for parameter in inspect.signature(build).parameters.values()
        if parameter.default is inspect.Parameter.empty and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    ]
    built = build(*arguments)
    if isinstance(built, Paging):
        built = built.page(None)
    if isinstance(built, Call | Stream):
        return built.request
    step = next(built)  # a program: its first call
    assert isinstance(step, Call)
    return step.request
