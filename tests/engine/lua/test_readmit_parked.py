"""readmit_parked.lua: jobs parked at a concurrency limit go back in line, in the order they were parked,
as far as the limit has room now: all of them once it was removed, as many as it grew by once raised."""

from __future__ import annotations

import json

from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import JobQueues
from tests.engine.lua.steps import claim_all, submitted

ONE_AT_A_TIME = {"diag.noop": {"c": 1}}
PARKED = f"{keys.LIMIT_PREFIX}diag.noop:parked"


async def parked_behind_one(queues: JobQueues, count: int) -> list[str]:
    """``count`` + 1 jobs under a limit of one: the first runs, the rest are parked, in this order."""
    job_ids = [f"j{n}" for n in range(count + 1)]
    for job_id in job_ids:
        await submitted(queues, job_id)
    assert [claim.job_id for claim in await claim_all(queues, limits=ONE_AT_A_TIME)] == ["j0"]
    return job_ids[1:]


async def test_a_removed_limit_lets_every_parked_job_go_in_order(queues: JobQueues, redis: ArqRedis) -> None:
    parked = await parked_behind_one(queues, 3)
    assert await redis.smembers(keys.PARKED_LIMITS) == {b"diag.noop"}
    assert await queues.readmit_parked(json.dumps(ONE_AT_A_TIME), most=100) == 0  # still no room

    assert await queues.readmit_parked("{}", most=100) == 3
    assert [claim.job_id for claim in await claim_all(queues)] == parked
    assert not await redis.exists(PARKED, keys.PARKED_LIMITS)


async def test_a_raised_limit_lets_as_many_go_as_it_has_room_for(queues: JobQueues, redis: ArqRedis) -> None:
    parked = await parked_behind_one(queues, 4)
    raised = json.dumps({"diag.noop": {"c": 3}})
    assert await queues.readmit_parked(raised, most=100) == 2  # three at most, one running
    assert [claim.job_id for claim in await claim_all(queues, limits=json.loads(raised))] == parked[:2]
    assert await redis.lrange(PARKED, 0, -1) == [job_id.encode() for job_id in parked[2:]]
    assert await redis.smembers(keys.PARKED_LIMITS) == {b"diag.noop"}


async def test_a_parked_job_cancelled_meanwhile_stays_out_and_most_is_respected(
    queues: JobQueues, redis: ArqRedis
) -> None:
    parked = await parked_behind_one(queues, 3)
    await queues.cancel_waiting(parked[0], message="not wanted", retention_ms=60_000)
    assert await queues.readmit_parked("{}", most=1) == 1
    assert [claim.job_id for claim in await claim_all(queues)] == [parked[1]]
    assert await queues.readmit_parked("{}", most=100) == 1
    assert [claim.job_id for claim in await claim_all(queues)] == [parked[2]]
