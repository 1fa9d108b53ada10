"""report_progress.lua: a running attempt's progress, in its job's meta and its tenant's event stream;
never from an attempt whose job another claim holds, never into a deleted job."""

from __future__ import annotations

import json

from arq import ArqRedis

from jobs.engine import keys, lua
from jobs.engine.queue_ops import JobQueues, decode_report_progress
from tests.engine.lua.steps import claim_all, claimed, submitted
from tests.helpers import lapse_lease

PROGRESS = json.dumps({"current": 1, "total": 2, "message": None})


async def report(redis: ArqRedis, job_id: str, token: str) -> bool:
    return decode_report_progress(await redis.eval(lua.REPORT_PROGRESS, 0, job_id, PROGRESS, token))


async def events(redis: ArqRedis) -> list[dict[str, object]]:
    entries = await redis.xrange(keys.EVENTS_PREFIX + keys.DEFAULT_TENANT)
    return [json.loads(fields[b"d"]) for _, fields in entries]


async def test_report_progress_records_it_and_tells_the_tenant(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1")
    assert await report(redis, "j1", claim.token)
    assert await redis.hget(keys.job_meta("j1"), "progress") == PROGRESS.encode()
    last = (await events(redis))[-1]
    assert (last["id"], last["event"], last["progress"]) == ("j1", "progress", json.loads(PROGRESS))


async def test_report_progress_from_an_attempt_whose_job_another_claim_holds_writes_nothing(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "j1")
    [stale] = await claim_all(queues)
    await redis.delete(keys.arq_in_progress("j1"))  # its worker stalled past the lease
    await lapse_lease(redis, "j1")
    [current] = await claim_all(queues)
    told = len(await events(redis))
    assert not await report(redis, "j1", stale.token)
    assert await redis.hget(keys.job_meta("j1"), "progress") is None
    assert len(await events(redis)) == told
    assert await report(redis, "j1", current.token)


async def test_report_progress_writes_nothing_into_a_deleted_job(queues: JobQueues, redis: ArqRedis) -> None:
    claim = await claimed(queues, "j1")
    await redis.delete(keys.job_meta("j1"))
    assert not await report(redis, "j1", claim.token)
    assert not await redis.exists(keys.job_meta("j1"))
