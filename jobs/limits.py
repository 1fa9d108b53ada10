"""Rate and concurrency limits per job type, held cluster-wide by the claim script.

A limit is declared beside its job type (``@job_type(..., limit=Limit(rate=20))``) and may be overridden
by settings. Workers check it when they claim a job, inside one server-side script, so it holds across
every worker. A job over its limit is not started and uses no attempt: over a rate it is deferred to the
moment a start is allowed again; over a concurrency limit it is parked and released by the next job of
its kind that ends. ``key`` splits a limit by a params field, e.g. one rate per destination host.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Limit:
    #: at most this many starts per ``per_s`` seconds (None: no rate limit)
    rate: int | None = None
    per_s: float = 1.0
    #: at most this many running at once (None: no concurrency limit)
    concurrency: int | None = None
    #: splits the limit by what this returns for a job's params (None: one limit for the whole type)
    key: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate < 1:
            raise ValueError("rate must be at least 1")
        if not 0.001 <= self.per_s <= 86_400:
            raise ValueError("per_s must lie between 1 ms and a day")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def active(self) -> bool:
        return self.rate is not None or self.concurrency is not None

    def script_config(self) -> dict[str, int]:
        """What the claim script reads: r (starts) per p (ms), c (running at once)."""
        config: dict[str, int] = {}
        if self.rate is not None:
            config["r"] = self.rate
            config["p"] = int(self.per_s * 1000)
        if self.concurrency is not None:
            config["c"] = self.concurrency
        return config


def partition_of(limit: Limit | None, params: BaseModel) -> str:
    """Which partition of the limit a job falls in: a digest of its key (never the raw value), or ''."""
    if limit is None or limit.key is None:
        return ""
    value = limit.key(params)
    if not value:
        return ""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def effective_limits(
    declared: Mapping[str, Limit | None], overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Limit]:
    """Each job type's limit as declared, with what the operator set; types without a limit left out."""
    limits: dict[str, Limit] = {}
    for name, limit in declared.items():
        effective = overridden(limit, overrides.get(name))
        if effective is not None and effective.active:
            limits[name] = effective
    return limits


def overridden(declared: Limit | None, override: Mapping[str, Any] | None) -> Limit | None:
    """``declared`` with the fields an operator set (rate, per_s, concurrency); its key is kept."""
    if override is None:
        return declared
    base = declared or Limit()
    return Limit(
        rate=override.get("rate", base.rate),
        per_s=override.get("per_s", base.per_s),
        concurrency=override.get("concurrency", base.concurrency),
        key=base.key,
    )
