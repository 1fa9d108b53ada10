"""adopt_foreign.lua: the jobs ARQ's own producers enqueued, as the intake judged them, each taken in only
if it still waits uncounted with the record it was judged by: adopted as jobsvc's own, failed as a job of
the producers' tenant, or refused with ARQ's result record only; a tenant's quota holds one back."""

from __future__ import annotations

from typing import Any

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine import lua as scripts
from jobs.engine.arq_intake import AdoptOutcome, decode_find_foreign, take_in
from jobs.engine.arq_producers import ArqProducers, Foreign, Intake, IntakeRules
from jobs.engine.queue_ops import Quotas
from jobs.registry import job_types
from tests.engine.lua.steps import QUEUED_EXPIRY_MS

Q = keys.DEFAULT_QUEUE
TENANT = "arq-team"
RULES = IntakeRules(
    job_types=job_types(diagnostics=True),
    producers=ArqProducers(tenant=TENANT),
    default_timeout_s=60.0,
    result_retention_s=3600,
    dead_letter_retention_s=86_400,
    queued_expiry_ms=QUEUED_EXPIRY_MS,
)


async def enqueued(redis: ArqRedis, job_id: str, function: str = "diag.noop", **kwargs: Any) -> Foreign:
    """A job of ARQ's own client in jobsvc's default queue, as the find script reads it."""
    await redis.enqueue_job(function, _job_id=job_id, **kwargs)
    find = redis.register_script(scripts.FIND_FOREIGN)
    found = decode_find_foreign(await find(args=[Q, "w1", 5_000, 500, "scan", "0"]), Q)
    assert found is not None
    return next(job for job in found.found if job.job_id == job_id)


async def adopt(
    redis: ArqRedis, intakes: list[Intake], quotas: Quotas | None = None
) -> tuple[list[AdoptOutcome], int]:
    return await take_in(redis.register_script(scripts.ADOPT_FOREIGN), intakes, quotas, queue=Q)


async def test_a_job_judged_fit_becomes_jobsvcs_own_with_its_id_and_record_ttl(redis: ArqRedis) -> None:
    found = await enqueued(redis, "theirs")
    ttl = await redis.pttl(keys.arq_job("theirs"))
    assert await adopt(redis, [RULES.examine(found)]) == (["adopted"], 0)
    meta = await redis.hgetall(keys.job_meta("theirs"))
    assert (meta[b"type"], meta[b"tenant"], meta[keys.ARQ_ENTRY_FIELD.encode()]) == (
        b"diag.noop", TENANT.encode(), Q.encode()
    )  # fmt: skip
    assert await redis.hget(keys.ARQ_OWNED, Q) == b"1"
    assert await redis.zscore(keys.ready(Q), "theirs") is not None
    assert await redis.zscore(keys.index_all(TENANT), "theirs") is not None
    assert ttl - 1_000 <= await redis.pttl(keys.arq_job("theirs")) <= ttl


async def test_a_job_that_cannot_run_fails_as_one_of_the_producers_tenant(redis: ArqRedis) -> None:
    found = await enqueued(redis, "bad", "diag.sleep", params={"seconds": "long"})
    intake = RULES.examine(found)
    assert intake.action == "fail"
    assert await adopt(redis, [intake]) == (["failed"], 0)
    assert await redis.zscore(keys.arq_queue(Q), "bad") is None
    assert await redis.exists(keys.arq_job("bad")) == 0
    assert await redis.get(keys.arq_result("bad")) == intake.payload
    assert await redis.hget(keys.job_meta("bad"), "outcome") == b"failed"
    assert await redis.zscore(keys.dead_letters(TENANT), "bad") is not None


async def test_a_job_id_jobsvc_may_not_hold_is_refused_with_arqs_result_only(redis: ArqRedis) -> None:
    found = await enqueued(redis, "not an id!")
    intake = RULES.examine(found)
    assert intake.action == "refuse"
    assert await adopt(redis, [intake]) == (["refused"], 0)
    assert await redis.get(keys.arq_result("not an id!")) == intake.payload
    assert await redis.exists(keys.job_meta("not an id!"), keys.arq_job("not an id!")) == 0
    assert await redis.zscore(keys.arq_queue(Q), "not an id!") is None


async def test_a_job_no_longer_as_judged_is_left_alone(redis: ArqRedis) -> None:
    intakes = [RULES.examine(await enqueued(redis, job_id)) for job_id in ("rewritten", "gone", "counted")]
    await redis.set(keys.arq_job("rewritten"), b"another record")
    await redis.zrem(keys.arq_queue(Q), "gone")
    await redis.hset(keys.job_meta("counted"), keys.ARQ_ENTRY_FIELD, Q)  # taken in by another worker
    assert (await adopt(redis, intakes))[0] == ["changed", "changed", "changed"]
    assert await redis.hget(keys.ARQ_OWNED, Q) is None
    assert await redis.exists(keys.job_meta("rewritten"), keys.job_meta("gone")) == 0


async def test_a_job_over_its_tenants_quota_waits_in_arqs_queue_uncounted(redis: ArqRedis) -> None:
    found = await enqueued(redis, "theirs")
    none_open = Quotas(max_open_jobs=0, submits_per_s=10)
    assert await adopt(redis, [RULES.examine(found)], none_open) == (["over_open"], 1)
    assert await redis.zscore(keys.arq_queue(Q), "theirs") is not None
    assert await redis.exists(keys.job_meta("theirs")) == 0
