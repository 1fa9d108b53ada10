"""Python's side of the queue scripts (``jobs.engine.lua``), shared by the API and the workers.

:class:`JobQueues` wraps each script in a typed call; :class:`NewJob` is a validated job ready to enqueue;
:func:`settle_dependents` releases or cancels the jobs that waited for one that ended. A script's raw reply
becomes a typed value in its ``decode_<script>`` function, the only place that reads it, so what a script's
header lists and what Python expects are compared in one place; anything else is an :class:`UnexpectedReply`.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

import msgpack
from arq.jobs import serialize_job, serialize_result
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from jobs.definition import JobType
from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.codec import deserialize, serialize
from jobs.engine.functions import LuaFunction, missing_function
from jobs.engine.metrics import TallyBatch
from jobs.engine.records import CANCELLED_ERROR_TYPE, attempts_started
from jobs.engine.script_batches import ScriptBatcher
from jobs.limits import partition_of


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class NewJob:
    """A validated submission, ready to enqueue."""

    type: str
    params: dict[str, Any]
    queue: str
    priority: int
    run_at_ms: int | None
    max_attempts: int
    timeout_s: float
    retention_s: int
    #: {"base_s", "cap_s"} overriding the type's retry policy
    backoff: dict[str, float] | None = None
    #: ids of jobs that must succeed before this one starts
    depends_on: tuple[str, ...] = ()
    #: which partition of its type's rate/concurrency limit the job counts against ('' for the whole type)
    limit_key: str = ""
    #: meta fields linking the job to others, e.g. ``{"replay_of": <id>}`` for a job run again
    links: dict[str, str] = field(default_factory=dict)
    #: who the job belongs to: only keys of this tenant see it
    tenant: str = keys.DEFAULT_TENANT


def new_job(
    job_type: JobType[Any, Any],
    params: BaseModel,
    *,
    default_timeout_s: float,
    default_retention_s: int,
    queue: str | None = None,
    priority: int = 5,
    run_at_ms: int | None = None,
    max_attempts: int | None = None,
    backoff: dict[str, float] | None = None,
    depends_on: tuple[str, ...] = (),
    links: dict[str, str] | None = None,
    tenant: str = keys.DEFAULT_TENANT,
) -> NewJob:
    """A job of ``job_type`` with validated ``params``, ready to enqueue."""
    return NewJob(
        type=job_type.name,
        params=params.model_dump(mode="json"),
        queue=queue or job_type.queue,
        priority=priority,
        run_at_ms=run_at_ms,
        max_attempts=max_attempts or job_type.max_attempts,
        backoff=backoff,
        timeout_s=job_type.timeout_s or default_timeout_s,
        retention_s=int(job_type.keep_result_s or default_retention_s),
        depends_on=depends_on,
        limit_key=partition_of(job_type.limit, params),
        links=links or {},
        tenant=tenant,
    )


#: a tenant's storage budget unless set otherwise: at most about 3.7 GB of Redis with the indexes and
#: meta around the records (docs/SCALING.md), so that no one tenant fills a 16 GB primary
DEFAULT_MAX_KEPT_JOBS = 2_000_000
DEFAULT_MAX_KEPT_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Quotas:
    """A tenant's default quotas and storage budget (an admin may set others per tenant)."""

    max_open_jobs: int
    submits_per_s: int
    #: jobs kept in Redis, ended ones included until their records expire
    max_kept_jobs: int = DEFAULT_MAX_KEPT_JOBS
    #: bytes of job and result records kept in Redis
    max_kept_bytes: int = DEFAULT_MAX_KEPT_BYTES

    @property
    def packed(self) -> str:
        """As the scripts take them (over_quota.lua): one argument."""
        return f"{self.max_open_jobs} {self.submits_per_s} {self.max_kept_jobs} {self.max_kept_bytes}"


def job_arguments(job: NewJob) -> dict[str, Any]:
    """The keyword arguments ARQ stores and hands to the job type's adapter."""
    arguments: dict[str, Any] = {"params": job.params, "max_attempts": job.max_attempts}
    if job.backoff is not None:
        arguments["backoff"] = job.backoff
    if job.depends_on:
        arguments["depends_on"] = list(job.depends_on)
    if job.tenant != keys.DEFAULT_TENANT:
        arguments["tenant"] = job.tenant
    return arguments


#: jobs per submit script in a batch: each script holds Redis for its whole chunk, so a chunk stays small
SUBMIT_MANY_CHUNK = 200


