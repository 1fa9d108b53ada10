"""The FastAPI application: ``create_app(settings)``; its lifespan opens the ARQ pool on ``app.state``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from jobs.engine.connection import close_pool, open_pool
from jobs.engine.tracing import configure_tracing, flush_tracing
from jobs.engine.webhook_secrets import SecretBox, TenantWebhookSecrets
from jobs.registry import job_types as registered_job_types
from service.api.auth import KeyStore
from service.api.body_size import BodySizeLimit
from service.api.deps import Services
from service.api.errors import install_error_handlers
from service.api.loopback_guard import LoopbackOnly
from service.api.metrics import HttpMetrics, HttpMetricsMiddleware
from service.api.metrics import router as metrics_router
from service.api.openapi import build_openapi
from service.api.routes import admin, dead_letters, events, health, job_types, jobs, operations
from service.api.security import install_security
from service.config import Settings, get_settings
from service.dashboard import install_dashboard
from service.logs import configure_logging
from service.stores.audit_log import AuditLog
from service.stores.dead_letter_store import DeadLetterStore
from service.stores.event_hub import EventHub
from service.stores.job_store import JobStore
from service.stores.tenant_store import TenantStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # what may be submitted and is listed: internal types (maintenance.*) run on schedules only
    catalogue = {
        name: job_type
        for name, job_type in registered_job_types(diagnostics=settings.diagnostics).items()
        if not job_type.internal
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        configure_tracing("jobsvc-api")  # FastAPI makes the requests' server spans once a provider is set
        pool = await open_pool(settings.redis_target)
        app.state.arq = pool
        app.state.events = events = EventHub(pool, pool.client())
        await events.start()
        store = JobStore(
            pool,
            queued_job_expiry_s=settings.queued_job_expiry_s,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            retention_s=lambda name: int(
                (catalogue[name].keep_result_s if name in catalogue else None) or settings.result_retention_s
            ),
            events=events,
            acks=settings.replica_acks,
        )
        app.state.keys = KeyStore(
            pool, admin_key=settings.admin_api_key, failures_per_minute=settings.auth_failures_per_minute
        )
        app.state.tenants = TenantStore(pool, defaults=settings.default_quotas)
        app.state.webhook_secrets = TenantWebhookSecrets(pool, SecretBox(settings.webhook_secrets_key))
        app.state.services = Services(
            settings=settings,
            job_types=catalogue,
            store=store,
            dead_letters=DeadLetterStore(pool, store),
            audit=AuditLog(pool),
        )
        try:
            yield
        finally:
            await events.stop()
            await close_pool(pool)
            await flush_tracing()

    app = FastAPI(
        title="jobsvc",
        version="0.1.0",
        description="Submit typed jobs, read their status and results, wait for them, cancel them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.http_metrics = http_metrics = HttpMetrics()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(dead_letters.router)
    app.include_router(job_types.router)
    app.include_router(operations.router)
    app.include_router(admin.router)
    install_dashboard(app)
    install_security(app, settings)  # last: its headers go on every answer
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)  # outermost: times everything
    if settings.environment is None and settings.is_development:
        app.add_middleware(LoopbackOnly)  # development rules by default only for what came over loopback

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, catalogue)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
