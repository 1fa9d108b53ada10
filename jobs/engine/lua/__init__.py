"""The server-side scripts: those that move jobs between queues (submit, claim, renew, release, settle,
cancel), and those that keep dead letters and tenants' records consistent.

Each runs atomically inside Redis, so the queues stay consistent however many APIs and workers race,
and each costs one round trip. Each script is a file beside this module (``claim.lua``), opening with
its KEYS, its ARGV and its replies; the helpers scripts share are in ``includes/``, and each script
includes only those it uses (``loader``). Key prefixes reach the Lua as ``${NAME}`` placeholders filled
from ``jobs.engine.keys``, so key names still live in one place. ``python -m jobs.engine.lua --dump DIR``
writes the assembled scripts, for luacheck. Their replies are decoded in ``jobs.engine.queue_ops``.

The scripts every job runs (its submit, its claim, its release, its progress reports) also form a
function library, :data:`HOT_PATH`, which the engine calls with ``FCALL`` (``jobs.engine.functions``):
a script run by ``EVALSHA`` defines each of its few dozen helpers again at every call, a library
defines them once when it loads, and that is about a tenth of those scripts' time on the server
(docs/BENCHMARKS.md). The other scripts run rarely and stay ``EVALSHA``; their tests and these
functions run the same Lua.

How a job moves (``q`` is its queue)::

    submit ──> waiting for parents ──(all succeeded)──┐
       │                                              v
       ├──> deferred:q (due later) ──(due)──> ready:q (priority, then arrival) ──(claim)──> running:q
       │                                         ^  │                                     │   │
       └─────────────────────────────────────────┘  └─(over a limit)─> parked / deferred   │   │
                 retry, hand-back, lapsed lease <────────────────────────────────────────────┘   │
                                                                    ended (result written) <─────┘

ARQ's own queue (``arq:queue``) holds the job, scored by its due time, from submit to end, as ARQ
would: ARQ's ``Job`` reads its status from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import Final

from jobs.engine import keys
from jobs.engine.lua.loader import FunctionLibrary, ScriptLoader
from jobs.engine.metrics import BUCKETS_MS

#: width of one priority band in the ready set's scores: fair-share tags (fair_tag.lua) grow by at most
#: MAX_TENANT_WEIGHT per job claimed, so a band holds 2**49 / 100 claims (18 years at 10,000 a second)
#: before they mix; ten bands stay below 2**53, the largest integer a score holds exactly
PRIORITY_BAND = 2**49


def _prefix(build: Callable[[str], str]) -> str:
    """The part of a key-building function's output before the id, e.g. ``jobsvc:ready:``."""
    marker = "\x00"
    key = build(marker)
    assert key.endswith(marker)
    return key[: -len(marker)]


