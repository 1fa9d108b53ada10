"""An idle worker blocks on its wake-up lists and looks at its queues only at heartbeats, yet misses
nothing: deferred jobs start when due, and work whose wake-up token went astray is found at the next
heartbeat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_client
from arq import ArqRedis
from redis.exceptions import ResponseError

from jobs.engine import keys
from jobs.engine.lua import HOT_PATH
from jobs.engine.worker import JobsvcWorker
from service.config import Settings
from tests.conftest import make_worker
from tests.helpers import read_job, submit, until_registered, wait_for_status


@asynccontextmanager
async def idle_worker(
    settings: Settings, redis: ArqRedis, *, heartbeat_s: float, block_s: float
) -> AsyncIterator[None]:
    """A worker with these heartbeats and blocking waits, once it has started and had its first look."""
    tuned = settings.model_copy(update={"worker_heartbeat_s": heartbeat_s, "worker_poll_delay_s": block_s})
    worker = make_worker(tuned)
    task = asyncio.create_task(worker.main())
    try:
        await until_registered(redis, worker)
        await asyncio.sleep(0.2)
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


def epoch_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


async def test_a_delayed_job_starts_when_due_not_at_the_next_heartbeat(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    async with idle_worker(settings, redis, heartbeat_s=4.0, block_s=3.0):
        job = await submit(http, "diag.noop", {}, delay_seconds=1.5)
        assert job["status"] == "deferred"
        done = await wait_for_status(http, job["id"], "succeeded", timeout_s=4)
    late_s = epoch_s(done["started_at"]) - epoch_s(done["scheduled_for"])
    assert 0 <= late_s < 0.5, f"started {late_s:.2f} s after it was due"


async def test_work_whose_wake_up_went_to_another_consumer_is_found_at_the_next_heartbeat(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """A worker that took the token and died before claiming leaves a ready job and no token."""
    thief = redis_client.Redis.from_url(settings.effective_redis_url)
    try:
        async with idle_worker(settings, redis, heartbeat_s=1.5, block_s=1.0):
            # queue behind no one: the thief blocks first, so the token goes to it, not to the worker
            stolen = asyncio.create_task(thief.blpop([keys.wake("default")], timeout=10))
            await asyncio.sleep(1.2)  # the worker's current wait ends and it blocks again, behind the thief
            submitted_at = time.time()
            job = await submit(http, "diag.noop", {})
            assert await stolen is not None, "the thief did not get the token"
            done = await wait_for_status(http, job["id"], "succeeded", timeout_s=5)
    finally:
        await thief.aclose()
    assert epoch_s(done["started_at"]) - submitted_at < 1.5 + 0.5  # one heartbeat, and some slack


@asynccontextmanager
async def waiting_worker(settings: Settings, redis: ArqRedis, **updates: Any) -> AsyncIterator[JobsvcWorker]:
    """A worker started and registered, then stopped from looping: the test drives its waits itself."""
    worker = make_worker(settings.model_copy(update={"worker_heartbeat_s": 5.0, **updates}))
    running = asyncio.create_task(worker.main())
    try:
        engine = await until_registered(redis, worker)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        yield engine
    finally:
        await worker.close()


@pytest.mark.parametrize("claim_after_wait", [False, True], ids=["bare wait", "claim behind the wait"])
async def test_a_wake_up_just_before_a_deadline_is_heard_at_once(
    redis: ArqRedis, settings: Settings, claim_after_wait: bool
) -> None:
    """With its next deadline (here a queue's timer) a few milliseconds away, the worker still waits on
    its wake-up lists: a job arriving then starts at once, not after a sleep that could not hear it."""
    async with waiting_worker(settings, redis) as engine:
        for _ in range(20):
            engine._look_now = False
            engine._claim_after_wait = claim_after_wait
            engine._look_at_ms = time.time() * 1000 + 5  # a deferred job falls due in 5 ms
            waiting = asyncio.create_task(engine._wait_for_work())
            await asyncio.sleep(0.001)
            await redis.rpush(keys.wake("default"), "1")
            await waiting
            # heard: a bare wait sends the worker to claim; a claim behind the wait ran as it ended
            assert engine._claim_after_wait, "the wake-up went unheard until the deadline"
            assert engine._look_now != claim_after_wait
            assert await redis.llen(keys.wake("default")) == 0


def nothing_due(engine: JobsvcWorker) -> None:
    """No claim, timer, heartbeat or look for ARQ producers' jobs due: the next wait lasts its full time."""
    engine._look_now = False
    engine._look_at_ms = float("inf")
    engine._last_beat = time.monotonic()
    engine.intake._checked_at = time.monotonic()


async def test_while_jobs_come_in_the_claim_rides_behind_the_wait(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """Once work has come in, the worker sends its claim along with its wait: the job that ends the wait
    is claimed by the server at once, and has started when the wait returns, with no round trip between."""
    async with waiting_worker(settings, redis, worker_poll_delay_s=3.0) as engine:
        engine._claim_after_wait = True
        nothing_due(engine)
        waiting = asyncio.create_task(engine._wait_for_work())
        await asyncio.sleep(0.1)
        job = await submit(http, "diag.noop", {})
        await waiting
        assert job["id"] in engine.tasks, "the job that woke the worker was not claimed in the wait"
        assert not engine._look_now, "the worker would claim again for a wake-up it has answered"
        await wait_for_status(http, job["id"], "succeeded", timeout_s=5)


async def test_an_idle_worker_sends_no_claim_when_its_wait_runs_out(
    redis: ArqRedis, settings: Settings
) -> None:
    """A wait that runs out with nothing to claim turns the worker idle: its later waits are bare
    ``BLPOP``s again, so an idle worker costs no claim per wait."""
    async with waiting_worker(settings, redis, worker_poll_delay_s=0.2) as engine:
        engine._claim_after_wait = True
        nothing_due(engine)
        before = next(engine._claim_requests)  # every claim request the worker builds takes a number
        await engine._wait_for_work()
        assert next(engine._claim_requests) == before + 2  # the claim behind the wait, which took nothing
        assert not engine._claim_after_wait
        nothing_due(engine)
        before = next(engine._claim_requests)
        await engine._wait_for_work()
        assert next(engine._claim_requests) == before + 1, "an idle wait sent a claim"


async def test_a_claim_behind_a_wait_runs_on_a_server_that_lost_the_library(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """After a restart without persistence the server has no functions: the library is loaded again and
    the claim sent again, and the job that ended the wait is still claimed by it."""
    async with waiting_worker(settings, redis, worker_poll_delay_s=3.0) as engine:
        engine._claim_after_wait = True
        nothing_due(engine)
        job = await submit(http, "diag.noop", {})  # its wake-up token waits in the list
        await redis.function_delete(HOT_PATH.name)
        await engine._wait_for_work()
        assert job["id"] in engine.tasks
        await wait_for_status(http, job["id"], "succeeded", timeout_s=5)


async def test_a_worker_that_stalled_while_claiming_hands_the_jobs_back_unstarted(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """A worker stopped (or starved of CPU) between its claim and the reply may find the jobs' leases
    lapsed and the jobs run elsewhere: it does not start them, and they go back in line uncharged."""
    async with waiting_worker(settings, redis) as engine:
        job = await submit(http, "diag.noop", {})
        claims, _ = await engine.queues.claim(**engine._claim_request(10))
        assert [claim.job_id for claim in claims] == [job["id"]]
        await engine._take(claims, None, stalled=True)
        assert job["id"] not in engine.tasks
        back = await read_job(http, job["id"])
        assert back["status"] == "queued"
        assert back["attempts"] == 0
        assert engine._look_now, "the worker does not look again for the jobs it handed back"


async def test_a_full_worker_waits_for_a_slot_not_for_a_timer_it_cannot_act_on(
    redis: ArqRedis, settings: Settings
) -> None:
    """With every slot busy and a queue's timer already past (a lease end, say, of its own long job), the
    worker can claim nothing: its wait lasts until a slot frees. Returning at once, over and over, was a
    busy loop that burned most of a core for as long as the long jobs ran."""
    async with waiting_worker(settings, redis, worker_poll_delay_s=3.0) as engine:
        engine.job_counter = engine.max_jobs  # every slot busy
        engine._look_at_ms = time.time() * 1000 - 1_000  # a timer that came a second ago
        engine._last_beat = time.monotonic()  # and no heartbeat or look for ARQ producers' jobs due
        engine.intake._checked_at = time.monotonic()
        engine._look_now = False
        asyncio.get_running_loop().call_later(0.3, engine._slot_freed.set)  # a job ends
        began = time.monotonic()
        await engine._wait_for_work()
        assert time.monotonic() - began >= 0.25, "the wait returned at once: a busy loop"
        assert engine._look_now, "the freed slot did not send the worker to claim"


async def test_a_stopping_worker_hands_back_what_a_claim_behind_its_wait_took(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """SIGTERM stops a worker from picking jobs, but a claim sent behind its wait before the signal runs
    when the wait ends: the worker starts none of what it took."""
    async with waiting_worker(settings, redis) as engine:
        job = await submit(http, "diag.noop", {})
        claims, _ = await engine.queues.claim(**engine._claim_request(10))
        engine.allow_pick_jobs = False  # what ARQ's SIGTERM handler does
        await engine._take(claims, None, stalled=False)
        assert job["id"] not in engine.tasks
        assert (await read_job(http, job["id"]))["status"] == "queued"


async def test_a_job_handed_back_keeps_the_cancel_asked_for_it(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """The claim takes a job's abort mark (ARQ's run_job would act on it); a hand-back puts it back, so
    that the worker that starts the job next cancels it."""
    async with waiting_worker(settings, redis) as engine:
        job = await submit(http, "diag.noop", {})
        await redis.zadd(keys.ABORT_SET, {job["id"]: int(time.time() * 1000)})
        claims, _ = await engine.queues.claim(**engine._claim_request(10))
        assert claims[0].start is not None
        assert claims[0].start.aborted
        assert await redis.zscore(keys.ABORT_SET, job["id"]) is None
        await engine._take(claims, None, stalled=True)
        assert await redis.zscore(keys.ABORT_SET, job["id"]) is not None


async def test_a_failed_wait_hands_back_what_the_claim_behind_it_took(
    http: httpx.AsyncClient, redis: ArqRedis, settings: Settings
) -> None:
    """The claim runs even when the BLPOP in front of it fails (here a wake-up list that is no list): its
    jobs go back in line before the error is raised, instead of waiting for their leases to lapse."""
    async with waiting_worker(settings, redis, worker_poll_delay_s=3.0) as engine:
        engine._claim_after_wait = True
        nothing_due(engine)
        job = await submit(http, "diag.noop", {})
        await redis.delete(keys.wake("default"))
        await redis.set(keys.wake("default"), "not a list")
        try:
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await engine._wait_for_work()
        finally:
            await redis.delete(keys.wake("default"))
        assert job["id"] not in engine.tasks
        back = await read_job(http, job["id"])
        assert back["status"] == "queued"
        assert back["attempts"] == 0
