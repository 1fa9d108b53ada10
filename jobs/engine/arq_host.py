"""ARQ as the host of jobsvc's worker: the one module that relies on ARQ's internals.

``arq worker_settings.WorkerSettings`` builds a plain ``arq.worker.Worker``; ARQ offers no setting for
another class. :func:`adopt` finds the ``Worker`` running the ``on_startup`` hook and turns it into
jobsvc's worker class (same attributes, overridden methods). :class:`ArqHost` is that class's base: it
overrides ARQ's private methods and reads ARQ's private attributes, and hands the engine
(``jobs.engine.worker``) public names for each. A claimed job's ``run_job`` is answered its first round
trip from the claim (:class:`ClaimedStartPipeline`), which relies on the commands ARQ sends there.

Everything of ARQ that is not its documented API and that the engine relies on is listed in
:data:`ARQ_INTERNALS`, checked at every start: an ARQ release that renamed one of them would otherwise
hand the queue back to ARQ's own polling, silently bypassing leases, limits and priorities. A worker on
such an ARQ refuses to start and names what is missing (``tests/engine/test_arq_host.py``).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import typing
from collections.abc import Iterable
from signal import Signals
from typing import Any, TypeVar

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, job_key_prefix, retry_key_prefix
from arq.worker import Worker

#: Worker methods jobsvc overrides or calls, and attributes it reads or sets, beyond ARQ's documented
#: settings. Private ones are used in this module only.
ARQ_INTERNALS: tuple[str, ...] = (
    # methods overridden
    "_poll_iteration",
    "_wait_for_tasks_to_complete",
    "heart_beat",
    "run_cron",
    "finish_job",
    "finish_failed_job",
    "close",
    # methods called
    "_release_sem_dec_counter_on_complete",
    "_jobs_started",
    "_sleep_until_tasks_complete",
    "run_job",
    "handle_sig",
    # attributes
    "_pool",
    "_handle_signals",
    "_job_completion_wait",
    "job_tasks",
    "aborting_tasks",
    "tasks",
    "sem",
    "job_counter",
    "jobs_complete",
    "jobs_failed",
    "jobs_retried",
    "allow_pick_jobs",
    "allow_abort_jobs",
    "in_progress_timeout_s",
    "poll_delay_s",
    "health_check_key",
    "max_burst_jobs",
    "queue_name",
    "keep_result_s",
    "keep_result_forever",
)

#: how ARQ's worker logs the start of a job (``arq.worker``), whose arguments are hidden from logs
ARQ_START_LINE = "%6.2fs → %s(%s)%s"


def missing_arq_internals(worker: Worker) -> list[str]:
    """The names of :data:`ARQ_INTERNALS` this ARQ's worker lacks (empty on the ARQ jobsvc was built on)."""
    return [name for name in ARQ_INTERNALS if not hasattr(worker, name)]


#: in a claimed job's tasks: ARQ's key of the queue the claim took the job from
job_queue_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jobsvc_job_queue_key", default=None
)


class ArqHost(Worker):
    """ARQ's ``Worker``, with its internals under names of jobsvc's own."""

    # -- ARQ's one queue, and the several a jobsvc worker serves -----------------------------------------

    @property
    def queue_name(self) -> str:
        """ARQ's key of the worker's first queue (its health record and burst mode read it), except in a
        claimed job's tasks (:data:`job_queue_key`): there, the key of the queue the job came from, which
        ARQ's ``run_job`` writes into the job's result, so that ``Job.result_info().queue_name`` names it."""
        return job_queue_key.get() or typing.cast(str, self.__dict__["queue_name"])

    @queue_name.setter
    def queue_name(self, value: str) -> None:
        self.__dict__["queue_name"] = value

    # -- the engine implements these -------------------------------------------------------------------

    async def poll_once(self) -> None:
        """One iteration of the worker's loop: what ARQ's ``_poll_iteration`` does, jobsvc's way."""
        raise NotImplementedError

    async def before_hand_back(self) -> None:
        """Called on shutdown once the grace period is over, before ARQ cancels what still runs."""

    # -- ARQ's private methods, overridden ---------------------------------------------------------------

    async def _poll_iteration(self) -> None:
        await self.poll_once()

    async def _wait_for_tasks_to_complete(self, signum: Signals) -> None:
        await self.before_hand_back()
        await super()._wait_for_tasks_to_complete(signum)

    # -- ARQ's private methods and attributes, for the engine -------------------------------------------

    @property
    def pool(self) -> ArqRedis:
        """ARQ's pool, except for a claimed job's first use in its ``run_job`` task: that is answered
        from the claim (:class:`ClaimedStartPipeline`)."""
        return pool_for_this_task(typing.cast(ArqRedis, self._pool))

    @property
    def arq_pool(self) -> ArqRedis | None:
        """ARQ's pool itself, or None once closed (the engine's ``pool`` may answer something else)."""
        return self._pool

    def forget_pool(self) -> None:
        self._pool = None

    @property
    def handles_signals(self) -> bool:
        return bool(self._handle_signals)

    @property
    def grace_s(self) -> float:
        """How long running jobs may finish after SIGTERM (ARQ's ``job_completion_wait``)."""
        return float(self._job_completion_wait)

    def slot_freed(self) -> None:
        """A job task ended: its semaphore slot and ARQ's running count go back."""
        self._release_sem_dec_counter_on_complete()

    def jobs_started(self) -> int:
        return int(self._jobs_started())

    async def cancel_aborted_jobs(self) -> None:
        """ARQ's abort check, asking only about the jobs this worker runs: ARQ reads the whole abort set
        every time, so its cost grew with every job anyone had asked to abort."""
        running = list(self.job_tasks)
        if not running:
            return
        scores = await self.pool.zmscore(abort_jobs_ss, running)
        aborted = {job_id for job_id, score in zip(running, scores, strict=True) if score is not None}
        for job_id in aborted:
            if (task := self.job_tasks.get(job_id)) is not None:
                task.cancel()
        if aborted:
            self.aborting_tasks.update(aborted)
            await self.pool.zrem(abort_jobs_ss, *aborted)

    async def sleep_until_tasks_complete(self) -> None:
        await self._sleep_until_tasks_complete()


