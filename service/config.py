"""Every setting of jobsvc, in one place, read from the environment with the prefix ``JOBSVC_``.

The API, the worker and the CLI all build their configuration from :class:`Settings`; nothing else reads
the environment. No setting is required in development; in production unsafe values stop the process at
start instead of surfacing later as a security hole.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.engine import keys
from jobs.engine.connection import RedisTarget, parse_sentinels, redact_url
from jobs.engine.queue_ops import DEFAULT_MAX_KEPT_BYTES, DEFAULT_MAX_KEPT_JOBS, Quotas, ReplicaAcks
from jobs.engine.webhook_secrets import MAX_GRACE_S
from jobs.queues import parse_served_queues

SmtpTls = Literal["none", "starttls", "tls"]
Environment = Literal["development", "production"]

DEV_WEBHOOK_SECRET = "jobsvc-development-webhook-secret"
MIN_SECRET_LENGTH = 32


class JobLimitOverride(BaseModel):
    """An operator's limits for one job type (fields left out keep the declared values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: int | None = Field(None, ge=1, description="Starts per `per_s` seconds, across all workers.")
    per_s: float = Field(1.0, ge=0.001, le=86_400)
    concurrency: int | None = Field(None, ge=1, description="Jobs running at once, across all workers.")


class Settings(BaseSettings):
    """Configuration for the API, the workers and the CLI."""

    model_config = SettingsConfigDict(env_prefix="JOBSVC_", extra="ignore", frozen=True)

    environment: Environment | None = Field(
        None,
        description="`production` refuses unsafe defaults at start. Unset: `development` only while the "
        "process listens (JOBSVC_HOST) and reaches Redis on loopback only, `production` otherwise.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://, rediss:// or unix:// URL of the Redis-compatible server. Unset: `jobsvc dev` "
        "starts an embedded one; the API and workers use redis://localhost:6379.",
    )
    redis_sentinels: str = Field(
        "",
        description="Comma-separated host:port of Redis Sentinels. Set: jobsvc uses the primary they name "
        "and follows it through a failover; JOBSVC_REDIS_URL then gives only the user, password, database "
        "and TLS.",
    )
    redis_sentinel_master: str = Field(
        "mymaster", description="The name the Sentinels monitor the primary by."
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="The Sentinels' own password, when they ask for one."
    )
    redis_min_replicas: int = Field(
        0,
        ge=0,
        description="A submit is answered 202 only once this many replicas have it (Redis WAIT), so that a "
        "failover right after it loses nothing; fewer within the timeout answers 503.",
    )
    redis_min_replicas_timeout_ms: int = Field(
        1000, ge=1, le=60_000, description="How long a submit waits for JOBSVC_REDIS_MIN_REPLICAS."
    )
    data_dir: Path = Field(
        Path(".jobsvc"), description="Where `jobsvc dev` keeps the embedded server's data."
    )
    diagnostics: bool = Field(
        False, description="Register the diag.* job types (on by default in `jobsvc dev`)."
    )

    smtp_host: str = Field("localhost", description="SMTP server for email.send.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_user: str | None = Field(None, description="SMTP user name; unset sends without AUTH.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_tls: SmtpTls = Field("none", description="`none`, `starttls` or `tls` (implicit TLS).")
    smtp_from: str = Field("jobsvc@localhost", description="Sender address of email.send.")
    smtp_timeout_s: float = Field(30.0, gt=0, description="Timeout of one SMTP conversation.")

    webhook_secret: SecretStr | None = Field(
        None,
        description="The service's secret: each tenant's webhook signing secret is kept encrypted with a key "
        "derived from it; required (32+ characters) in production. Changing it makes the kept secrets "
        "unreadable: rotate every tenant's after.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook delivery.")
    webhook_secret_grace_s: int = Field(
        86_400,
        ge=0,
        le=MAX_GRACE_S,
        description="After a tenant's webhook secret is rotated, how long the previous one signs beside it "
        "(unless the rotation says otherwise).",
    )
    webhook_allow_private: bool | None = Field(
        None,
        description="Let outbound calls reach loopback, private and link-local addresses. "
        "Unset: allowed in development only.",
    )

    storage_dir: Path | None = Field(
        None, description="Files that image.thumbnail reads and writes. Unset: `<data_dir>/storage`."
    )

    result_retention_s: int = Field(
        7 * 86_400, ge=1, description="How long results and job records stay readable after a job ends."
    )
    queued_job_expiry_s: int = Field(
        7 * 86_400, ge=60, description="A job not started this long after it was due is failed as expired."
    )
    dead_letter_retention_s: int = Field(
        30 * 86_400, ge=60, description="How long a job that failed for good stays in the dead letters."
    )
    idempotency_ttl_s: int = Field(86_400, ge=60, description="How long an Idempotency-Key is remembered.")

    admin_api_key: SecretStr | None = Field(
        None,
        description="Bootstraps an admin key (all scopes, tenant `default`); `jobsvc dev` makes one in "
        "its data directory when unset. 32+ characters.",
    )
    tenant_max_open_jobs: int = Field(
        100_000, ge=1, description="Most jobs a tenant may have waiting or running (429 beyond)."
    )
    tenant_submits_per_s: int = Field(
        10_000, ge=1, description="Most jobs a tenant may submit per second (429 with Retry-After beyond)."
    )
    tenant_max_kept_jobs: int = Field(
        DEFAULT_MAX_KEPT_JOBS,
        ge=1,
        description="Most jobs a tenant keeps in Redis, ended ones included until their results expire "
        "(429 beyond).",
    )
    tenant_max_kept_bytes: int = Field(
        DEFAULT_MAX_KEPT_BYTES,
        ge=1024,
        description="Most bytes of job and result records a tenant keeps in Redis (429 beyond; 413 for a "
        "submit larger than all of it).",
    )
    max_params_bytes: int = Field(
        65_536, ge=256, description="Largest params object a submit may carry, as JSON (422 beyond)."
    )
    arq_producer_tenant: str = Field(
        keys.DEFAULT_TENANT,
        pattern=keys.TENANT_NAME.pattern,
        description="The tenant that owns jobs enqueued with ARQ's own client (`enqueue_job`): its quotas "
        "apply to them, and its keys list and read them.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API, as a JSON list "
        '(`["https://ops.example.com"]`); empty: CORS off.',
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies are refused with 413.")
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        description="Invalid API keys one client address may send in a minute; beyond, every key from it is "
        "refused with 429 until the minute ends (key guessing slowed to that rate).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token GET /metrics asks for in production (without one it answers 404 there); "
        "in development /metrics is open.",
    )
    max_wait_s: float = Field(60.0, gt=0, le=300, description="Upper bound of GET /v1/jobs/{id}?wait=.")
    dashboard_session_ttl_s: int = Field(
        8 * 3600,
        ge=60,
        le=30 * 86_400,
        description="How long a dashboard sign-in lasts; signing out or revoking the key ends it sooner.",
    )

    queues: str = Field(
        "critical,default,bulk",
        description="Queues a worker serves, each optionally with a weight (`critical:6,default:3`); "
        "free slots are shared by weight.",
    )
    job_limits: dict[str, JobLimitOverride] = Field(
        default_factory=dict,
        description="Rate and concurrency limits per job type, overriding the declared ones (JSON, e.g. "
        '`{"webhook.deliver": {"rate": 20, "per_s": 1}, "image.thumbnail": {"concurrency": 2}}`).',
    )
    worker_max_jobs: int = Field(50, ge=1, description="Jobs one worker process runs at once.")
    worker_uvloop: bool = Field(
        True, description="Run `arq worker_settings.WorkerSettings` on uvloop (faster event loop)."
    )
    worker_poll_delay_s: float = Field(
        3.0,
        gt=0,
        le=3,
        description="Longest one blocking wait of an idle worker lasts; new work wakes it at once, and "
        "due, lapsed or missed work is looked for at every heartbeat.",
    )
    worker_heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="How often a worker records itself as alive and looks for due, lapsed or missed "
        "work; leases of running jobs are renewed at least four times per lease.",
    )
    worker_lease_s: float = Field(
        10.0, gt=0, description="A dead worker's running jobs run again within this long."
    )
    worker_shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running jobs may finish before they are handed back."
    )
    job_timeout_s: float = Field(300.0, gt=0, description="Default run-time limit of a job attempt.")
    image_workers: int = Field(2, ge=1, description="Processes that image.thumbnail renders in.")

    host: str = Field("127.0.0.1", description="Where `jobsvc dev` serves the API.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the API under `jobsvc dev`.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the API that `jobsvc dev` starts, and of JSON logs."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: the API and the workers write one JSON object per line (theirs, uvicorn's and "
        "ARQ's), naming the job and trace a line belongs to; `text`: uvicorn's and ARQ's own formats.",
    )

    @model_validator(mode="after")
    def _queues_are_known(self) -> Settings:
        parse_served_queues(self.queues)
        return self

    @property
    def default_quotas(self) -> Quotas:
        """Each tenant's quotas unless an admin set others for it."""
        return Quotas(
            max_open_jobs=self.tenant_max_open_jobs,
            submits_per_s=self.tenant_submits_per_s,
            max_kept_jobs=self.tenant_max_kept_jobs,
            max_kept_bytes=self.tenant_max_kept_bytes,
        )

    @property
    def limit_overrides(self) -> dict[str, dict[str, Any]]:
        """JOBSVC_JOB_LIMITS as plain dicts holding only the fields the operator set."""
        return {name: limit.model_dump(exclude_unset=True) for name, limit in self.job_limits.items()}

    @property
    def served_queues(self) -> tuple[tuple[str, int], ...]:
        """The queues a worker serves, with their weights, as JOBSVC_QUEUES says."""
        return parse_served_queues(self.queues)

    @model_validator(mode="after")
    def _leases_outlive_heartbeats(self) -> Settings:
        if self.worker_lease_s < 2 * self.worker_heartbeat_s:
            raise ValueError("JOBSVC_WORKER_LEASE_S must be at least twice JOBSVC_WORKER_HEARTBEAT_S")
        return self

    @model_validator(mode="after")
    def _sentinels_readable(self) -> Settings:
        try:
            parse_sentinels(self.redis_sentinels)
        except ValueError as exc:
            raise ValueError(f"JOBSVC_REDIS_SENTINELS: {exc}") from None
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.effective_environment != "production":
            return self
        problems: list[str] = []
        if self.redis_url is None and not self.redis_sentinels:
            problems.append(
                "JOBSVC_REDIS_URL or JOBSVC_REDIS_SENTINELS must be set "
                "(the embedded server is for development)"
            )
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if len(secret) < MIN_SECRET_LENGTH or secret == DEV_WEBHOOK_SECRET:
            problems.append(f"JOBSVC_WEBHOOK_SECRET must be a secret of {MIN_SECRET_LENGTH}+ characters")
        for name, value in (
            ("JOBSVC_ADMIN_API_KEY", self.admin_api_key),
            ("JOBSVC_METRICS_TOKEN", self.metrics_token),
        ):
            if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
                problems.append(
                    f"{name} must be {MIN_SECRET_LENGTH}+ characters (a guessable one opens the cluster)"
                )
        if self.smtp_password is not None and self.smtp_tls == "none":
            problems.append("JOBSVC_SMTP_TLS must be starttls or tls when a password is set")
        if problems:
            why = (
                ""
                if self.environment
                else " (JOBSVC_ENVIRONMENT is unset and this process is not on loopback only, so it runs "
                "as production; set JOBSVC_ENVIRONMENT=development to run without these checks)"
            )
            raise ValueError("unsafe production settings: " + "; ".join(problems) + why)
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """As pydantic's, with the password in the Redis URL masked: settings may get logged."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "redis_url" and isinstance(value, str) else value

    @property
    def worker_stale_after_s(self) -> float:
        """A worker whose last heartbeat is older than this is dead."""
        return 3 * self.worker_heartbeat_s

    @property
    def effective_environment(self) -> Environment:
        """The environment set, or unset: development only on loopback (fail closed)."""
        if self.environment is not None:
            return self.environment
        return "development" if self.on_loopback_only else "production"

    @property
    def on_loopback_only(self) -> bool:
        """Whether the API listens (JOBSVC_HOST) and Redis is reached on this machine's loopback only."""
        if self.uses_embedded_redis:
            redis_hosts = ["localhost"]
        elif self.redis_sentinels:
            redis_hosts = [host for host, _port in parse_sentinels(self.redis_sentinels)]
        else:
            url = urlsplit(self.effective_redis_url)
            redis_hosts = [] if url.scheme == "unix" else [url.hostname or ""]
        return all(is_loopback_host(host) for host in (self.host, *redis_hosts))

    @property
    def is_development(self) -> bool:
        return self.effective_environment == "development"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://localhost:6379"

    @property
    def uses_embedded_redis(self) -> bool:
        """Whether `jobsvc dev` starts its own server: no Redis named, by URL or by Sentinels."""
        return self.redis_url is None and not self.redis_sentinels

    @property
    def replica_acks(self) -> ReplicaAcks:
        return ReplicaAcks(self.redis_min_replicas, self.redis_min_replicas_timeout_ms)

    @property
    def redis_target(self) -> RedisTarget:
        return RedisTarget(
            self.effective_redis_url,
            sentinels=parse_sentinels(self.redis_sentinels),
            sentinel_master=self.redis_sentinel_master,
            sentinel_password=(
                self.redis_sentinel_password.get_secret_value() if self.redis_sentinel_password else None
            ),
        )

    @property
    def effective_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "storage").resolve()

    @property
    def outbound_private_allowed(self) -> bool:
        if self.webhook_allow_private is None:
            return self.is_development
        return self.webhook_allow_private

    @property
    def webhook_secrets_key(self) -> bytes:
        """What the key that seals tenants' webhook secrets is derived from."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value().encode()
        return DEV_WEBHOOK_SECRET.encode()


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine's loopback: ``localhost`` or a loopback address (no lookup)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
