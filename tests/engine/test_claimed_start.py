"""A claimed job starts with what its claim read: ARQ's run_job makes no round trip of its own first."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from arq import ArqRedis
from arq.constants import abort_jobs_ss, job_key_prefix, retry_key_prefix

from jobs.engine import keys
from jobs.engine.arq_host import ClaimedStartPipeline
from jobs.engine.queue_ops import ClaimedStart
from tests.helpers import read_job


async def calls(redis: ArqRedis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_claimed_jobs_start_without_arqs_own_first_round_trip(
    http: httpx.AsyncClient, redis: ArqRedis, run_jobs: Any
) -> None:
    """ARQ counts an attempt with INCRBY of ``arq:retry:<id>`` in a MULTI of its own; the claim script
    counts it in the job's meta, and ARQ's run_job is handed that count."""
    response = await http.post("/v1/jobs:batch", json={"jobs": [{"type": "diag.noop", "params": {}}] * 20})
    assert response.status_code == 202, response.text
    before = {command: await calls(redis, command) for command in ("incrby", "incr", "get")}
    await run_jobs()
    assert await calls(redis, "incrby") == before["incrby"]  # no run_job start transaction
    ids = [job["id"] for job in response.json()["jobs"]]
    assert not await redis.exists(*(keys.arq_retry(job_id) for job_id in ids))  # nor ARQ's own counter
    for job in response.json()["jobs"]:
        finished = await read_job(http, job["id"])
        assert finished["status"] == "succeeded"
        assert finished["attempts"] == 1


async def test_the_stand_in_answers_run_jobs_start_with_the_claims_replies() -> None:
    stand_in = ClaimedStartPipeline("j1", ClaimedStart(record=b"job", job_try=3, aborted=True))
    async with stand_in.pipeline(transaction=True) as pipe:
        pipe.get(job_key_prefix + "j1")
        pipe.incr(retry_key_prefix + "j1")
        pipe.expire(retry_key_prefix + "j1", 88400)
        pipe.zrem(abort_jobs_ss, "j1")
        assert await pipe.execute() == [b"job", 3, True, 1]


async def test_the_stand_in_refuses_any_other_command_so_a_changed_arq_fails_loudly() -> None:
    stand_in = ClaimedStartPipeline("j1", ClaimedStart(record=b"job", job_try=1, aborted=False))
    async with stand_in.pipeline(transaction=True) as pipe:
        pipe.get(job_key_prefix + "another-job")
        pipe.incr(retry_key_prefix + "j1")
        pipe.expire(retry_key_prefix + "j1", 88400)
        with pytest.raises(RuntimeError, match="not the start the claim read"):
            await pipe.execute()