@dataclass(frozen=True)
class Written:
    """What an enqueue wrote: the job's creation and due times (ms)."""

    created_ms: int
    due_ms: int


@dataclass(frozen=True)
class EnqueueCall:
    """A job as the enqueue scripts take it: index keys and arguments."""

    index_keys: list[str]
    args: list[str | int | bytes]
    written: Written
    tenant: str
    #: bytes of the job's record (ARQ's, params included): what its tenant's storage budget counts
    size: int
    queue: str
    priority: int

    @property
    def packed(self) -> bytes:
        """The arguments as the scripts unpack them: one msgpack array of strings (no bin type: Lua's
        cmsgpack reads raw strings), as they would have been sent one by one."""
        strings = [arg if isinstance(arg, bytes) else str(arg) for arg in self.args]
        return typing.cast(bytes, msgpack.packb(strings, use_bin_type=False))


def enqueue_call(
    job: NewJob, job_id: str, *, queued_expiry_ms: int, created_ms: int | None = None
) -> EnqueueCall:
    """``created_ms``: when the job was first enqueued, if not now (a job of ARQ's own producers)."""
    created = now_ms() if created_ms is None else created_ms
    due = max(job.run_at_ms or created, created)
    # the record outlives the job's expiry long enough for a sweep to end it (jobs.engine.sweep)
    job_ttl_ms = due - created + queued_expiry_ms + EXPIRY_MARGIN_MS
    meta_ttl_ms = job_ttl_ms + int(job.timeout_s * 1000) + job.retention_s * 1000
    record = serialize_job(job.type, (), job_arguments(job), None, created, serializer=serialize)
    meta: dict[str, str | int] = {}  # type, queue, priority and tenant go in their own arguments
    if job.run_at_ms is not None:
        meta["scheduled_for"] = due
    if job.limit_key:
        meta["limit_key"] = job.limit_key
    meta.update(job.links)
    args: list[str | int | bytes] = [
        job_id, record, due, job_ttl_ms, meta_ttl_ms, created, job.queue, job.priority, job.tenant, job.type,
        len(job.depends_on), *job.depends_on,
        *[str(part) for pair in meta.items() for part in pair],
    ]  # fmt: skip
    index_keys = [
        keys.index_all(job.tenant),
        keys.index_by_type(job.tenant, job.type),
        keys.index_by_queue(job.tenant, job.queue),
    ]
    return EnqueueCall(
        index_keys=index_keys,
        args=args,
        written=Written(created_ms=created, due_ms=due),
        tenant=job.tenant,
        size=len(record),
        queue=job.queue,
        priority=job.priority,
    )


# -- the scripts' replies, typed: each decoded by one function below, and nowhere else -------------------

#: what a submit script answers for one job (``lua/submit.lua``'s header says when)
EnqueueOutcome = Literal["created", "exists", "unknown_parent", "parent_failed", "parent_cancelled"]
QuotaOutcome = Literal[
    "queue_not_allowed",
    "priority_not_allowed",
    "over_open",
    "over_rate",
    "over_kept_jobs",
    "over_kept_bytes",
    "over_budget",
]
SubmitOutcome = Literal[EnqueueOutcome, QuotaOutcome, "duplicate", "gone", "replayed"]
ParentsOutcome = Literal["ok", "unknown_parent", "parent_failed", "parent_cancelled"]
TickOutcome = Literal["created", "taken", "skipped", "exists"]
ReleaseOutcome = Literal["ended", "settle", "ended_earlier", "again", "gone", "stale"]
CancelOutcome = Literal["cancelled", "finished", "running", "missing"]


class UnexpectedReply(RuntimeError):
    """A script answered what its header does not list: the Lua and its Python side disagree."""


class SubmitReply(NamedTuple):
    """A submit's outcome and its detail: how many parents a ``created`` job waits for, the earlier
    submit's record for a ``duplicate``, the parent's id for a parent's refusal, the ms until a submit is
    allowed for ``over_rate``, the budget for ``over_kept_*`` and ``over_budget``, else ''."""

    outcome: SubmitOutcome
    detail: str


class QuotaRefusal(NamedTuple):
    """Why a tenant may not submit now; for ``over_rate``, the ms until it may; for ``over_kept_jobs``,
    ``over_kept_bytes`` and ``over_budget`` (the submit alone is larger than the bytes budget), the
    budget; the queue for ``queue_not_allowed``, the tenant's highest for ``priority_not_allowed``;
    else ''."""

    outcome: QuotaOutcome
    detail: str