W = TypeVar("W", bound=ArqHost)


def adopt(ctx: dict[str, Any], worker_class: type[W]) -> W:
    """Turn the ARQ ``Worker`` running this ``on_startup`` into a ``worker_class``; refuse an ARQ that lacks
    one of :data:`ARQ_INTERNALS`."""
    frame = inspect.currentframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Worker) and candidate.ctx is ctx:
            missing = missing_arq_internals(candidate)
            if missing:
                raise RuntimeError(
                    "this ARQ lacks what jobsvc's worker relies on: " + ", ".join(missing) + "; "
                    "install the ARQ version pyproject.toml names"
                )
            if not isinstance(candidate, worker_class):
                candidate.__class__ = worker_class
            assert isinstance(candidate, worker_class)
            hide_job_arguments_in_arq_logs()
            return candidate
        frame = frame.f_back
    raise RuntimeError("adopt() must be called from a Worker's on_startup hook")


# -- a claimed job's first round trip ---------------------------------------------------------------------
#
# ARQ's ``Worker.run_job`` opens with one transaction before the job runs: it reads the job's record,
# counts the attempt (``INCR`` and ``EXPIRE`` of ``arq:retry:<id>``) and takes the job out of the abort
# set. jobsvc's claim script does that for every job it claims, in the claim's own round trip (counting
# the attempt in the job's meta, ``tries``, rather than in a key of its own), so
# ``run_job`` gets those replies from the claim: the worker sets :data:`claimed_start` in the context of
# the job's ``run_job`` task, and its ``pool`` property answers the first ``pool`` access there with a
# :class:`ClaimedStartPipeline` instead of the real pool. That keeps ARQ's ``run_job`` whole (its expiry,
# abort, max-tries and retry handling) and removes a third of a job's round trips.


class ClaimedStart(typing.Protocol):
    """What the claim read for one job: the replies of ``run_job``'s first round trip."""

    @property
    def record(self) -> bytes | None: ...

    @property
    def job_try(self) -> int: ...

    @property
    def aborted(self) -> bool: ...


#: in a job's ``run_job`` task until its first use: the job's id and what its claim read for it
claimed_start: contextvars.ContextVar[tuple[str, ClaimedStart] | None] = contextvars.ContextVar(
    "jobsvc_claimed_start", default=None
)


class ClaimedStartPipeline:
    """Stands in for the pool, and then the transaction, of ``run_job``'s first round trip.

    It accepts only the commands ARQ 0.28 sends there, in that order, and raises otherwise: a change in
    ARQ's ``run_job`` fails every job at once (and every job test) rather than quietly."""

    def __init__(self, job_id: str, start: ClaimedStart) -> None:
        self._start = start
        self._sent: list[tuple[str, str]] = []
        self._expected = [
            ("get", job_key_prefix + job_id),
            ("incr", retry_key_prefix + job_id),
            ("expire", retry_key_prefix + job_id),
            ("zrem", abort_jobs_ss),
        ]

    def pipeline(self, transaction: bool = True) -> ClaimedStartPipeline:
        if not transaction:
            raise RuntimeError("run_job's first round trip is a transaction in ARQ 0.28")
        return self

    async def __aenter__(self) -> ClaimedStartPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def get(self, name: str) -> ClaimedStartPipeline:
        self._sent.append(("get", name))
        return self

    def incr(self, name: str, amount: int = 1) -> ClaimedStartPipeline:
        self._sent.append(("incr" if amount == 1 else "incrby", name))
        return self

    def expire(self, name: str, time: int) -> ClaimedStartPipeline:
        self._sent.append(("expire", name))
        return self

    def zrem(self, name: str, *values: str) -> ClaimedStartPipeline:
        self._sent.append(("zrem", name))
        return self

    async def execute(self) -> list[Any]:
        """The replies ARQ expects, in order: the record, the attempt, EXPIRE's True, ZREM's count."""
        if len(self._sent) < 3 or self._sent != self._expected[: len(self._sent)]:
            raise RuntimeError(f"ARQ's run_job sent {self._sent}, not the start the claim read for it")
        replies: list[Any] = [self._start.record, self._start.job_try, True, int(self._start.aborted)]
        return replies[: len(self._sent)]


def pool_for_this_task(pool: ArqRedis) -> ArqRedis:
    """ARQ's pool, except for a claimed job's first use in its ``run_job`` task: answered from the claim."""
    first_use = claimed_start.get()
    if first_use is None:
        return pool
    claimed_start.set(None)
    return typing.cast(ArqRedis, ClaimedStartPipeline(*first_use))


# -- logs ---------------------------------------------------------------------------------------------------


class HideJobArguments(logging.Filter):
    """ARQ logs every job's arguments when it starts it; params can hold addresses, message bodies or
    payloads that must not reach logs, so the arguments are replaced by an ellipsis."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == ARQ_START_LINE and isinstance(record.args, tuple) and len(record.args) == 4:
            elapsed, ref, _arguments, extra = record.args
            record.args = (elapsed, ref, "…", extra)
        return True


def hide_job_arguments_in_arq_logs(loggers: Iterable[str] = ("arq.worker",)) -> None:
    for name in loggers:
        arq_logger = logging.getLogger(name)
        if not any(isinstance(f, HideJobArguments) for f in arq_logger.filters):
            arq_logger.addFilter(HideJobArguments())
