"""The ARQ worker: ``arq worker_settings.WorkerSettings``.

The one module that knows both sides: it reads the service settings, takes the job types and cron
jobs from the registry, and puts what job functions need into ARQ's ``ctx`` at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

from jobs import registry
from jobs.context import JobsConfig, SmtpConfig, WebhookConfig
from jobs.cpu import CpuPool
from jobs.engine import keys
from jobs.engine.arq_producers import ArqProducers
from jobs.engine.codec import deserialize, serialize
from jobs.engine.connection import bound_waits, redis_settings_for, sentinel_pool, servers_behind
from jobs.engine.log_context import job_started, naming_jobs
from jobs.engine.runner import TIMEOUT_BACKSTOP_S, arq_function
from jobs.engine.tracing import configure_tracing, flush_tracing
from jobs.engine.webhook_secrets import SecretBox, TenantWebhookSecrets
from jobs.engine.worker import EngineConfig, adopt
from jobs.limits import effective_limits
from jobs.outbound import OutboundGuard, guarded_client
from service.collector import freeze_startup_objects
from service.config import Settings, get_settings
from service.logs import configure_logging


def jobs_config(settings: Settings) -> JobsConfig:
    """The part of the settings job functions see."""
    return JobsConfig(
        smtp=SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            tls=settings.smtp_tls,
            sender=settings.smtp_from,
            timeout_s=settings.smtp_timeout_s,
        ),
        webhook=WebhookConfig(timeout_s=settings.webhook_timeout_s),
        storage_dir=settings.effective_storage_dir,
        allow_private_addresses=settings.outbound_private_allowed,
        result_retention_s=settings.result_retention_s,
        default_timeout_s=settings.job_timeout_s,
        redis_endpoints=settings.redis_target.endpoints,
    )


def engine_config(settings: Settings) -> EngineConfig:
    job_types = registry.job_types(diagnostics=settings.diagnostics)
    limits = effective_limits({name: jt.limit for name, jt in job_types.items()}, settings.limit_overrides)
    return EngineConfig(
        lease_s=settings.worker_lease_s,
        heartbeat_s=settings.worker_heartbeat_s,
        queues=settings.served_queues,
        dead_letter_retention_s=settings.dead_letter_retention_s,
        idle_wait_s=settings.worker_poll_delay_s,
        limits={name: limit.script_config() for name, limit in limits.items()},
        schedules=registry.schedules(),
        job_types=job_types,
        default_timeout_s=settings.job_timeout_s,
        result_retention_s=settings.result_retention_s,
        queued_expiry_ms=settings.queued_job_expiry_s * 1000,
        arq_producers=ArqProducers(
            tenant=settings.arq_producer_tenant,
            quotas=settings.default_quotas,
            max_params_bytes=settings.max_params_bytes,
        ),
    )


async def startup(ctx: dict[str, Any]) -> None:
    """Open what jobs share for the worker's lifetime: config, one HTTP client, a process pool."""
    settings: Settings = ctx["settings"]
    configure_logging(settings)
    configure_tracing("jobsvc-worker")
    config = jobs_config(settings)
    if behind := await servers_behind(ctx["redis"]):  # the servers Sentinels name: as off limits
        config = dataclasses.replace(config, redis_endpoints=config.redis_endpoints + behind)
    config.storage_dir.mkdir(parents=True, exist_ok=True)
    ctx["config"] = config
    worker = adopt(ctx, engine_config(settings))
    await bound_waits(worker.pool)
    # every outbound connection of every job goes to an address the guard checked (jobs/outbound.py)
    guard = OutboundGuard(allow_private=config.allow_private_addresses, never=config.redis_endpoints)
    ctx["http"] = guarded_client(guard, timeout_s=settings.webhook_timeout_s)
    ctx["process_pool"] = CpuPool(max_workers=settings.image_workers)
    ctx["webhook_secrets"] = TenantWebhookSecrets(ctx["redis"], SecretBox(settings.webhook_secrets_key))
    if started_by_arq_cli():  # the worker's process: started, it only runs jobs from here on
        freeze_startup_objects()


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what ``startup`` opened; after a startup that failed part-way, only that part."""
    if "http" in ctx:
        await ctx["http"].aclose()
    if "process_pool" in ctx:
        await ctx["process_pool"].close()
    await flush_tracing()


def use_uvloop_under_arq_cli(settings: Settings) -> None:
    """Run ``arq worker_settings.WorkerSettings`` on uvloop. ARQ's CLI imports this module before it
    creates its event loop and offers no other hook, so the policy is set here, and only when the
    process is that CLI: importing the module elsewhere (tests, the API) leaves the loop alone."""
    if settings.worker_uvloop and started_by_arq_cli() and sys.platform != "win32":
        import uvloop  # not on Windows

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def json_logs_under_arq_cli(settings: Settings) -> None:
    """With ``JOBSVC_LOG_FORMAT=json``, make ARQ's first lines JSON too. ARQ's CLI sets up its own text
    logging right after importing this module, before the worker's startup hook: so logging is set up
    now, and the CLI is handed a logging configuration that changes nothing (unless ``--custom-log-dict``
    names another)."""
    if settings.log_format == "json" and started_by_arq_cli():
        import arq.cli

        configure_logging(settings)
        arq.cli.default_log_config = lambda verbose: {"version": 1, "incremental": True}  # type: ignore[attr-defined]


def started_by_arq_cli() -> bool:
    return Path(sys.argv[0]).name == "arq"


_settings = get_settings()
_job_types = registry.job_types(diagnostics=_settings.diagnostics)
use_uvloop_under_arq_cli(_settings)
json_logs_under_arq_cli(_settings)


class WorkerSettings:
    """Read by ``arq``; every attribute is a keyword of ``arq.worker.Worker`` (a test checks)."""

    functions = [arq_function(jt) for jt in _job_types.values()]
    cron_jobs = registry.cron_jobs(_job_types)
    redis_settings = redis_settings_for(_settings.redis_target)
    if _settings.redis_sentinels:
        #: ARQ's own Sentinel pool passes no password to the Sentinels and no timeouts
        redis_pool = sentinel_pool(_settings.redis_target, ride_out_failovers=True)
    #: ARQ's own queue key of the first queue served (ARQ's health record and burst mode read it)
    queue_name = keys.arq_queue(_settings.served_queues[0][0])
    timezone = UTC
    job_serializer = serialize
    job_deserializer = naming_jobs(deserialize)  # and notes which job runs, for its log lines
    on_startup = startup
    on_shutdown = shutdown
    #: names the job in every line logged while it runs (``JOBSVC_LOG_FORMAT=json``)
    on_job_start = job_started
    max_jobs = _settings.worker_max_jobs
    poll_delay = _settings.worker_poll_delay_s
    job_timeout = _settings.job_timeout_s + TIMEOUT_BACKSTOP_S
    keep_result = _settings.result_retention_s
    expires_extra_ms = _settings.queued_job_expiry_s * 1000
    #: ARQ's own health record (``arq --check``); jobsvc's registry is kept every heartbeat
    health_check_interval = max(60.0, _settings.worker_heartbeat_s)
    job_completion_wait = _settings.worker_shutdown_grace_s
    allow_abort_jobs = True
    log_results = False
    ctx = {"settings": _settings}