class ParentsVerdict(NamedTuple):
    """Whether a job may depend on its parents: ``ok``, or the refusal and the parent's id."""

    outcome: ParentsOutcome
    detail: str


@dataclass(frozen=True)
class Claim:
    """A job a worker took: its id, ARQ queue score, queue and concurrency slot ('' for none), and what
    the claim read for ARQ's ``run_job`` (``None`` for a claim made elsewhere)."""

    job_id: str
    score: int
    queue: str
    slot: str
    start: ClaimedStart | None = None
    #: the job's type, and how long it waited from due to claimed (ms), for the worker's metrics tally
    job_type: str = ""
    waited_ms: int = 0
    #: when the claim was read (``time.monotonic()``): the start of its run time
    claimed_at: float = field(default_factory=time.monotonic)
    #: the lease token its lock holds: renewals and the release of this attempt bring it, and change
    #: nothing once another claim holds the job ('' for a claim made elsewhere)
    token: str = ""


#: the lease token of the attempt the current task runs ('' outside a claimed attempt): what it writes
#: while it runs (progress) is refused once another claim holds its job
attempt_lease_token: contextvars.ContextVar[str] = contextvars.ContextVar("jobsvc_lease_token", default="")


@dataclass(frozen=True)
class ClaimedStart:
    """The replies of ARQ's first round trip in ``run_job``, read by the claim: the job's record (empty
    when it is gone), its attempt number (already counted) and whether an abort was waiting for it."""

    record: bytes
    job_try: int
    aborted: bool


class ClaimRequest(TypedDict):
    """What a worker's claim asks for (JobQueues.claim, JobQueues.claim_after_wait)."""

    lease_ms: int
    free: int
    limits: str
    queues: Iterable[tuple[str, int]]
    credits: dict[str, int]
    request_id: str


@dataclass(frozen=True)
class ClaimReply:
    """What a claim took, when its queues next need a look (ms, None: not before new work), and the
    queues' round-robin credits for the next claim."""

    claims: list[Claim]
    next_due_ms: int | None
    credits: dict[str, int]


def _text(raw: Any, script: str) -> str:
    if not isinstance(raw, bytes):
        raise UnexpectedReply(f"{script}: {raw!r} where a string was expected")
    return raw.decode()


def _values(outcomes: Any) -> frozenset[str]:
    """A ``Literal`` type's values, taken once: hashing the type itself walks them, and a batch's replies
    are checked one by one."""
    return frozenset(typing.get_args(outcomes))


ENQUEUE_OUTCOMES = _values(EnqueueOutcome)
QUOTA_OUTCOMES = _values(QuotaOutcome)
SUBMIT_OUTCOMES = _values(SubmitOutcome)
PARENTS_OUTCOMES = _values(ParentsOutcome)
TICK_OUTCOMES = _values(TickOutcome)
RELEASE_OUTCOMES = _values(ReleaseOutcome)
CANCEL_OUTCOMES = _values(CancelOutcome)


def _one_of(raw: Any, outcomes: frozenset[str], script: str) -> Any:
    """``raw`` decoded, when it is one of ``outcomes``."""
    text = _text(raw, script)
    if text not in outcomes:
        raise UnexpectedReply(f"{script}: {text!r} is none of {sorted(outcomes)}")
    return text


def _pair(raw: Any, outcomes: frozenset[str], script: str) -> tuple[Any, str]:
    """An ``{outcome, detail}`` reply."""
    if not isinstance(raw, list) or len(raw) != 2:
        raise UnexpectedReply(f"{script}: {raw!r} is not {{outcome, detail}}")
    return _one_of(raw[0], outcomes, script), _text(raw[1], script)


def decode_submit(raw: Any) -> SubmitReply:
    return SubmitReply(*_pair(raw, SUBMIT_OUTCOMES, "submit"))


def decode_submit_many(raw: Any) -> list[SubmitReply] | QuotaRefusal:
    """One reply per job, or the quotas' refusal of the whole batch (a pair of strings, not of pairs)."""
    if isinstance(raw, list) and raw and isinstance(raw[0], bytes):
        return QuotaRefusal(*_pair(raw, QUOTA_OUTCOMES, "submit_many"))
    return [SubmitReply(*_pair(reply, ENQUEUE_OUTCOMES, "submit_many")) for reply in raw]


def decode_reserve_quota(raw: Any) -> QuotaRefusal | None:
    return QuotaRefusal(*_pair(raw, QUOTA_OUTCOMES, "reserve_quota")) if raw else None


