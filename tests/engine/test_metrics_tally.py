"""A worker's metrics tally: its attempts' waits, run times, ends and retries as increments of the
cluster's counters, bucketed as the scripts bucket them, kept until written."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.metrics import BUCKETS_MS, Tally, bucket_of, parse_counters, write_tally


def test_a_duration_falls_in_the_first_bucket_it_does_not_exceed() -> None:
    assert bucket_of(0) == 0
    assert bucket_of(BUCKETS_MS[0]) == 0
    assert bucket_of(BUCKETS_MS[0] + 1) == 1
    assert bucket_of(BUCKETS_MS[-1]) == len(BUCKETS_MS) - 1
    assert bucket_of(BUCKETS_MS[-1] + 1) == len(BUCKETS_MS)  # +Inf


async def test_a_written_tally_reads_back_as_the_counters_of_what_happened(redis: ArqRedis) -> None:
    tally = Tally()
    tally.claimed("diag.noop", "default", 3)
    tally.claimed("diag.noop", "default", 70)
    tally.ended("diag.noop", "default", "succeeded", 7)
    tally.retried("diag.fail", "default")
    async with redis.pipeline(transaction=False) as pipe:
        write_tally(pipe, tally.take())
        await pipe.execute()
    counters = parse_counters(await redis.hgetall(keys.METRICS))
    wait, run = counters.wait["diag.noop", "default"], counters.run["diag.noop", "default"]
    assert (wait.count, wait.sum_ms, wait.counts[bucket_of(3)], wait.counts[bucket_of(70)]) == (2, 73, 1, 1)
    assert (run.count, run.sum_ms, run.counts[bucket_of(7)]) == (1, 7, 1)
    assert counters.finished == {("diag.noop", "default", "succeeded"): 1}
    assert counters.retries == {("diag.fail", "default"): 1}
    assert tally.take() == {}  # taken once


def test_a_tally_given_back_after_a_failed_write_is_written_next_time() -> None:
    tally = Tally()
    tally.ended("diag.noop", "default", "failed", 1)
    taken = tally.take()
    tally.ended("diag.noop", "default", "failed", 1)
    tally.give_back(taken)
    assert tally.take()["f|diag.noop|default|failed"] == 2
