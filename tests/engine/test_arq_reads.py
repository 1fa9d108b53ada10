"""ARQ's own ``Job`` reads every job jobsvc runs, as an ARQ user's code would: its status while it waits
and once it ran, its result, and the result's record, which names the queue the job ran from (a jobsvc
worker serves several queues where ARQ's serves one)."""

from __future__ import annotations

from typing import Any

import msgpack
from arq import ArqRedis
from arq.jobs import Job, JobStatus

from jobs.engine import keys
from tests.helpers import submit, wait_for_status


async def test_arqs_job_reads_a_job_submitted_over_rest_from_its_queue_to_its_result(
    http: Any, redis: ArqRedis, background_worker: Any
) -> None:
    submitted = await submit(http, "diag.noop", {}, queue="bulk")
    job = Job(submitted["id"], redis, _queue_name=keys.arq_queue("bulk"), _deserializer=msgpack.unpackb)
    assert await job.status() == JobStatus.queued
    async with background_worker():  # serving critical first, then default and bulk
        await wait_for_status(http, submitted["id"], "succeeded")
    assert await job.status() == JobStatus.complete
    assert await job.result(timeout=1) == {}
    ran = await job.result_info()
    assert ran is not None
    assert (ran.function, ran.success, ran.job_try) == ("diag.noop", True, 1)
    assert ran.queue_name == keys.arq_queue("bulk")
