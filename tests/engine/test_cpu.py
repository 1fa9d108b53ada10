"""The process pool for CPU-bound work survives the death of one of its processes."""

from __future__ import annotations

import os

import pytest

from jobs.cpu import CpuPool
from jobs.errors import RetryableJobError


def die() -> None:
    os._exit(1)


def square(value: int) -> int:
    return value * value


async def test_a_dead_child_fails_only_its_attempt_and_the_pool_recovers() -> None:
    pool = CpuPool(max_workers=1)
    try:
        assert await pool.run(square, 7) == 49
        with pytest.raises(RetryableJobError):
            await pool.run(die)
        assert await pool.run(square, 8) == 64
    finally:
        await pool.close()
