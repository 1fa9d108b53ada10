"""/v1/dead-letters: jobs that failed for good; read them, replay them as new jobs, delete them.

The bulk routes (``:replay``, ``:purge``) are declared before the ``{job_id}`` ones; ids cannot contain
``/``, so ``/v1/dead-letters/{job_id}`` never matches them anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from service.api.auth import CancelKey, ReadKey, SubmitKey
from service.api.deps import ServicesDep
from service.api.errors import BODY_PROBLEMS, INVALID_PARAMETER, OVER_QUOTA, problems
from service.api.routes.jobs import LOCATION, Cursor, job_view
from service.api.schemas import (
    JOB_ID_PATTERN,
    JOB_TYPE_PATTERN,
    QUEUE_PATTERN,
    AttemptView,
    DeadLetter,
    DeadLetterList,
    DeadLetterPurgeResult,
    DeadLetterReplay,
    DeadLetterReplayResult,
    DeadLetterSelection,
    Job,
    JobError,
    ReplayedDeadLetter,
)
from service.stores.dead_letter_store import DeadLetterRecord, as_seen_by

router = APIRouter(tags=["dead-letters"])

DeadLetterId = Annotated[
    str, Path(pattern=JOB_ID_PATTERN, max_length=128, description="The id of the job that failed.")
]
NO_DEAD_LETTER = {404: "No dead letter with this id (another tenant's is answered the same)."}


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _attempt_view(record: dict[str, Any]) -> AttemptView:
    started, finished = record.get("started_at"), record.get("finished_at")
    return AttemptView(
        attempt=record["attempt"],
        started_at=_moment(started) if started else None,
        finished_at=_moment(finished) if finished else None,
        error=JobError(**record["error"]),
    )


def dead_letter_view(record: DeadLetterRecord) -> DeadLetter:
    return DeadLetter(
        id=record.job.id,
        job=job_view(record.job),
        failed_at=_moment(record.failed_at),
        attempts=[_attempt_view(attempt) for attempt in record.attempts],
        traceback=record.traceback,
        replayed_as=record.job.replayed_as,
    )


@router.post(
    "/v1/dead-letters:replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeadLetterReplayResult,
    responses=problems({**BODY_PROBLEMS, 429: "Over the tenant's quota before the first one was replayed."}),
    summary="Replay dead letters in bulk",
)
async def replay_dead_letters(
    selection: DeadLetterReplay,
    caller: SubmitKey,
    services: ServicesDep,
) -> DeadLetterReplayResult:
    """Replay up to `limit` dead letters of `type` and/or `queue`, newest first, each as a new job. Those
    that cannot run again (their type is gone, their params no longer fit) are left where they are."""
    replayed = await services.dead_letters.replay_where(
        caller.tenant,
        services.job_types,
        services.settings,
        type=selection.type,
        queue=selection.queue,
        limit=selection.limit,
    )
    return DeadLetterReplayResult(
        replayed=[
            ReplayedDeadLetter(dead_letter_id=old_id, job=job_view(snapshot)) for old_id, snapshot in replayed
        ],
        count=len(replayed),
    )


@router.post(
    "/v1/dead-letters:purge",
    response_model=DeadLetterPurgeResult,
    responses=problems(BODY_PROBLEMS),
    summary="Delete dead letters in bulk",
)
async def purge_dead_letters(
    selection: DeadLetterSelection, caller: CancelKey, services: ServicesDep
) -> DeadLetterPurgeResult:
    """Delete every dead letter of `type` and/or `queue` with its records; `{}` deletes them all."""
    return DeadLetterPurgeResult(
        purged=await services.dead_letters.purge_where(
            caller.tenant, type=selection.type, queue=selection.queue
        )
    )


@router.get(
    "/v1/dead-letters",
    response_model=DeadLetterList,
    responses=problems({400: "The cursor is not one this service returned.", **INVALID_PARAMETER}),
    summary="List dead letters",
)
async def list_dead_letters(
    caller: ReadKey,
    services: ServicesDep,
    type_: Annotated[str | None, Query(alias="type", pattern=JOB_TYPE_PATTERN, max_length=100)] = None,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> DeadLetterList:
    """Jobs that failed for good, newest first, with their attempts; the final traceback for admin keys
    only (empty for the others)."""
    records, next_cursor = await services.dead_letters.list(
        caller.tenant, type=type_, queue=queue, limit=limit, cursor=cursor
    )
    return DeadLetterList(
        dead_letters=[dead_letter_view(as_seen_by(r, caller.scopes)) for r in records],
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/dead-letters/{job_id}",
    response_model=DeadLetter,
    responses=problems({**NO_DEAD_LETTER, **INVALID_PARAMETER}),
    summary="Read a dead letter",
)
async def get_dead_letter(job_id: DeadLetterId, caller: ReadKey, services: ServicesDep) -> DeadLetter:
    return dead_letter_view(as_seen_by(await services.dead_letters.get(job_id, caller.tenant), caller.scopes))


@router.post(
    "/v1/dead-letters/{job_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses={
        202: {"description": "Accepted: the new job.", "headers": LOCATION},
        **problems(
            {
                404: "No dead letter with this id, or its job type no longer exists.",
                409: "It already ran again, or its params no longer fit its type.",
                **INVALID_PARAMETER,
                **OVER_QUOTA,
            }
        ),
    },
    summary="Replay a dead letter as a new job",
)
async def replay_dead_letter(
    job_id: DeadLetterId,
    response: Response,
    caller: SubmitKey,
    services: ServicesDep,
) -> Job:
    """The new job has `replay_of` naming the dead one, which leaves the dead letters with `replayed_as`
    set. 404 when the job type no longer exists."""
    snapshot = await services.dead_letters.replay(
        job_id, caller.tenant, services.job_types, services.settings
    )
    response.headers["Location"] = f"/v1/jobs/{snapshot.id}"
    return job_view(snapshot)


@router.delete(
    "/v1/dead-letters/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems({**NO_DEAD_LETTER, **INVALID_PARAMETER}),
    summary="Delete a dead letter",
)
async def delete_dead_letter(job_id: DeadLetterId, caller: CancelKey, services: ServicesDep) -> None:
    """Remove it from the dead letters and delete the job's records."""
    await services.dead_letters.delete(job_id, caller.tenant)
