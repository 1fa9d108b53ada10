"""Annotated dependencies routes declare: the stores, the settings, the job type catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from jobs.registry import AnyJobType
from service.config import Settings
from service.stores.audit_log import AuditLog
from service.stores.dead_letter_store import DeadLetterStore
from service.stores.job_store import JobStore


async def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


async def get_dead_letters(request: Request) -> DeadLetterStore:
    dead_letters: DeadLetterStore = request.app.state.dead_letters
    return dead_letters


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_job_types(request: Request) -> Mapping[str, AnyJobType]:
    job_types: Mapping[str, AnyJobType] = request.app.state.job_types
    return job_types


async def get_audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


StoreDep = Annotated[JobStore, Depends(get_store)]
AuditDep = Annotated[AuditLog, Depends(get_audit)]
DeadLettersDep = Annotated[DeadLetterStore, Depends(get_dead_letters)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
JobTypesDep = Annotated[Mapping[str, AnyJobType], Depends(get_job_types)]