class Kept(NamedTuple):
    """What a tenant keeps in Redis, against its storage budget."""

    jobs: int
    bytes: int


def decode_read_kept(raw: Any) -> Kept:
    jobs, size = raw
    return Kept(jobs=int(jobs), bytes=int(size))


def decode_check_parents(raw: Any) -> ParentsVerdict:
    return ParentsVerdict(*_pair(raw, PARENTS_OUTCOMES, "check_parents"))


def decode_schedule_tick(raw: Any) -> TickOutcome:
    outcome, _ = _pair(raw, TICK_OUTCOMES, "schedule_tick")
    return typing.cast(TickOutcome, outcome)


def decode_claim(raw: Any, queue_names: Sequence[str]) -> ClaimReply:
    """``queue_names``: the queues, in the order the claim was given them."""
    raw_claims, next_due, credits = raw
    claims = [
        Claim(
            job_id=i.decode(),
            score=int(float(s)),
            queue=q.decode(),
            slot=slot.decode(),
            start=ClaimedStart(record=record, job_try=int(tries), aborted=bool(aborted)),
            job_type=job_type.decode(),
            waited_ms=int(waited),
            token=token.decode(),
        )
        for i, s, q, slot, record, tries, aborted, job_type, waited, token in raw_claims
    ]
    due = int(next_due)
    new_credits = {name: int(credit) for name, credit in zip(queue_names, credits, strict=True)}
    return ClaimReply(claims=claims, next_due_ms=due if due >= 0 else None, credits=new_credits)


def _claim_args(
    lease_ms: int, free: int, limits: str, request_id: str, served: Sequence[tuple[str, int]],
    credits: dict[str, int],
) -> list[str | int]:  # fmt: skip
    """claim.lua's ARGV."""
    args: list[str | int] = [lease_ms, free, limits, request_id]
    for name, weight in served:
        args += [name, weight, credits.get(name, 0)]
    return args


def _claimed(raw: Any, served: Sequence[tuple[str, int]], credits: dict[str, int]) -> ClaimReply:
    """claim.lua's reply, its queues' round-robin credits carried into ``credits`` for the next claim."""
    reply = decode_claim(raw, [name for name, _ in served])
    credits.update(reply.credits)
    return reply


def decode_renew_leases(raw: Any) -> list[str]:
    """The ids of the jobs whose leases were lost."""
    if not isinstance(raw, list):
        raise UnexpectedReply(f"renew_leases: {raw!r}, not a list")
    return [_text(job_id, "renew_leases") for job_id in raw]


def decode_release_claim(raw: Any) -> ReleaseOutcome:
    return typing.cast(ReleaseOutcome, _one_of(raw, RELEASE_OUTCOMES, "release_claim"))


def decode_cancel_waiting(raw: Any) -> CancelOutcome:
    return typing.cast(CancelOutcome, _one_of(raw, CANCEL_OUTCOMES, "cancel_waiting"))


def decode_purge_job(raw: Any) -> bool:
    """Whether the job was the tenant's and is deleted."""
    return _flag(raw, "purge_job")


def decode_report_progress(raw: Any) -> bool:
    """Whether the progress was recorded and told (False: the job's meta is gone)."""
    return _flag(raw, "report_progress")


def decode_update_meta(raw: Any) -> bool:
    """Whether the fields were written (False: the job's meta is gone)."""
    return _flag(raw, "update_meta")


def _flag(raw: Any, script: str) -> bool:
    if raw not in (0, 1):
        raise UnexpectedReply(f"{script}: {raw!r}, not 0 or 1")
    return bool(raw)


@dataclass(frozen=True)
class Settlement:
    """One step of settling a job's dependents: whether nothing is left to do, and the dependents to
    cancel now (its outcome was not a success)."""

    done: bool
    to_cancel: list[str]


def decode_settle_dependents(raw: Any) -> Settlement:
    if not isinstance(raw, list) or len(raw) != 2 or raw[0] not in (0, 1):
        raise UnexpectedReply(f"settle_dependents: {raw!r}, not {{done, ids}}")
    return Settlement(done=raw[0] == 1, to_cancel=[_text(child, "settle_dependents") for child in raw[1]])


def decode_count(raw: Any, script: str) -> int:
    if not isinstance(raw, int):
        raise UnexpectedReply(f"{script}: {raw!r}, not a count")
    return raw


def decode_delete_dead_letters(raw: Any) -> int:
    """How many of the jobs were still dead letters, now deleted."""
    return decode_count(raw, "delete_dead_letters")


