"""RFC 9457 problem details: the body of every error answer."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    """One offending field of a request that failed validation."""

    pointer: str = Field(description="JSON pointer into the request, e.g. /params/to.")
    location: str
    message: str
    code: str


class Problem(BaseModel):
    """What went wrong, as the service says it: ``title`` names the kind, ``detail`` this occurrence."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None
