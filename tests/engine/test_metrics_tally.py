"""A worker's metrics tally: its attempts' waits, run times, ends and retries as increments of the
cluster's counters, bucketed as the scripts bucket them, kept until written."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.metrics import BUCKETS_MS, Tally, bucket_of, parse_counters
from jobs.engine.queue_ops import JobQueues


def test_a_duration_falls_in_the_first_bucket_it_does_not_exceed() -> None:
    assert bucket_of(0) == 0
    assert bucket_of(BUCKETS_MS[0]) == 0
    assert bucket_of(BUCKETS_MS[0] + 1) == 1
    assert bucket_of(BUCKETS_MS[-1]) == len(BUCKETS_MS) - 1
    assert bucket_of(BUCKETS_MS[-1] + 1) == len(BUCKETS_MS)  # +Inf


async def written(redis: ArqRedis, tally: Tally, worker_id: str = "w1") -> None:
    """What the tally holds sent as a worker's beat sends it, and confirmed."""
    batches = tally.take()
    async with redis.pipeline(transaction=False) as pipe:
        await JobQueues(redis).add_tally(worker_id, batches, client=pipe)
        await pipe.execute()
    tally.confirm(batches)


async def test_a_written_tally_reads_back_as_the_counters_of_what_happened(redis: ArqRedis) -> None:
    tally = Tally()
    tally.claimed("diag.noop", "default", 3)
    tally.claimed("diag.noop", "default", 70)
    tally.ended("diag.noop", "default", "succeeded", 7)
    tally.retried("diag.fail", "default")
    await written(redis, tally)
    counters = parse_counters(await redis.hgetall(keys.METRICS))
    wait, run = counters.wait["diag.noop", "default"], counters.run["diag.noop", "default"]
    assert (wait.count, wait.sum_ms, wait.counts[bucket_of(3)], wait.counts[bucket_of(70)]) == (2, 73, 1, 1)
    assert (run.count, run.sum_ms, run.counts[bucket_of(7)]) == (1, 7, 1)
    assert counters.finished == {("diag.noop", "default", "succeeded"): 1}
    assert counters.retries == {("diag.fail", "default"): 1}
    assert tally.take() == []  # confirmed: not sent again


async def test_a_batch_whose_write_was_not_confirmed_is_sent_again_and_counted_once(redis: ArqRedis) -> None:
    """The reply to a beat is lost (a dropped connection, a partition) after Redis added the batch: the
    worker cannot tell, sends it again with the next one, and each counts once."""
    tally = Tally()
    tally.ended("diag.noop", "default", "failed", None)
    lost_reply = tally.take()
    async with redis.pipeline(transaction=False) as pipe:
        await JobQueues(redis).add_tally("w1", lost_reply, client=pipe)
        await pipe.execute()  # added, but the worker never hears so: no confirm
    tally.ended("diag.noop", "default", "failed", None)
    assert [batch.number for batch in tally.take()] == [1, 2]
    await written(redis, tally)
    assert parse_counters(await redis.hgetall(keys.METRICS)).finished == {
        ("diag.noop", "default", "failed"): 2
    }
    # another worker's batches are numbered on their own
    other = Tally()
    other.ended("diag.noop", "default", "failed", None)
    await written(redis, other, worker_id="w2")
    assert parse_counters(await redis.hgetall(keys.METRICS)).finished == {
        ("diag.noop", "default", "failed"): 3
    }
