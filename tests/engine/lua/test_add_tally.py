"""add_tally.lua: a worker's numbered batch of metric increments is added to the cluster's counters once."""

from __future__ import annotations

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine import lua as scripts


async def test_add_tally_adds_a_batch_once_and_never_one_numbered_before_it(redis: ArqRedis) -> None:
    add = redis.register_script(scripts.ADD_TALLY)
    assert await add(args=["w1", 1, "s|diag.noop|default", 2, "r|diag.noop|default", 1]) == 1
    assert await add(args=["w1", 1, "s|diag.noop|default", 2, "r|diag.noop|default", 1]) == 0  # again
    assert await add(args=["w1", 2, "s|diag.noop|default", 5]) == 1
    assert await add(args=["w1", 1, "s|diag.noop|default", 2]) == 0  # older than the last added
    assert await add(args=["w2", 1, "s|diag.noop|default", 1]) == 1  # another worker's numbers
    assert await redis.hgetall(keys.METRICS) == {b"s|diag.noop|default": b"8", b"r|diag.noop|default": b"1"}
    assert 0 < await redis.pttl(keys.tallied("w1")) <= keys.TALLIED_MEMORY_MS
