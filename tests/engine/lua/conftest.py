"""Each script run on the real server (``tests/conftest.py``'s ``redis``), one test file per script."""

from __future__ import annotations

import pytest
from arq import ArqRedis

from jobs.engine.queue_ops import JobQueues


@pytest.fixture
def queues(redis: ArqRedis) -> JobQueues:
    return JobQueues(redis)
