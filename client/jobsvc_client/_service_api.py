"""The other endpoints, described once (sans-I/O): dead letters, the catalogue, operations, admin and
health."""

from __future__ import annotations

from collections.abc import Iterable

from jobsvc_client._core import Call, Paging, no_content, request, segment, send
from jobsvc_client.models import (
    ApiKeyCreate,
    ApiKeyList,
    AuditList,
    DeadLetter,
    DeadLetterList,
    DeadLetterPurgeResult,
    DeadLetterReplay,
    DeadLetterReplayResult,
    DeadLetterSelection,
    Health,
    Job,
    JobTypeList,
    NewApiKey,
    QueueList,
    QueueView,
    QuotasUpdate,
    ScheduleList,
    Scope,
    TenantDeletion,
    TenantList,
    TenantQuotas,
    WebhookSecret,
    WebhookSecretRotation,
    WorkerList,
)


def _dead_letter_path(job_id: str) -> str:
    return f"/v1/dead-letters/{segment(job_id)}"


def list_dead_letters(
    *, type: str | None = None, queue: str | None = None, limit: int = 50, cursor: str | None = None
) -> Call[DeadLetterList]:
    """One page of the jobs that failed for good, newest first, with their attempts and traceback."""
    query = {"type": type, "queue": queue, "limit": limit, "cursor": cursor}
    return send("GET", "/v1/dead-letters", DeadLetterList, query=query)


def iter_dead_letters(
    *, type: str | None = None, queue: str | None = None, page_size: int = 100
) -> Paging[DeadLetterList, DeadLetter]:
    """Every matching dead letter, newest first, fetching ``page_size`` at a time."""
    return Paging(
        page=lambda cursor: list_dead_letters(type=type, queue=queue, limit=page_size, cursor=cursor),
        items=lambda page: page.dead_letters,
    )


def get_dead_letter(job_id: str) -> Call[DeadLetter]:
    return send("GET", _dead_letter_path(job_id), DeadLetter)


def replay_dead_letter(job_id: str) -> Call[Job]:
    """Run it again as a new job (``replay_of`` names the dead one); it leaves the dead letters."""
    return send("POST", f"{_dead_letter_path(job_id)}/replay", Job)


def delete_dead_letter(job_id: str) -> Call[None]:
    """Remove it from the dead letters and delete the job's records."""
    return Call(request("DELETE", _dead_letter_path(job_id)), no_content)


def replay_dead_letters(
    *, type: str | None = None, queue: str | None = None, limit: int = 100
) -> Call[DeadLetterReplayResult]:
    """Replay up to ``limit`` dead letters of ``type`` and/or ``queue``, newest first, as new jobs."""
    selection = DeadLetterReplay(type=type, queue=queue, limit=limit)
    return send("POST", "/v1/dead-letters:replay", DeadLetterReplayResult, selection)


def purge_dead_letters(*, type: str | None = None, queue: str | None = None) -> Call[DeadLetterPurgeResult]:
    """Delete every dead letter of ``type`` and/or ``queue`` (neither: all of them) with its records."""
    selection = DeadLetterSelection(type=type, queue=queue)
    return send("POST", "/v1/dead-letters:purge", DeadLetterPurgeResult, selection)


def job_types() -> Call[JobTypeList]:
    """The catalogue: each job type with its queue, limits and params and result JSON Schemas."""
    return send("GET", "/v1/job-types", JobTypeList)


def queues() -> Call[QueueList]:
    """Per queue: waiting, deferred and running jobs, recent outcomes, the oldest wait (admin scope)."""
    return send("GET", "/v1/queues", QueueList)


def pause_queue(name: str) -> Call[QueueView]:
    """Pause a queue: its jobs are still accepted and wait, no worker starts one (admin scope)."""
    return send("POST", f"/v1/queues/{segment(name)}:pause", QueueView)


def resume_queue(name: str) -> Call[QueueView]:
    """Resume a paused queue: workers start its waiting jobs at once (admin scope)."""
    return send("POST", f"/v1/queues/{segment(name)}:resume", QueueView)


def workers() -> Call[WorkerList]:
    """The live workers, with their queues, counters and last heartbeat (admin scope)."""
    return send("GET", "/v1/workers", WorkerList)


def schedules() -> Call[ScheduleList]:
    """Each schedule's next run, last run and its outcome (admin scope)."""
    return send("GET", "/v1/schedules", ScheduleList)


def health() -> Call[Health]:
    """Whether the API process serves (``/healthz``); needs no key."""
    return send("GET", "/healthz", Health)


def ready() -> Call[Health]:
    """Whether Redis answers and a worker is alive (``/readyz``); :class:`ServiceUnavailable` if not."""
    return send("GET", "/readyz", Health)


def create_key(tenant: str, scopes: Iterable[Scope], *, name: str = "") -> Call[NewApiKey]:
    """A new API key (admin scope); its ``key`` is in this answer only."""
    return send("POST", "/v1/admin/keys", NewApiKey, ApiKeyCreate(tenant=tenant, scopes=[*scopes], name=name))


def list_keys() -> Call[ApiKeyList]:
    """The keys (never their secrets)."""
    return send("GET", "/v1/admin/keys", ApiKeyList)


def revoke_key(key_id: str) -> Call[None]:
    return Call(request("DELETE", f"/v1/admin/keys/{segment(key_id)}"), no_content)


def tenants() -> Call[TenantList]:
    """Each tenant with its open and kept jobs, quotas and storage budget."""
    return send("GET", "/v1/admin/tenants", TenantList)


def tenant(name: str) -> Call[TenantQuotas]:
    """One tenant's open and kept jobs, quotas and storage budget."""
    return send("GET", f"/v1/admin/tenants/{segment(name)}", TenantQuotas)


def set_quotas(
    tenant: str,
    *,
    max_open_jobs: int | None = None,
    submits_per_s: int | None = None,
    max_kept_jobs: int | None = None,
    max_kept_bytes: int | None = None,
    weight: int | None = None,
    max_priority: int | None = None,
    queues: list[str] | None = None,
) -> Call[TenantQuotas]:
    """Set a tenant's quotas, storage budget and policy; one left out (None) goes back to the service's
    default (for ``queues``: every queue)."""
    update = QuotasUpdate(
        max_open_jobs=max_open_jobs,
        submits_per_s=submits_per_s,
        max_kept_jobs=max_kept_jobs,
        max_kept_bytes=max_kept_bytes,
        weight=weight,
        max_priority=max_priority,
        queues=queues,
    )
    return send("PUT", f"/v1/admin/tenants/{segment(tenant)}/quotas", TenantQuotas, update)


def rotate_webhook_secret(tenant: str, *, grace_s: int | None = None) -> Call[WebhookSecret]:
    """A new webhook signing secret for the tenant, in this answer only; the one it replaces signs beside
    it for ``grace_s`` seconds (None: the service's default)."""
    rotation = WebhookSecretRotation(grace_s=grace_s)
    return send("POST", f"/v1/admin/tenants/{segment(tenant)}/webhook-secrets", WebhookSecret, rotation)


def audit_log(*, limit: int = 100) -> Call[AuditList]:
    """The admins' and operators' actions, newest first (operator scope)."""
    return send("GET", "/v1/admin/audit", AuditList, query={"limit": limit})


def delete_tenant_jobs(tenant: str) -> Call[TenantDeletion]:
    """Delete every job of the tenant with its results, attempts and dead letters; running ones abort."""
    return send("DELETE", f"/v1/admin/tenants/{segment(tenant)}/jobs", TenantDeletion)
