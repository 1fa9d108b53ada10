"""jobsvc's engine under ARQ's ``Worker``: queues, instant pickup, leases, heartbeats, reconnects, schedules
and a shutdown that hands work back.

``arq worker_settings.WorkerSettings`` builds a plain ``arq.worker.Worker``; the worker's ``on_startup``
hook calls :func:`adopt`, which turns it into a :class:`JobsvcWorker` (``jobs.engine.arq_host`` holds
everything that relies on ARQ's internals), so operators start workers exactly as ARQ users expect and
still get:

- **Queues without polling.** Instead of reading ARQ's queue every ``poll_delay``, the worker claims
  ready jobs with one script (``claim.lua``, run as a function of ``jobs.engine.lua.HOT_PATH``:
  priorities, weights between queues, rate and concurrency limits) and, when there is nothing to
  take, blocks on a wake-up list that every enqueue pushes to, so a job starts as soon as it arrives;
  it wakes by itself when a deferred job falls due.
- **Leases.** ARQ's in-progress lock lives the longest timeout + 10 s, so a killed worker's job waits
  that long (hours, for long jobs). Here the lock is a lease of ``lease_s`` that the worker renews
  at least four times per lease while the job runs: when a worker dies, its jobs run again about
  ``lease_s`` later (the lapse is its queue's timer, which idle workers wake for).
- **Heartbeats.** Every ``heartbeat_s`` the worker records itself in a registry (``/v1/workers``,
  ``/readyz``; a dead worker drops out after ``3 * heartbeat_s``) and, in the same round trip, reads
  whether its queues hold ready work and when they next need a look (``keys.TIMERS``: a deferred job
  falls due, a lease lapses). Between heartbeats an idle worker only blocks on its wake-up lists, 0.8 s
  at a time, each wait one round trip of two commands.
- **ARQ's own producers.** Jobs enqueued with ARQ's ``enqueue_job`` onto the served queues are found
  (a look every ``LOOK_EVERY_S``, after the claim; a burst's before it, every iteration) and taken in
  as jobsvc's own (``jobs.engine.arq_intake``).
- **Reconnects.** A Redis outage makes the poll loop wait and retry instead of killing the worker; a
  job that ends during the outage records its end once Redis is back.
- **Schedules.** ARQ computes the cron ticks; each tick is enqueued by one script that records it, so
  it becomes one ordinary job however many workers race for it (``jobs.schedules``).
- **Shutdown.** On SIGTERM the worker takes no new jobs, lets running ones finish within the grace
  period (ARQ's ``job_completion_wait``), and hands back the rest without charging them an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import logging
import os
import signal
import socket
import time
import typing
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from arq.utils import to_ms
from redis.exceptions import WatchError

from jobs.definition import JobType
from jobs.engine import arq_host, keys
from jobs.engine.arq_host import ArqHost, claimed_start, job_queue_key
from jobs.engine.arq_intake import ArqIntake
from jobs.engine.arq_producers import ArqProducers, IntakeRules
from jobs.engine.codec import deserialize
from jobs.engine.connection import (
    RECONNECT_MAX_DELAY_S,
    REDIS_DOWN,
    REDIS_ERRORS,
    close_pool,
    raise_if_cancelling,
    redis_unavailable,
    until_redis_answers,
)
from jobs.engine.metrics import Tally, TallyBatch
from jobs.engine.queue_ops import (
    Claim,
    ClaimRequest,
    JobQueues,
    attempt_lease_token,
    decode_renew_leases,
    enqueue_call,
    new_job,
    settle_dependents,
)
from jobs.engine.records import CANCELLED_ERROR_TYPE
from jobs.engine.sweep import sweep_expired
from jobs.queues import QUEUE_NAMES
from jobs.schedules import Schedule

logger = logging.getLogger("jobsvc.engine")


#: an idle worker never blocks longer than this on one command (below the pool's socket timeout)
MAX_BLOCK_S = 3.0
#: the shortest blocking wait: BLPOP reads a timeout of 0 as "for ever", so a deadline closer than this
#: is waited for this long, still listening for wake-ups, never in a sleep that would not hear them
MIN_BLOCK_S = 0.01
#: a busy worker reads the cancellations of running jobs at most this often (ARQ: every iteration)
ABORT_CHECK_EVERY_S = 0.05
#: the most parked jobs a heartbeat puts back in line (readmit_parked.lua)
READMIT_PER_BEAT = 1000


@dataclass(frozen=True)
class EngineConfig:
    #: a running job's lock expires this long after its worker's last renewal
    lease_s: float
    #: how often a worker records itself as alive and looks for lapsed leases, due or missed work
    heartbeat_s: float
    #: the queues this worker serves, with their weights
    queues: tuple[tuple[str, int], ...]
    #: how long a job that failed for good stays in the dead letters
    dead_letter_retention_s: int
    #: longest one blocking wait for new work lasts (new work wakes the worker at once)
    idle_wait_s: float = MAX_BLOCK_S
    #: the claim script's view of the limits: type -> {"r", "p", "c"}
    limits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: what schedules enqueue, by schedule name
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    job_types: Mapping[str, JobType[Any, Any]] = field(default_factory=dict)
    default_timeout_s: float = 300.0
    result_retention_s: int = 7 * 86_400
    queued_expiry_ms: int = 86_400_000
    #: what jobs enqueued with ARQ's own client become (``jobs.engine.arq_intake``)
    arq_producers: ArqProducers = field(default_factory=ArqProducers)
    #: every queue jobs may be sent to, served here or not: swept for jobs past their expiry
    known_queues: tuple[str, ...] = QUEUE_NAMES

    @property
    def renew_every_s(self) -> float:
        """How often running jobs' leases are renewed: at least four times per lease."""
        return min(self.heartbeat_s, self.lease_s / 4)

    def retention_s(self, job_type: str) -> int:
        found = self.job_types.get(job_type)
        return int(found.keep_result_s) if found and found.keep_result_s else self.result_retention_s