#: what the scripts' ``${NAME}`` placeholders stand for
PLACEHOLDERS: Final[Mapping[str, str | int]] = {
    "PRIORITY_BAND": PRIORITY_BAND,
    "DEFAULT_QUEUE": keys.DEFAULT_QUEUE,
    "DEFAULT_TENANT": keys.DEFAULT_TENANT,
    "ARQ_JOB_PREFIX": _prefix(keys.arq_job),
    "ARQ_RESULT_PREFIX": _prefix(keys.arq_result),
    "ARQ_RETRY_PREFIX": _prefix(keys.arq_retry),
    "ARQ_IN_PROGRESS_PREFIX": _prefix(keys.arq_in_progress),
    "ARQ_DEFAULT_QUEUE": keys.arq_queue(keys.DEFAULT_QUEUE),
    "ARQ_QUEUE_PREFIX": _prefix(keys.arq_queue),
    "ABORT_SET": keys.ABORT_SET,
    "JOB_META_PREFIX": _prefix(keys.job_meta),
    "ATTEMPTS_PREFIX": _prefix(keys.job_attempts),
    "READY_PREFIX": _prefix(keys.ready),
    "DEFERRED_PREFIX": _prefix(keys.deferred),
    "RUNNING_PREFIX": _prefix(keys.running),
    "WAKE_PREFIX": _prefix(keys.wake),
    "FAIR_PREFIX": _prefix(keys.fair_share),
    "MAX_TENANT_WEIGHT": keys.MAX_TENANT_WEIGHT,
    "LEASE_SEQUENCE": keys.LEASE_SEQUENCE,
    "PAUSED_QUEUES": keys.PAUSED_QUEUES,
    "TIMERS": keys.TIMERS,
    "LIMIT_PREFIX": keys.LIMIT_PREFIX,
    "PARKED_LIMITS": keys.PARKED_LIMITS,
    "DEPENDENTS_PREFIX": _prefix(keys.dependents),
    "SETTLING": keys.SETTLING,
    "STATS_PREFIX": keys.STATS_PREFIX,
    "SCHEDULE_PREFIX": _prefix(keys.schedule_state),
    "DEAD_LETTERS_PREFIX": keys.DEAD_LETTERS_PREFIX,
    "TENANT_PREFIX": keys.TENANT_PREFIX,
    "INDEX_PREFIX": keys.INDEX_PREFIX,
    "TENANTS": keys.TENANTS,
    "KEPT_BUCKET_MS": keys.KEPT_BUCKET_MS,
    "EVENTS_PREFIX": keys.EVENTS_PREFIX,
    "EVENTS_RETAINED": keys.EVENTS_RETAINED,
    "METRICS": keys.METRICS,
    "TALLIED_PREFIX": _prefix(keys.tallied),
    "TALLIED_MEMORY_MS": keys.TALLIED_MEMORY_MS,
    "METRIC_BUCKETS_MS": ":".join(str(bound) for bound in BUCKETS_MS),
    "DEAD_BY_QUEUE_PREFIX": keys.DEAD_BY_QUEUE_PREFIX,
    "ARQ_OWNED": keys.ARQ_OWNED,
    "ARQ_ENTRY_FIELD": keys.ARQ_ENTRY_FIELD,
    "INTAKE_LOCK_PREFIX": _prefix(keys.intake_lock),
    "RELEASED_PREFIX": keys.RELEASES_REMEMBERED_PREFIX,
    "RELEASED_FIELD": keys.RELEASED_FIELD,
    "CLAIMED_PREFIX": keys.CLAIMS_REMEMBERED_PREFIX,
    "RESEND_MEMORY_MS": keys.RESEND_MEMORY_MS,
}

_LOADER = ScriptLoader(resources.files(__name__), PLACEHOLDERS)

#: every script, assembled, by file name (``claim`` for ``claim.lua``)
SCRIPTS: Final[Mapping[str, str]] = {name: _LOADER.script(name) for name in _LOADER.names()}

#: the scripts every job runs, as one function library (``FCALL``)
HOT_PATH: Final[FunctionLibrary] = _LOADER.library(
    "jobsvc", ("submit", "claim", "release_claim", "report_progress")
)

SUBMIT_MANY: Final = SCRIPTS["submit_many"]
RESERVE_QUOTA: Final = SCRIPTS["reserve_quota"]
READ_KEPT: Final = SCRIPTS["read_kept"]
READ_JOBS: Final = SCRIPTS["read_jobs"]
ADD_TALLY: Final = SCRIPTS["add_tally"]
CHECK_PARENTS: Final = SCRIPTS["check_parents"]
SCHEDULE_TICK: Final = SCRIPTS["schedule_tick"]
RENEW_LEASES: Final = SCRIPTS["renew_leases"]
READMIT_PARKED: Final = SCRIPTS["readmit_parked"]
CANCEL_WAITING: Final = SCRIPTS["cancel_waiting"]
PURGE_JOB: Final = SCRIPTS["purge_job"]
UPDATE_META: Final = SCRIPTS["update_meta"]
REPORT_PROGRESS: Final = SCRIPTS["report_progress"]
SETTLE_DEPENDENTS: Final = SCRIPTS["settle_dependents"]
ARQ_DIFFERENCES: Final = SCRIPTS["arq_differences"]
FIND_FOREIGN: Final = SCRIPTS["find_foreign"]
ADOPT_FOREIGN: Final = SCRIPTS["adopt_foreign"]
DELETE_DEAD_LETTERS: Final = SCRIPTS["delete_dead_letters"]
FORGET_IDEMPOTENCY_KEY: Final = SCRIPTS["forget_idempotency_key"]