def decode_readmit_parked(raw: Any) -> int:
    """How many parked jobs went back in line."""
    return decode_count(raw, "readmit_parked")


def decode_forget_idempotency_key(raw: Any) -> bool:
    """Whether the record was deleted (False: it changed since it was read, or is gone)."""
    return _flag(raw, "forget_idempotency_key")


@dataclass(frozen=True)
class ReplicaAcks:
    """How many replicas must have a submit before it counts as accepted (0: the primary's word is
    enough), and how long to wait for them (ms)."""

    replicas: int = 0
    timeout_ms: int = 1000


NO_REPLICA_ACKS = ReplicaAcks()
#: dependents one call of the settle script handles: a fan-out of any size never holds Redis for long
SETTLE_STEP = 1000


class QuotaRefused(Exception):
    """A batch its tenant's quotas refused: nothing of it was written."""

    def __init__(self, refusal: QuotaRefusal) -> None:
        super().__init__(f"{refusal.outcome}: {refusal.detail}")
        self.refusal = refusal


class ReplicasBehind(Exception):
    """A submit that reached the primary, but not ``needed`` replicas in time: a failover now could lose
    it, so it is not acknowledged. Sending it again with the same idempotency key is safe."""

    def __init__(self, acked: int, needed: int) -> None:
        super().__init__(f"{acked} of {needed} replicas confirmed the write in time")
        self.acked = acked
        self.needed = needed


#: how long a waiting job's record outlives its queued expiry: time for the sweep to end it as expired
EXPIRY_MARGIN_MS = 10 * 60 * 1000


