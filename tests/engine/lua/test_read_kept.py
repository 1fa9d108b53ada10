"""read_kept.lua, with kept_now.lua and the ends behind it: what a tenant keeps in Redis against its
storage budget. A job counts from its submit until its records expire after its end, by the bytes of its
records."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues, Kept, Quotas
from service.stores.tenant_store import TenantStore
from tests.engine.lua.steps import claim_all, ended, job_call, now_ms, submitted

QUOTAS = Quotas(max_open_jobs=100, submits_per_s=100)


async def kept(redis: ArqRedis, tenant: str = keys.DEFAULT_TENANT) -> Kept:
    return (await TenantStore(redis, defaults=QUOTAS).get(tenant)).kept


async def record_bytes(redis: ArqRedis, *job_ids: str) -> int:
    """What the job and result records of ``job_ids`` take in Redis now."""
    records = [key for job_id in job_ids for key in (keys.arq_job(job_id), keys.arq_result(job_id))]
    return sum([await redis.strlen(key) for key in records])


async def test_a_submitted_job_counts_with_its_records_bytes(queues: JobQueues, redis: ArqRedis) -> None:
    call = await submitted(queues, "j1")
    assert call.size == await record_bytes(redis, "j1")
    assert await kept(redis) == Kept(jobs=1, bytes=call.size)


async def test_a_batch_counts_every_job(queues: JobQueues, redis: ArqRedis) -> None:
    calls = [job_call(f"j{i}", tenant="acme") for i in range(5)]
    await queues.submit_many(calls, quotas=QUOTAS)
    ids = [f"j{i}" for i in range(5)]
    assert await kept(redis, "acme") == Kept(jobs=5, bytes=await record_bytes(redis, *ids))


async def test_an_ended_job_counts_by_its_result_until_its_records_expire(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await ended(queues, "done")
    await submitted(queues, "open")
    assert await kept(redis) == Kept(jobs=2, bytes=await record_bytes(redis, "done", "open"))

    # time passes: the bucket the ended job's records expire in is over
    buckets = keys.tenant_kept(keys.DEFAULT_TENANT) + ":until"
    [(bucket, expires_ms)] = await redis.zrange(buckets, 0, -1, withscores=True)
    assert expires_ms >= await redis.pexpiretime(keys.arq_result("done"))
    await redis.zadd(buckets, {bucket: 1})
    assert await kept(redis) == Kept(jobs=1, bytes=await record_bytes(redis, "open"))
    assert await redis.zcard(buckets) == 0
    assert not await redis.exists(f"{keys.tenant_kept(keys.DEFAULT_TENANT)}:{bucket.decode()}")


async def test_a_job_that_waits_again_still_counts_once(queues: JobQueues, redis: ArqRedis) -> None:
    await submitted(queues, "j1")
    [claim] = await claim_all(queues)
    await queues.release(claim, ended=False, delay_ms=0)
    assert (await kept(redis)).jobs == 1


async def test_a_dead_letter_counts_until_its_longer_retention_ends(
    queues: JobQueues, redis: ArqRedis
) -> None:
    await submitted(queues, "buried")
    [claim] = await claim_all(queues)
    await queues.release(
        claim, ended=True, result=b"failed", result_ttl_ms=60_000, outcome="failed", bury_for_ms=86_400_000
    )
    assert await kept(redis) == Kept(jobs=1, bytes=await record_bytes(redis, "buried"))
    buckets = keys.tenant_kept(keys.DEFAULT_TENANT) + ":until"
    [(_, expires_ms)] = await redis.zrange(buckets, 0, -1, withscores=True)
    assert expires_ms >= await redis.pexpiretime(keys.arq_result("buried")) > now_ms() + 80_000_000


async def test_every_expired_bucket_is_taken_off_however_many_there_are(
    queues: JobQueues, redis: ArqRedis
) -> None:
    """After a long idle stretch a tenant has many expired buckets: all leave its count at once, so none
    is left to refuse a submit that fits."""
    key = keys.tenant_kept(keys.DEFAULT_TENANT)
    for bucket in range(1, 201):  # as kept_until.lua writes them, all over by now
        await redis.hset(f"{key}:{bucket}", mapping={"jobs": 1, "bytes": 10})
        await redis.zadd(f"{key}:until", {str(bucket): bucket})
    await redis.hset(key, mapping={"jobs": 200, "bytes": 2000})
    assert await kept(redis) == Kept(jobs=0, bytes=0)
    assert await redis.zcard(f"{key}:until") == 0