def now_ms() -> int:
    return int(time.time() * 1000)


class JobsvcWorker(ArqHost):
    """ARQ's worker with jobsvc's queues, leases, heartbeats, reconnects, schedules and hand-back."""

    engine: EngineConfig
    worker_id: str
    queues: JobQueues
    intake: ArqIntake
    claims: dict[str, Claim]
    handed_back: set[str]
    tally: Tally
    _last_beat: float
    _last_renewal: float
    _last_abort_check: float
    _slot_freed: asyncio.Event
    #: look for work at the next iteration (woken, a slot freed, or the heartbeat saw work waiting)
    _look_now: bool
    #: epoch ms when one of the served queues next needs a look (a deferred job due, a lease lapsing)
    _look_at_ms: float
    #: jobs came in lately: the next wait for work sends the claim along (JobQueues.claim_after_wait)
    _claim_after_wait: bool

    def take_over(self, config: EngineConfig) -> None:
        self.engine = config
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queues = JobQueues(self.pool)
        self.intake = ArqIntake(
            self.pool,
            IntakeRules(
                job_types=config.job_types,
                producers=config.arq_producers,
                default_timeout_s=config.default_timeout_s,
                result_retention_s=config.result_retention_s,
                dead_letter_retention_s=config.dead_letter_retention_s,
                queued_expiry_ms=config.queued_expiry_ms,
            ),
            queues=[name for name, _ in config.queues],
            worker_id=self.worker_id,
        )
        self.claims = {}
        self.handed_back = set()
        self.tally = Tally()
        self._last_beat = 0.0
        self._last_renewal = 0.0
        self._last_abort_check = 0.0
        self._slot_freed = asyncio.Event()
        self._look_now = True
        self._look_at_ms = float("inf")
        self._claim_after_wait = False
        self._credits: dict[str, int] = {name: 0 for name, _ in config.queues}
        self._claim_requests = itertools.count()
        self._sweep_passed_over: dict[str, int] = {}
        self._limits_json = json.dumps({name: dict(limit) for name, limit in config.limits.items()})
        self.in_progress_timeout_s = config.lease_s
        # ARQ's loop sleeps poll_delay between iterations; here an iteration blocks until there is work
        self.poll_delay_s = 0.0

    # -- heartbeats and leases -------------------------------------------------------------------------

    async def heart_beat(self) -> None:
        """ARQ's health record, then jobsvc's: leases renewed every ``renew_every_s`` while jobs run; the
        registry entry and a look at the served queues every ``heartbeat_s``."""
        await super().heart_beat()
        elapsed = time.monotonic()
        if elapsed - self._last_beat >= self.engine.heartbeat_s:
            await self.beat()
        elif elapsed - self._last_renewal >= self.engine.renew_every_s and (
            running := self._running_claims()
        ):
            self._last_renewal = elapsed
            self._stop_lost(await self.queues.renew(int(self.engine.lease_s * 1000), running) or [])

    def _stop_lost(self, job_ids: list[str]) -> None:
        """Stop the attempts whose leases were lost (this worker stalled past its lease, and the job was
        claimed again or is about to be): their ends would change nothing (release_claim.lua)."""
        for job_id in job_ids:
            task = self.job_tasks.get(job_id)
            if task is not None and not task.done():
                logger.warning(
                    "job %s: lease lost (this worker stalled past it); stopping this attempt", job_id
                )
                task.cancel()

    def _running_claims(self) -> list[Claim]:
        return [
            self.claims[job_id]
            for job_id, task in self.job_tasks.items()
            if not task.done() and job_id in self.claims
        ]

    async def beat(self) -> None:
        """One round trip: renew the leases of running jobs, add the metrics tally to the cluster's
        counters, record this worker as alive, and read what the served queues hold for it (ready work,
        their timers, ended jobs whose dependents a crash left waiting), so that an idle worker costs
        Redis a handful of commands per heartbeat."""
        self._last_beat = self._last_renewal = time.monotonic()
        lease_ms = int(self.engine.lease_s * 1000)
        ttl_ms = int(self.engine.heartbeat_s * 3000)
        running = self._running_claims()
        served = [name for name, _ in self.engine.queues]
        tally = self.tally.take()
        lost, ready, timers, leftovers, sweeping = await self._beat_round_trip(
            lease_ms, ttl_ms, running, served, tally
        )
        self.tally.confirm(tally)
        self._stop_lost(lost)
        if ready:
            self._look_now = True
        self._look_at_ms = min([self._look_at_ms, *(t for t in timers if t is not None)])
        if leftovers:
            await settle_dependents(self.queues, [p.decode() for p in leftovers], self.engine.retention_s)
        if sweeping:
            await self._sweep()

    async def _sweep(self) -> None:
        """End the jobs of any queue that waited past their expiry (``jobs.engine.sweep``)."""
        engine = self.engine
        expired = await sweep_expired(
            self.queues,
            engine.known_queues,
            queued_expiry_ms=engine.queued_expiry_ms,
            now_ms=now_ms(),
            result_ttl_ms=engine.result_retention_s * 1000,
            dead_letter_ms=engine.dead_letter_retention_s * 1000,
            passed_over=self._sweep_passed_over,
        )
        for job in expired:
            logger.warning("job %s: not started within its expiry (queue %s); failed", job.job_id, job.queue)
            self.tally.ended(job.job_type, job.queue, "failed", None)
        if settling := [job.job_id for job in expired if job.reply == "settle"]:
            await settle_dependents(self.queues, settling, engine.retention_s)

    async def _beat_round_trip(
        self, lease_ms: int, ttl_ms: int, running: list[Claim], served: list[str], tally: list[TallyBatch]
    ) -> tuple[list[str], Any, Any, Any, bool]:
        """The replies the beat reads: leases lost, ready work, the queues' timers, unsettled ends, and
        whether this worker sweeps the queues this time (one worker per heartbeat period does)."""
        async with self.pool.pipeline(transaction=False) as pipe:
            if running:
                await self.queues.renew(lease_ms, running, client=pipe)
            await self.queues.add_tally(self.worker_id, tally, client=pipe)
            # jobs parked under a concurrency limit that was since raised or removed go back in line
            await self.queues.readmit_parked(self._limits_json, most=READMIT_PER_BEAT, client=pipe)
            pipe.zadd(keys.WORKERS, {self.worker_id: now_ms()})
            pipe.hset(
                keys.worker_record(self.worker_id),
                mapping={
                    "id": self.worker_id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "queues": ",".join(served),
                    "running": len(running),
                    "done": self.jobs_complete + self.jobs_failed,
                    "failed": self.jobs_failed,
                    "retried": self.jobs_retried,
                    "heartbeat_at": now_ms(),
                    "started_at": self.ctx.get("started_at", now_ms()),
                },
            )
            pipe.pexpire(keys.worker_record(self.worker_id), ttl_ms)
            pipe.exists(*(keys.ready(name) for name in served))
            pipe.zmscore(keys.TIMERS, served)
            pipe.zrangebyscore(keys.SETTLING, "-inf", now_ms() - lease_ms, start=0, num=100)
            pipe.set(keys.SWEEP_LOCK, self.worker_id, px=int(self.engine.heartbeat_s * 1000), nx=True)
            replies = await pipe.execute()
        lost = decode_renew_leases(replies[0]) if running else []
        ready, timers, leftovers, sweeping = replies[-4:]
        return lost, ready, timers, leftovers, bool(sweeping)

    # -- claiming jobs ---------------------------------------------------------------------------------

    async def poll_once(self) -> None:
        # A cancel that something below swallowed still leaves the task "cancelling": honour it here, or
        # the worker would poll on after being told to stop.
        raise_if_cancelling()
        delay = 0.1
        while True:
            try:
                await self._iterate()
                while self.burst and await self._other_queues_have_work():
                    await self._iterate()
                return
            except REDIS_ERRORS as exc:
                if not (isinstance(exc, WatchError) or redis_unavailable(exc)):
                    raise
                raise_if_cancelling()
                logger.warning("redis unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY_S)

    async def _iterate(self) -> None:
        """Claim what fits, handle aborts and heartbeats, then wait for work or a free slot."""
        free = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            free = min(free, self.max_burst_jobs - self.jobs_started())
        if self.burst:
            # a burst takes in what ARQ's own producers enqueued before it claims, so that it runs those too
            await self._take_in_foreign_jobs()
        if self.allow_pick_jobs and free > 0 and self._should_look():
            sent = time.monotonic()
            claims, next_due = await self.queues.claim(**self._claim_request(free))
            await self._take(claims, next_due, stalled=time.monotonic() - sent > self.engine.lease_s / 4)
        if not self.burst and self.intake.look_due():
            # a serving worker looks after the claim: a look never stands between a job that woke the
            # worker and its start; what it takes in, the next iteration claims
            await self._take_in_foreign_jobs()
        # nothing running, nothing to abort
        if self.allow_abort_jobs and self.job_tasks and self._abort_check_due():
            await self.cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # ARQ's way of surfacing errors in run_job
        await self.heart_beat()
        if self.burst:
            self._look_now = True
            if not self.tasks:
                await asyncio.sleep(0.005)  # only deferred work left: let it fall due
        else:
            await self._wait_for_work()

    async def _take_in_foreign_jobs(self) -> None:
        """Jobs that ARQ's own producers enqueued become jobsvc's (``jobs.engine.arq_intake``)."""
        if self.allow_pick_jobs and await self.intake.look(check=self.burst):
            self._look_now = True

    def _abort_check_due(self) -> bool:
        if time.monotonic() - self._last_abort_check < ABORT_CHECK_EVERY_S:
            return False
        self._last_abort_check = time.monotonic()
        return True

    def _should_look(self) -> bool:
        return self._look_now or now_ms() >= self._look_at_ms

    def _claim_request(self, free: int) -> ClaimRequest:
        return ClaimRequest(
            lease_ms=int(self.engine.lease_s * 1000),
            free=free,
            limits=self._limits_json,
            queues=self.engine.queues,
            credits=self._credits,
            request_id=f"{self.worker_id}:{next(self._claim_requests)}",
        )

    async def _take(self, claims: list[Claim], next_due: int | None, *, stalled: bool) -> None:
        """Start what a claim took, and look again when its reply says. Hands the jobs back unstarted
        instead (JobQueues.hand_back) when the worker stalled (stopped, starved of CPU) between sending
        the claim and reading its reply, so that the jobs' leases may have lapsed and another worker may
        run them already, or when it was told to stop meanwhile (a claim sent behind a wait before a
        SIGTERM runs when the wait ends)."""
        self._look_now = False
        self._look_at_ms = float("inf") if next_due is None else next_due
        if claims:
            self._claim_after_wait = True  # work is coming in: the next wait claims as it ends
        if claims and (stalled or not self.allow_pick_jobs):
            why = "stalled while claiming" if stalled else "is stopping"
            logger.warning("the worker %s; handing back %d job(s) unstarted", why, len(claims))
            await self.queues.hand_back(claims)
            self._look_now = True
            return
        for claim in claims:
            await self._start(claim)

    async def _start(self, claim: Claim) -> None:
        earlier = self.tasks.get(claim.job_id)
        if earlier is not None and not earlier.done():
            # The claim script took a job this worker still runs: the earlier attempt's lease lapsed (a
            # stall longer than the lease) before a renewal could tell. It is stopped, and its end
            # changes nothing (release_claim.lua), before the new one starts: ARQ keys running jobs by id.
            logger.warning(
                "job %s: lease lost (this worker stalled past it); stopping the earlier attempt", claim.job_id
            )
            earlier.cancel()
            await asyncio.wait([earlier])
        await self.sem.acquire()  # never waits: only free slots were claimed
        self.job_counter += 1
        self.claims[claim.job_id] = claim
        self.tally.claimed(claim.job_type, claim.queue, claim.waited_ms)
        context = contextvars.copy_context()
        if claim.start is not None:
            context.run(claimed_start.set, (claim.job_id, claim.start))
        context.run(attempt_lease_token.set, claim.token)
        context.run(job_queue_key.set, keys.arq_queue(claim.queue))
        task = self.loop.create_task(self.run_job(claim.job_id, claim.score), context=context)
        task.add_done_callback(self._job_done)
        self.tasks[claim.job_id] = task

    def _job_done(self, _: asyncio.Task[None]) -> None:
        self.slot_freed()
        self._slot_freed.set()

    async def _wait_for_work(self) -> None:
        """Block until work may be there: a wake-up token, a freed slot, a queue's timer (a deferred job
        falls due, a lease lapses), a cron tick, the next heartbeat or the next look for jobs from ARQ's
        own producers, ``idle_wait_s`` at most. A wake-up goes straight to the claim: the look waits for
        its own turn, so that it never stands between a new job and its start."""
        full = self.job_counter >= self.max_jobs or not self.allow_pick_jobs
        timeout = min(
            self.engine.idle_wait_s,
            MAX_BLOCK_S,
            self.engine.heartbeat_s - (time.monotonic() - self._last_beat),
            # a queue's timer matters to a worker that can claim: a full one waits for a slot, which makes
            # it look at once (a timer already past would otherwise turn this wait into a busy loop)
            MAX_BLOCK_S if full else (self._look_at_ms - now_ms()) / 1000,
            self.intake.seconds_to_next_look() if self.allow_pick_jobs else MAX_BLOCK_S,
        )
        ticks = [c.next_run.timestamp() for c in self.cron_jobs if c.next_run is not None]
        if ticks:
            timeout = min(timeout, min(ticks) - time.time())
        timeout = max(0.0, timeout)
        if full:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), timeout)
                self._look_now = True
        elif timeout > 0:
            wake_keys = [keys.wake(name) for name, _ in self.engine.queues]
            timeout = max(timeout, MIN_BLOCK_S)
            if self._claim_after_wait:
                # work came in lately: the claim rides behind the wait, run by the server as the wait ends
                sent = time.monotonic()
                request = self._claim_request(self.max_jobs - self.job_counter)
                woken, claims, next_due = await self.queues.claim_after_wait(wake_keys, timeout, request)
                # a wait that ran out unwoken, having claimed nothing: idle now, so the next wait is a bare
                # BLPOP again, and an idle worker sends no claim at each timeout
                self._claim_after_wait = woken
                # the wait lasts ``timeout`` at most, and ``timeout`` is at most a heartbeat, half a lease:
                # a reply later than that by a quarter lease means the worker stalled meanwhile
                stalled = time.monotonic() - sent > timeout + self.engine.lease_s / 4
                await self._take(claims, next_due, stalled=stalled)
                return
            # redis-py types the timeout as int; Redis 6+ takes seconds with decimals
            blocking = self.pool.blpop(wake_keys, timeout=timeout)  # type: ignore[arg-type]
            if await typing.cast(Awaitable[Any], blocking) is not None:
                self._look_now = True
                self._claim_after_wait = True
        else:
            await asyncio.sleep(0)  # a deadline has come: the next iteration meets it

    async def _other_queues_have_work(self) -> bool:
        """ARQ's burst mode ends once its (first) queue is empty; the worker's other queues count too."""
        if 0 <= self.max_burst_jobs <= self.jobs_started() or await self.pool.zcard(self.queue_name):
            return False
        for name, _ in self.engine.queues[1:]:
            if await self.pool.zcard(keys.arq_queue(name)):
                return True
        return False

    # -- schedules -------------------------------------------------------------------------------------

    async def run_cron(self, n: datetime, delay: float, num_windows: int = 2) -> None:
        """Each tick that has come becomes a job through the schedule script, exactly once across workers.

        Unlike ARQ, which enqueues a tick up to a second ahead, a tick is enqueued once it has come (the
        worker wakes for it), so that a run still going at the next tick makes that tick skip."""
        for cron_job in self.cron_jobs:
            if cron_job.next_run is None:
                cron_job.calculate_next(n)
                continue
            if cron_job.next_run > n:
                continue
            tick = cron_job.next_run
            cron_job.calculate_next(tick)
            schedule = self.engine.schedules.get(cron_job.name)
            if schedule is not None:
                await self._enqueue_tick(schedule, tick)

    async def _enqueue_tick(self, schedule: Schedule, tick: datetime) -> None:
        job_type = self.engine.job_types[schedule.job_type]
        job = new_job(
            job_type,
            job_type.params_model.model_validate(schedule.params),
            default_timeout_s=self.engine.default_timeout_s,
            default_retention_s=self.engine.result_retention_s,
            priority=schedule.priority,
            run_at_ms=int(tick.timestamp() * 1000),
            links={"schedule": schedule.name},
        )
        call = enqueue_call(job, schedule.job_id(tick), queued_expiry_ms=self.engine.queued_expiry_ms)
        tick_ms = int(tick.timestamp() * 1000)
        outcome = await self.queues.schedule_tick(schedule.name, tick_ms, overlap=schedule.overlap, call=call)
        if outcome == "skipped":
            logger.info(
                "schedule %s: skipped the %s tick, its previous run has not ended", schedule.name, tick
            )
        elif outcome == "created":
            logger.info("schedule %s: enqueued %s", schedule.name, schedule.job_id(tick))

    # -- ends of attempts ------------------------------------------------------------------------------

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """ARQ's ``Worker.finish_job`` as one script: the result, the dead letters, the queue's counts and
        the next parked job in one round trip, or the job back in line; Redis outages are waited out."""
        handed_back = not finish and job_id in self.handed_back
        claim = self._claim_of(job_id)
        outcome = outcome_of(result_data) if finish and result_data else ""

        async def record() -> str:
            return await self.queues.release(
                claim,
                ended=finish,
                result=result_data if finish else None,
                result_ttl_ms=0
                if keep_result_forever or result_timeout_s is None
                else to_ms(result_timeout_s),
                keep_lock_ms=None if keep_in_progress is None else to_ms(keep_in_progress),
                delay_ms=incr_score or 0,
                handed_back=handed_back,
                outcome=outcome,
                bury_for_ms=self.engine.dead_letter_retention_s * 1000 if outcome == "failed" else None,
            )

        reply = await until_redis_answers(record, f"recording the end of job {job_id}")
        self.handed_back.discard(job_id)
        if reply == "stale":
            logger.warning("job %s: another claim holds it now; this attempt's end changed nothing", job_id)
        if reply in ("ended", "settle") and outcome:
            ran_ms = int((time.monotonic() - claim.claimed_at) * 1000)
            self.tally.ended(claim.job_type, claim.queue, outcome, ran_ms)
        elif reply == "again" and not handed_back:
            self.tally.retried(claim.job_type, claim.queue)
        # A retry due at once can be claimed again, here, before this attempt's task gets the answer:
        # the claim to forget is this attempt's, not the next one's.
        if self.claims.get(job_id) is claim:
            del self.claims[job_id]
        if reply == "settle":
            await until_redis_answers(
                lambda: settle_dependents(self.queues, [job_id], self.engine.retention_s),
                f"settling the dependents of job {job_id}",
            )

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """ARQ's early exits (expired, unknown type, unreadable, too many attempts): they skip every hook,
        so this is where they join the dead letters."""
        keep = self.keep_result_forever or self.keep_result_s > 0
        await self.finish_job(
            job_id,
            True,
            result_data if keep else None,
            None if self.keep_result_forever else self.keep_result_s,
            self.keep_result_forever,
            None,
            None,
        )

    def _claim_of(self, job_id: str) -> Claim:
        found = self.claims.get(job_id)
        if found is not None:
            return found
        # ARQ ran a job this worker holds no claim for: a bookkeeping slip, recorded against the worker's
        # first queue, which may not be the job's; say so rather than hide it
        logger.warning(
            "job %s ends without a claim; recording it against queue %s", job_id, self.engine.queues[0][0]
        )
        return Claim(job_id=job_id, score=0, queue=self.engine.queues[0][0], slot="")

    # -- shutdown --------------------------------------------------------------------------------------

    async def before_hand_back(self) -> None:
        """Running jobs had the grace period to finish; those that did not are handed back uncharged."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.sleep_until_tasks_complete(), self.grace_s)
        self.handed_back.update(job_id for job_id, task in self.job_tasks.items() if not task.done())
        if self.handed_back:
            logger.info("handing back %d unfinished job(s) after the grace period", len(self.handed_back))

    async def close(self) -> None:
        """ARQ's close, except that job tasks are collected with ``return_exceptions``: ARQ gathers the
        tasks it has just cancelled without it, so a task cancelled while recording its finish re-raises
        CancelledError there and the pool is never closed. An unfinished job comes back by its lease."""
        if not self.handles_signals:
            self.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        if self.arq_pool is None:
            return
        with contextlib.suppress(*REDIS_DOWN):
            async with self.pool.pipeline(transaction=False) as pipe:
                await self.queues.add_tally(self.worker_id, self.tally.take(), client=pipe)
                pipe.zrem(keys.WORKERS, self.worker_id)
                pipe.delete(keys.worker_record(self.worker_id))
                pipe.delete(self.health_check_key)
                await pipe.execute()
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await close_pool(self.pool)
        self.forget_pool()


def outcome_of(result_data: bytes) -> str:
    """``succeeded``, ``cancelled`` or ``failed``, as a result record says."""
    try:
        record = deserialize(result_data)
    except ValueError:
        return "failed"
    if record.get("s") is True:
        return "succeeded"
    error = record.get("r")
    return "cancelled" if isinstance(error, dict) and error.get("type") == CANCELLED_ERROR_TYPE else "failed"


def adopt(ctx: dict[str, Any], config: EngineConfig) -> JobsvcWorker:
    """Turn the ARQ ``Worker`` running this ``on_startup`` into a JobsvcWorker serving ``config``."""
    worker = arq_host.adopt(ctx, JobsvcWorker)
    worker.take_over(config)
    ctx["started_at"] = now_ms()
    ctx["queues"] = worker.queues  # the scripts, with their batches: job attempts report progress there
    return worker