class JobQueues:
    """The queue scripts, bound to one Redis connection pool."""

    def __init__(self, redis: Redis, *, acks: ReplicaAcks = NO_REPLICA_ACKS) -> None:
        self.redis = redis
        self.acks = acks
        self._submit = LuaFunction(redis, scripts.HOT_PATH, "submit")
        self._submit_many = redis.register_script(scripts.SUBMIT_MANY)
        self._reserve_quota = redis.register_script(scripts.RESERVE_QUOTA)
        self._check_parents = redis.register_script(scripts.CHECK_PARENTS)
        self._schedule_tick = redis.register_script(scripts.SCHEDULE_TICK)
        self._claim = LuaFunction(redis, scripts.HOT_PATH, "claim")
        self._renew_leases = redis.register_script(scripts.RENEW_LEASES)
        self._readmit_parked = redis.register_script(scripts.READMIT_PARKED)
        #: a worker ends many attempts at once: their releases go to Redis together
        self._release_claim = ScriptBatcher(LuaFunction(redis, scripts.HOT_PATH, "release_claim"))
        #: and so do their progress reports (jobs that started together report together)
        self._report_progress = ScriptBatcher(LuaFunction(redis, scripts.HOT_PATH, "report_progress"))
        self._cancel_waiting = redis.register_script(scripts.CANCEL_WAITING)
        self._settle_dependents = redis.register_script(scripts.SETTLE_DEPENDENTS)
        self._add_tally = redis.register_script(scripts.ADD_TALLY)

    async def submit(
        self, call: EnqueueCall, *, quotas: Quotas | None = None, idempotency_key: str | None = None,
        idempotency_value: str = "", idempotency_ttl_ms: int = 0, runs_again: str = "",
    ) -> SubmitReply:  # fmt: skip
        """Enqueue one job within its tenant's ``quotas`` (None: unchecked), once per ``idempotency_key``.
        ``runs_again``: the ended job this one runs again, marked so (and out of the dead letters) in the
        same script, or refused (``gone``, ``replayed``) with nothing written."""
        idem_key = keys.idempotency(call.tenant, idempotency_key or "")
        value = idempotency_value if idempotency_key else ""
        script_keys = [*call.index_keys, idem_key]
        args: list[str | int | bytes] = [
            value,
            idempotency_ttl_ms,
            quotas.packed if quotas else "",
            call.packed,
            runs_again,
        ]
        if not self.acks.replicas:  # one FCALL
            return decode_submit(await self._submit(keys=script_keys, args=args))
        async with self.redis.pipeline(transaction=False) as pipe:
            self._submit.queue(pipe, script_keys, args)
            try:
                replies = await self._with_replica_acks(pipe)
            except ResponseError as exc:
                if not missing_function(exc):
                    raise
                await self._submit.load()  # nothing ran: the server lacked the library; send it again
                self._submit.queue(pipe, script_keys, args)
                replies = await self._with_replica_acks(pipe)
        return decode_submit(replies[0])

    async def reserve(self, calls: Sequence[EnqueueCall], quotas: Quotas) -> QuotaRefusal | None:
        """Count a batch's submits (its jobs, their bytes, queues and priorities) against its tenant's
        policy and quotas at once; None when allowed, else the refusal."""
        size = sum(call.size for call in calls)
        top = max(call.priority for call in calls)
        used = sorted({call.queue for call in calls})
        args: list[str | int] = [calls[0].tenant, len(calls), size, quotas.packed, top, *used]
        return decode_reserve_quota(await self._reserve_quota(args=args))

    async def check_parents(self, tenant: str, parent_lists: Sequence[Sequence[str]]) -> list[ParentsVerdict]:
        """For each list of parents, in one pipelined round trip: ``ok``, or the refusal a submit naming
        them would meet."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for parent_ids in parent_lists:
                await self._check_parents(args=[tenant, *parent_ids], client=pipe)
            replies = await pipe.execute()
        return [decode_check_parents(reply) for reply in replies]

    async def submit_many(
        self, calls: Sequence[EnqueueCall], *, quotas: Quotas | None = None
    ) -> list[SubmitReply]:
        """Enqueue several jobs of one tenant in one pipelined round trip; each job is written atomically.
        With ``quotas``, the whole batch is first counted against the tenant's (QuotaRefused, and nothing
        written, when they refuse it): in the same script when the batch fits one, else a round trip
        before (reserve)."""
        if not calls:
            return []
        tenant = calls[0].tenant
        reserve_in_script = quotas is not None and len(calls) <= SUBMIT_MANY_CHUNK
        refused = None
        if quotas is not None and not reserve_in_script:
            refused = await self.reserve(calls, quotas)
        if refused is not None:
            raise QuotaRefused(refused)
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(calls), SUBMIT_MANY_CHUNK):
                chunk = calls[start : start + SUBMIT_MANY_CHUNK]
                packed = msgpack.packb([[call.index_keys, call.packed] for call in chunk], use_bin_type=False)
                args: list[str | int | bytes] = [packed]
                if reserve_in_script and quotas is not None:
                    args += [tenant, quotas.packed]
                await self._submit_many(args=args, client=pipe)
            replies = await self._with_replica_acks(pipe)
        decoded: list[SubmitReply] = []
        for chunk_replies in map(decode_submit_many, replies):
            if isinstance(chunk_replies, QuotaRefusal):
                raise QuotaRefused(chunk_replies)
            decoded += chunk_replies
        return decoded

    async def _with_replica_acks(self, pipe: Pipeline) -> list[Any]:
        """Send ``pipe``'s writes, then (as configured) wait on the same connection until enough replicas
        have them: their replies, or ReplicasBehind."""
        if not self.acks.replicas:
            return list(await pipe.execute())
        pipe.execute_command("WAIT", self.acks.replicas, self.acks.timeout_ms)
        *replies, acked = await pipe.execute()
        if int(acked) < self.acks.replicas:
            raise ReplicasBehind(int(acked), self.acks.replicas)
        return replies

    async def schedule_tick(
        self, name: str, tick_ms: int, *, overlap: bool, call: EnqueueCall
    ) -> TickOutcome:
        """Enqueue a schedule's job for one tick: ``created``, ``taken`` (another worker did),
        ``skipped`` (its previous run has not ended and it may not overlap) or ``exists``."""
        return decode_schedule_tick(
            await self._schedule_tick(keys=call.index_keys, args=[name, tick_ms, int(overlap), call.packed])
        )

    async def claim(
        self,
        *,
        lease_ms: int,
        free: int,
        limits: str,
        queues: Iterable[tuple[str, int]],
        credits: dict[str, int],
        request_id: str = "",
    ) -> tuple[list[Claim], int | None]:
        """Take up to ``free`` ready jobs from ``queues`` (name, weight), sharing the slots by weight with
        the round-robin ``credits`` (updated in place); also the earliest time (ms) one of them needs a
        look again (a deferred job falls due or a lease lapses), if any. The same ``request_id`` sent
        again answers with the same jobs (for a resend after a dropped connection)."""
        served = list(queues)
        args = _claim_args(lease_ms, free, limits, request_id, served, credits)
        reply = _claimed(await self._claim(args=args), served, credits)
        return reply.claims, reply.next_due_ms

    async def claim_after_wait(
        self, wake_keys: Sequence[str], timeout_s: float, request: ClaimRequest
    ) -> tuple[bool, list[Claim], int | None]:
        """Wait for a wake-up token on ``wake_keys`` (``timeout_s`` at most), then claim as ``claim``
        does, in one round trip: the claim goes to the server behind the ``BLPOP``, which runs it the
        moment the wait ends, with no trip to the worker and back between a new job's wake-up and its
        claim. Whether a token came, then what ``claim`` answers."""
        served = list(request["queues"])
        credits = request["credits"]
        args = _claim_args(
            request["lease_ms"], request["free"], request["limits"], request["request_id"], served, credits
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.blpop(wake_keys, timeout=timeout_s)  # type: ignore[arg-type]  # Redis 6+ takes decimals
            self._claim.queue(pipe, args=args)
            token, raw = await pipe.execute(raise_on_error=False)
        if missing_function(raw):  # a server that lost the library (a restart without persistence)
            if isinstance(token, Exception):
                raise token
            jobs, next_due = await self.claim(**request)
            return token is not None, jobs, next_due
        if isinstance(raw, Exception):
            raise raw
        reply = _claimed(raw, served, credits)
        if isinstance(token, Exception):  # the wait failed, the claim ran: its jobs go back before the error
            await self.hand_back(reply.claims)
            raise token
        return token is not None, reply.claims, reply.next_due_ms

    async def hand_back(self, claims: Sequence[Claim]) -> None:
        """Put claimed jobs back unstarted: in line again with their attempts uncounted, or left to the
        claim that holds them now (release_claim.lua), their abort marks (which the claim took) restored."""
        if not claims:
            return
        at_ms = int(time.time() * 1000)  # as ARQ marks an abort
        aborted = {claim.job_id: at_ms for claim in claims if claim.start and claim.start.aborted}
        if aborted:
            await self.redis.zadd(keys.ABORT_SET, aborted)
        await asyncio.gather(*(self.release(claim, ended=False, handed_back=True) for claim in claims))

    async def add_tally(self, worker_id: str, batches: Sequence[TallyBatch], *, client: Redis) -> None:
        """Queue on ``client`` (a pipeline) the adding of a worker's metrics batches, each once."""
        for batch in batches:
            await self._add_tally(args=[worker_id, *batch.args], client=client)

    async def renew(
        self, lease_ms: int, claims: Iterable[Claim], *, client: Redis | None = None
    ) -> list[str] | None:
        """Extend the leases of running jobs still held; the ids of those lost (on ``client``, e.g. a
        pipeline, when given: None, its reply is then the pipeline's, for ``decode_renew_leases``)."""
        args: list[str | int] = [lease_ms]
        for claim in claims:
            args += [claim.job_id, claim.queue, claim.slot, claim.token]
        reply = await self._renew_leases(args=args, client=client)
        return decode_renew_leases(reply) if client is None else None

    async def readmit_parked(self, limits: str, *, most: int, client: Redis | None = None) -> int | None:
        """Put parked jobs back in line where their concurrency limit (in ``limits``, the claim's JSON)
        has room now, ``most`` at most; how many (on ``client``, e.g. a pipeline: None)."""
        reply = await self._readmit_parked(args=[limits, most], client=client)
        return decode_readmit_parked(reply) if client is None else None

    async def release(
        self,
        claim: Claim,
        *,
        ended: bool,
        result: bytes | None = None,
        result_ttl_ms: int = 0,
        keep_lock_ms: int | None = None,
        delay_ms: int = 0,
        handed_back: bool = False,
        outcome: str = "",
        bury_for_ms: int | None = None,
    ) -> ReleaseOutcome:
        """End an attempt: ``ended`` with its result (and outcome), or back in line after ``delay_ms``.
        Answers ``settle`` when the job ended and others wait for it."""
        return decode_release_claim(
            await self._release_claim.call(
                [
                    claim.job_id,
                    claim.queue,
                    claim.slot,
                    "finish" if ended else "again",
                    result or b"",
                    result_ttl_ms,
                    "" if keep_lock_ms is None else keep_lock_ms,
                    delay_ms,
                    int(handed_back),
                    outcome,
                    int(bury_for_ms is not None),
                    bury_for_ms or 0,
                    claim.token,
                ]
            )
        )

    async def report_progress(self, job_id: str, progress_json: str, token: str) -> bool:
        """Record a running attempt's progress (``{current, total, message}`` as JSON) and tell its
        tenant; False when the job's meta is gone or another claim holds it."""
        return decode_report_progress(await self._report_progress.call([job_id, progress_json, token]))

    async def cancel_waiting(self, job_id: str, *, message: str, retention_ms: int) -> CancelOutcome:
        """Cancel a job that has not started: ``cancelled``, or ``finished``/``running``/``missing``."""
        [outcome] = await self.cancel_waiting_many([(job_id, retention_ms)], message=message)
        return outcome

    async def cancel_waiting_many(
        self, jobs: Sequence[tuple[str, int]], *, message: str
    ) -> list[CancelOutcome]:
        """``cancel_waiting`` for each (job id, result retention ms), in two pipelined round trips."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in jobs:
                pipe.get(keys.arq_job(job_id))
                pipe.get(keys.arq_retry(job_id))
                pipe.hmget(keys.job_meta(job_id), ["queue", "tries"])
            read = await pipe.execute()
        outcomes: list[CancelOutcome | None] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for n, (job_id, retention_ms) in enumerate(jobs):
                raw, legacy, (meta_queue, tries) = read[3 * n : 3 * n + 3]
                if raw is None:
                    outcomes.append("missing")  # no record: answered without the script
                    continue
                record = cancellation_record(
                    job_id,
                    raw,
                    attempts=attempts_started(tries, legacy),
                    queue=meta_queue.decode() if meta_queue else keys.DEFAULT_QUEUE,
                    message=message,
                )
                await self._cancel_waiting(args=[job_id, record, retention_ms], client=pipe)
                outcomes.append(None)
            replies = iter(await pipe.execute())
        return [outcome or decode_cancel_waiting(next(replies)) for outcome in outcomes]

    async def settle(self, parent_id: str, *, step: int = SETTLE_STEP) -> Settlement:
        """One step (``step`` dependents at most) of settling a job's dependents: released when it
        succeeded, else named to be cancelled."""
        return decode_settle_dependents(await self._settle_dependents(args=[parent_id, step]))


def cancellation_record(job_id: str, job_raw: bytes, *, attempts: int, queue: str, message: str) -> bytes:
    """ARQ's result record for a job cancelled before it started."""
    record = deserialize(job_raw)
    return ended_record(
        job_id,
        function=record["f"],
        kwargs=record.get("k") or {},
        enqueued_ms=record["et"],
        attempts=attempts,
        arq_queue=keys.arq_queue(queue),
        error={"type": CANCELLED_ERROR_TYPE, "message": message},
    )


