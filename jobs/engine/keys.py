"""Every Redis key jobsvc reads or writes, built in one place.

ARQ's own keys keep ARQ's formats so that ARQ's ``Job`` and tools built on it can still read our jobs.
One key lives with its job type, since job types never import the engine: ``jobs.catalogue.diag.DIAG_LOG``
(``jobsvc:diag:log``), which only the diagnostic types use.

Nothing a client sends becomes part of a key unchecked: job ids are validated by the API before they
reach here, job type names must name a registered type, and idempotency keys are hashed.
"""

from __future__ import annotations

import hashlib
import re

from arq.constants import (
    abort_jobs_ss,
    default_queue_name,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

from jobs.queues import DEFAULT_QUEUE as DEFAULT_QUEUE

PREFIX = "jobsvc:"

#: ARQ's sorted set of job ids whose abort was requested.
ABORT_SET = abort_jobs_ss


def arq_job(job_id: str) -> str:
    """ARQ's job definition (function, params, enqueue time) while the job waits or runs."""
    return job_key_prefix + job_id


def arq_result(job_id: str) -> str:
    """ARQ's result record, written when the job ends for good."""
    return result_key_prefix + job_id


def arq_in_progress(job_id: str) -> str:
    """ARQ's lock held while an attempt runs."""
    return in_progress_key_prefix + job_id


def arq_retry(job_id: str) -> str:
    """ARQ's pickup counter: the number of attempts started. jobsvc counts them in the job's meta
    (``tries``) instead, and reads this only for a job an earlier version claimed."""
    return retry_key_prefix + job_id


def arq_queue(queue: str) -> str:
    """ARQ's sorted set of waiting job ids (score: due time in ms). ``default`` is ARQ's own queue."""
    return default_queue_name if queue == DEFAULT_QUEUE else f"{default_queue_name}:{queue}"


#: SCAN pattern matching ARQ's queues other than ``arq:queue`` (``_queue_name`` of ARQ's producers)
ARQ_NAMED_QUEUE_PATTERN = f"{default_queue_name}:*"

#: the job ids jobsvc accepts (the API's, and what an ARQ producer's ``_job_id`` must match)
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def job_meta(job_id: str) -> str:
    """Hash of what ARQ does not keep: queue, priority, schedule, start time, attempts started, progress."""
    return f"{PREFIX}job:{job_id}"


#: the tenant of the bootstrap admin key, of scheduled jobs, and of everything written before tenants
DEFAULT_TENANT = "default"
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _tenant(tenant: str) -> str:
    """A tenant name, checked again here because it becomes part of keys."""
    if not TENANT_NAME.match(tenant):
        raise ValueError(f"not a tenant name: {tenant!r}")
    return tenant


#: prefix of the tenants' listing indexes, for scripts: ``<prefix><tenant>`` is ``index_all``
INDEX_PREFIX = f"{PREFIX}index:t:"


def index_all(tenant: str) -> str:
    """Sorted set of a tenant's job ids by creation time (ms), for listing newest first."""
    return f"{INDEX_PREFIX}{_tenant(tenant)}"


def index_by_type(tenant: str, job_type: str) -> str:
    return f"{PREFIX}index:t:{_tenant(tenant)}:type:{job_type}"


def index_by_queue(tenant: str, queue: str) -> str:
    return f"{PREFIX}index:t:{_tenant(tenant)}:queue:{queue}"


def index_by_status(tenant: str, status: str) -> str:
    """A tenant's ended jobs with one outcome (succeeded, failed, cancelled), scored as in ``index_all``:
    written when the job ends (record_outcome.lua), so that listing by an end status reads no other job."""
    return f"{PREFIX}index:t:{_tenant(tenant)}:status:{status}"


def idempotency(tenant: str, key: str) -> str:
    """The record of a tenant's ``Idempotency-Key``; the client's string is hashed, never used raw."""
    digest = hashlib.sha256(f"{_tenant(tenant)}\x00{key}".encode()).hexdigest()
    return f"{PREFIX}idempotency:{digest}"


#: SCAN pattern matching every listing index.
INDEX_PATTERN = f"{PREFIX}index*"

#: sorted set of live workers: worker id -> last heartbeat (ms)
WORKERS = f"{PREFIX}workers"


def worker_record(worker_id: str) -> str:
    """Hash describing one worker (host, pid, queues, counters); expires when heartbeats stop."""
    return f"{PREFIX}worker:{worker_id}"


def job_attempts(job_id: str) -> str:
    """List of the job's failed attempts, one JSON object each."""
    return f"{PREFIX}attempts:{job_id}"


def dead_letters(tenant: str) -> str:
    """Sorted set of a tenant's jobs that failed for good: job id -> when (ms)."""
    return f"{DEAD_LETTERS_PREFIX}{_tenant(tenant)}"


#: prefix of the dead-letter sets, for scripts
DEAD_LETTERS_PREFIX = f"{PREFIX}dead:"


# -- queues: how waiting jobs are ordered and claimed ------------------------------------------------------
#
# A waiting job stays in ARQ's queue (score: due time) from submit to end, as ARQ keeps it, so ARQ's ``Job``
# still reads its status. Beside it, jobsvc orders and hands out work with these structures:

#: prefix of ARQ's in-progress locks, for scripts that build them from job ids
ARQ_IN_PROGRESS_PREFIX = in_progress_key_prefix
#: prefix of jobsvc's per-job hashes, for scripts that build them from job ids
JOB_META_PREFIX = f"{PREFIX}job:"


def ready(queue: str) -> str:
    """Sorted set of due jobs (score: priority band, then arrival order)."""
    return f"{PREFIX}ready:{queue}"


def deferred(queue: str) -> str:
    """Sorted set of jobs due later (score: due ms * 10 + (9 - priority))."""
    return f"{PREFIX}deferred:{queue}"


def running(queue: str) -> str:
    """Sorted set of jobs being run (score: when their lease expires, ms)."""
    return f"{PREFIX}running:{queue}"


#: sorted set: queue name -> the earliest moment (ms) a deferred job of the queue falls due or a lease of
#: the queue lapses, or earlier. Claims set it exactly; every other writer only lowers it. Idle workers
#: read it at each heartbeat instead of scanning every queue's sets.
TIMERS = f"{PREFIX}timers"


def wake(queue: str) -> str:
    """List holding at most one token: pushed when work arrives, popped (blocking) by idle workers."""
    return f"{PREFIX}wake:{queue}"


def fair_share(queue: str) -> str:
    """Hash of a queue's fair-share clocks (lua/includes/fair_tag.lua): ``<tenant>|<priority>`` -> the
    virtual tag of that tenant's last job placed at that priority, ``|<priority>`` -> the tag of the
    job of that priority claimed last (the queue's virtual time)."""
    return f"{PREFIX}fair:{queue}"


#: a tenant's fair-share weight ranges from 1 to this; its jobs are this / weight apart in virtual time
MAX_TENANT_WEIGHT = 100
#: the source of lease tokens for claims sent without a request id (a worker's claims number their jobs
#: after the request's own id): each holds the next, in its job's in-progress lock (fencing)
LEASE_SEQUENCE = f"{PREFIX}lease_seq"
#: hash: queue -> epoch ms when an operator paused it; no worker starts a job from a queue named here
PAUSED_QUEUES = f"{PREFIX}paused"

#: hash: queue -> how many entries of the queue's ARQ sorted set (``arq_queue``) jobsvc wrote; each such
#: job's meta holds ``ARQ_ENTRY_FIELD`` (the queue it was counted in). ZCARD minus the count is what ARQ's
#: own producers enqueued (``jobs.engine.arq_intake``).
ARQ_OWNED = f"{PREFIX}arq_owned"
ARQ_ENTRY_FIELD = "arq_entry"


def intake_lock(queue: str) -> str:
    """The worker looking for ARQ producers' jobs in ``queue`` (one at a time); expires by itself."""
    return f"{PREFIX}intake:{queue}"


#: prefix of the keys behind rate and concurrency limits, built by the claim script from the limit's name
LIMIT_PREFIX = f"{PREFIX}limit:"
#: set of the limits' names (a type, or ``type:key digest``) under which jobs are parked: the workers'
#: heartbeats let them go where a limit was raised or removed (readmit_parked.lua)
PARKED_LIMITS = f"{PREFIX}parked_limits"


def dependents(job_id: str) -> str:
    """Set of the jobs waiting for ``job_id`` to succeed."""
    return f"{PREFIX}dependents:{job_id}"


#: prefix of the dependents sets, for scripts
DEPENDENTS_PREFIX = f"{PREFIX}dependents:"

#: sorted set of ended jobs whose dependents still have to be released or cancelled (score: when, ms)
SETTLING = f"{PREFIX}settling"


#: prefix of the per-queue, per-minute outcome counts, for scripts
STATS_PREFIX = f"{PREFIX}stats:"


def queue_stats(queue: str, minute: int) -> str:
    """Hash of one minute's outcomes in ``queue``: succeeded, failed, cancelled counts."""
    return f"{STATS_PREFIX}{queue}:{minute}"


#: hash of the cluster's job counters, written by the scripts that submit, start and end jobs; its fields
#: are named by ``jobs.engine.metrics`` (type, queue and outcome, never a job id)
METRICS = f"{PREFIX}metrics"

#: prefix of the per-queue sorted sets of dead letters (job id -> when, ms), beside the per-tenant ones
DEAD_BY_QUEUE_PREFIX = f"{PREFIX}dead:q:"


def dead_letters_in_queue(queue: str) -> str:
    return f"{DEAD_BY_QUEUE_PREFIX}{queue}"


#: events kept per tenant stream (``XADD ... MAXLEN ~``): about a day of a busy tenant's reconnects
EVENTS_RETAINED = 10_000

#: prefix of the tenants' event streams, for scripts
EVENTS_PREFIX = f"{PREFIX}events:t:"


def events(tenant: str) -> str:
    """Stream of a tenant's job events (status changes, progress), trimmed to about the newest
    ``JOBSVC_EVENTS_RETAINED``; each entry's one field ``d`` holds the event as JSON."""
    return f"{EVENTS_PREFIX}{_tenant(tenant)}"


def schedule_state(name: str) -> str:
    """Hash of one schedule's last tick, its job and the ticks it skipped."""
    return f"{PREFIX}schedule:{name}"


# -- keys and tenants --------------------------------------------------------------------------------------


def api_key(key_id: str) -> str:
    """Hash describing one API key: tenant, scopes, creation time, and the SHA-256 of its secret."""
    return f"{PREFIX}apikey:{key_id}"


#: sorted set of API key ids by creation time (ms)
API_KEYS = f"{PREFIX}apikeys"


def dashboard_session(digest: str) -> str:
    """Hash of one dashboard session, under the SHA-256 of its cookie's id: tenant, scopes, key id, CSRF
    token, end (ms); expires then."""
    return f"{PREFIX}dashboard:session:{digest}"


#: prefix of the per-tenant counters and settings, for scripts: ``<prefix><tenant>:open`` and so on
TENANT_PREFIX = f"{PREFIX}tenant:"


def tenant_open_jobs(tenant: str) -> str:
    """Counter of a tenant's jobs that have not ended (its quota of open jobs)."""
    return f"{TENANT_PREFIX}{_tenant(tenant)}:open"


def tenant_kept(tenant: str) -> str:
    """Hash of what a tenant keeps in Redis (its storage budget): ``jobs`` (waiting, running and ended jobs
    whose records have not expired) and ``bytes`` (of their job and result records). Beside it,
    ``<name>:until``, a sorted set of expiry buckets (bucket -> the ms its records are gone by), and
    ``<name>:<bucket>``, a hash of the jobs and bytes that expire in it, taken off the totals then."""
    return f"{TENANT_PREFIX}{_tenant(tenant)}:kept"


#: width of a tenant's expiry buckets (keys.tenant_kept): ended jobs leave its budget at most this late
KEPT_BUCKET_MS = 10 * 60 * 1000


def tenant_quotas(tenant: str) -> str:
    """Hash of a tenant's quotas set by an admin (unset fields: the settings' defaults)."""
    return f"{TENANT_PREFIX}{_tenant(tenant)}:quotas"


def tenant_webhook_secrets(tenant: str) -> str:
    """Hash of a tenant's webhook signing secrets, sealed (jobs.engine.webhook_secrets): ``current``, and
    after a rotation ``previous`` with ``previous_until_ms``, the end of its grace period."""
    return f"{TENANT_PREFIX}{_tenant(tenant)}:webhook-secrets"


def auth_failures(client: str, minute: int) -> str:
    """Counter of the failed authentications from one client address in one minute (epoch minutes); the
    address is hashed into the name."""
    digest = hashlib.sha256(client.encode()).hexdigest()[:24]
    return f"{PREFIX}authfail:{digest}:{minute}"


def tallied(worker_id: str) -> str:
    """The number of the last metrics batch a worker added (add_tally.lua): a batch sent again is not
    added twice. Lives as long as a worker may take to send a batch again."""
    return f"{PREFIX}tallied:{worker_id}"


#: how long add_tally.lua remembers a worker's last batch: longer than any partition a worker outlives
TALLIED_MEMORY_MS = 86_400_000


#: stream of the admins' and operators' actions (service/stores/audit_log.py)
AUDIT_LOG = f"{PREFIX}audit"


#: sorted set of the tenants that have had jobs: tenant -> first seen (ms)
TENANTS = f"{PREFIX}tenants"


#: prefixes of the memory of recent releases and claims (``releases_remembered``, ``claims_remembered``)
RELEASES_REMEMBERED_PREFIX = f"{PREFIX}released:"
CLAIMS_REMEMBERED_PREFIX = f"{PREFIX}claimed:"


#: the field of a job's meta holding the lease token and reply of the release that last changed the job,
#: so that a release sent again (redis-py resends a command whose connection dropped) answers as the
#: first did and changes nothing: written with the job's outcome in the same ``HSET``, so remembering costs
#: an ended job no write of its own
RELEASED_FIELD = "released"


def releases_remembered(stretch: int) -> str:
    """The releases of one stretch of ``RESEND_MEMORY_MS`` (``stretch``: epoch ms // RESEND_MEMORY_MS)
    whose job has no meta to remember them in (deleted while it ran), job id -> the lease token and reply.
    One hash a stretch, which expires one stretch after its own ends (resend_memory.lua)."""
    return f"{RELEASES_REMEMBERED_PREFIX}{stretch}"


def claims_remembered(worker_id: str) -> str:
    """A worker's last claim request that took jobs: msgpack of its reply (without the job records) and
    its id (``<worker>:<n>``), so that the same request sent again answers with the jobs the first one
    took instead of taking more. A worker sends one claim at a time, and a resend is of its last: one key
    a worker, overwritten by each claim that takes jobs (one write), expiring ``2 * RESEND_MEMORY_MS``
    after the last."""
    return f"{CLAIMS_REMEMBERED_PREFIX}{worker_id}"


#: how long a release's or a claim's reply is kept at least for a resend of it (ms; a release's, at most
#: twice that, when its job has no meta to keep it in; a claim's, twice that): redis-py resends at once
RESEND_MEMORY_MS = 10_000

#: the worker sweeping the queues for jobs past their queued expiry (jobs.engine.sweep), one at a time
SWEEP_LOCK = f"{PREFIX}sweep"
