"""Steps the script tests share: jobs written by the scripts themselves (submit, claim, release_claim), as
the API and the workers write them."""

from __future__ import annotations

import json
import time
from typing import Any

from jobs.engine import keys
from jobs.engine.queue_ops import Claim, EnqueueCall, JobQueues, NewJob, enqueue_call

LEASE_MS = 30_000
QUEUED_EXPIRY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def job_call(job_id: str, **fields: Any) -> EnqueueCall:
    """The enqueue call of a ``diag.noop`` job with ``job_id``; ``fields`` override ``NewJob``'s."""
    job = NewJob(
        **{
            "type": "diag.noop",
            "params": {},
            "queue": keys.DEFAULT_QUEUE,
            "priority": 5,
            "run_at_ms": None,
            "max_attempts": 3,
            "timeout_s": 60.0,
            "retention_s": 3600,
            **fields,
        }
    )
    return enqueue_call(job, job_id, queued_expiry_ms=QUEUED_EXPIRY_MS)


async def submitted(queues: JobQueues, job_id: str, **fields: Any) -> EnqueueCall:
    """A job written by the submit script (asserted created)."""
    call = job_call(job_id, **fields)
    reply = await queues.submit(call)
    assert reply.outcome == "created", reply
    return call


async def claim_all(
    queues: JobQueues,
    *,
    free: int = 10,
    limits: dict[str, Any] | None = None,
    queue_weights: tuple[tuple[str, int], ...] = ((keys.DEFAULT_QUEUE, 1),),
    credits: dict[str, int] | None = None,
) -> list[Claim]:
    claims, _ = await queues.claim(
        lease_ms=LEASE_MS,
        free=free,
        limits=json.dumps(limits or {}),
        queues=queue_weights,
        credits={} if credits is None else credits,
    )
    return claims


async def claimed(queues: JobQueues, job_id: str, **fields: Any) -> Claim:
    """A job submitted then claimed (the only ready one)."""
    await submitted(queues, job_id, **fields)
    claims = await claim_all(queues)
    assert [claim.job_id for claim in claims] == [job_id]
    return claims[0]


async def ended(queues: JobQueues, job_id: str, outcome: str = "succeeded") -> Claim:
    """A job submitted, claimed and ended with ``outcome``."""
    claim = await claimed(queues, job_id)
    await queues.release(claim, ended=True, result=b"result", result_ttl_ms=60_000, outcome=outcome)
    return claim