def ended_record(
    job_id: str,
    *,
    function: str,
    kwargs: dict[str, Any],
    enqueued_ms: int,
    attempts: int,
    arq_queue: str,
    error: dict[str, str],
) -> bytes:
    """ARQ's result record for a job that ended with ``error`` before it started."""
    result = serialize_result(
        function,
        (),
        kwargs,
        attempts,
        enqueued_ms,
        False,
        error,
        0,  # never started
        now_ms(),
        f"{job_id}:{function}",
        arq_queue,
        job_id,
        serializer=serialize,
    )
    assert result is not None, "an error record always serializes"
    return result


async def settle_dependents(
    queues: JobQueues, parent_ids: Iterable[str], retention_s: Callable[[str], int]
) -> None:
    """Release the dependents of jobs that succeeded, cancel (with the reason) those of jobs that did
    not, and so on down the chain. Safe to repeat: whatever a crash interrupts stays in the settling set."""
    redis = queues.redis
    pending = list(parent_ids)
    while pending:
        parent = pending.pop()
        while not (step := await queues.settle(parent)).done:
            if not step.to_cancel:
                continue  # a step of dependents released: on to the next
            outcome_raw = await typing.cast(
                Awaitable[bytes | None], redis.hget(keys.job_meta(parent), "outcome")
            )
            outcome = outcome_raw.decode() if outcome_raw else "ended"
            job_types = await _job_types_of(redis, step.to_cancel)
            replies = await queues.cancel_waiting_many(
                [(child, retention_s(t) * 1000) for child, t in zip(step.to_cancel, job_types, strict=True)],
                message=f"dependency {parent} {outcome}",
            )
            pending += [
                child for child, reply in zip(step.to_cancel, replies, strict=True) if reply == "cancelled"
            ]
            await typing.cast(Awaitable[int], redis.srem(keys.dependents(parent), *step.to_cancel))


async def _job_types_of(redis: Redis, job_ids: Sequence[str]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job_meta(job_id), "type")
        raw: list[bytes | None] = await pipe.execute()
    return [found.decode() if found else "" for found in raw]
