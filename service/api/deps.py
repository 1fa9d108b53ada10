"""The one dependency routes declare for what the app opened: the stores, the settings, the job type
catalogue.

Routes take ``services: ServicesDep`` and use what they need of it, rather than a dependency per store:
FastAPI solves every declared dependency on every request, at about 80 Python calls each, and a single
submit declaring three of them spent a tenth of its calls there (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from jobs.registry import AnyJobType
from service.config import Settings
from service.stores.audit_log import AuditLog
from service.stores.dead_letter_store import DeadLetterStore
from service.stores.job_store import JobStore


@dataclass(frozen=True)
class Services:
    """What the app's lifespan opened for the routes (``app.state.services``)."""

    settings: Settings
    #: the job types clients may submit and list
    job_types: Mapping[str, AnyJobType]
    store: JobStore
    dead_letters: DeadLetterStore
    audit: AuditLog


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
