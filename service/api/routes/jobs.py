"""/v1/jobs: submit, read, wait for, cancel, list and retry jobs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, status
from pydantic import WithJsonSchema

from jobs.engine.records import JobSnapshot
from jobs.status import JobStatus
from service.api.auth import CancelKey, ReadKey, SubmitKey
from service.api.deps import ServicesDep
from service.api.errors import BODY_PROBLEMS, INVALID_PARAMETER, OVER_QUOTA, problems
from service.api.schemas import (
    JOB_ID_PATTERN,
    JOB_TYPE_PATTERN,
    QUEUE_PATTERN,
    CancelledJobs,
    CancelMatching,
    Job,
    JobBatch,
    JobBatchItems,
    JobError,
    JobLinks,
    JobList,
    JobProgress,
    JobSubmit,
)
from service.api.submissions import prepare, prepare_batch, request_fingerprint
from service.stores.job_store import CURSOR_PATTERN, ListFilter

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, max_length=128, description="The job's id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=255, description="Replays return the first job."
    ),
    # documented narrower than checked: what a header value carries intact, visible ASCII and inner spaces
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$",
        }
    ),
]
Cursor = Annotated[
    str | None,
    Query(max_length=300, description="The `next_cursor` of the page before."),
    # the store reads the cursor and answers one it cannot read with 400; the document says which it can
    WithJsonSchema({"type": "string", "maxLength": 300, "pattern": CURSOR_PATTERN}),
]
#: how long DELETE waits for a running job's abort to land before answering
CANCEL_WAIT_S = 5.0

#: the header of an answer that names a job: where to read it
LOCATION = {
    "Location": {
        "description": "The job's URL, `/v1/jobs/{id}`.",
        "required": True,
        "schema": {"type": "string", "pattern": "^/v1/jobs/[A-Za-z0-9]"},
    }
}
NO_JOB = {404: "No job with this id (another tenant's job is answered the same)."}
#: every problem a job operation may answer; an operation documents the ones it answers with `problems()`
ERRORS = problems(
    {
        **BODY_PROBLEMS,
        400: "The body or a parameter is not well-formed.",
        **NO_JOB,
        409: "The job's state does not allow it.",
        422: "A parameter or a field of the body fails its schema; `errors` points at each.",
        **OVER_QUOTA,
    }
)


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def job_view(snapshot: JobSnapshot) -> Job:
    return Job(
        id=snapshot.id,
        type=snapshot.type,
        queue=snapshot.queue,
        priority=snapshot.priority,
        status=snapshot.status,
        params=snapshot.params,
        result=snapshot.result,
        error=JobError(**snapshot.error) if snapshot.error else None,
        attempts=snapshot.attempts,
        max_attempts=snapshot.max_attempts,
        progress=JobProgress(**snapshot.progress) if snapshot.progress else None,
        cancel_requested=snapshot.cancel_requested,
        created_at=_time(snapshot.created_at) or datetime.now(UTC),
        scheduled_for=_time(snapshot.scheduled_for),
        started_at=_time(snapshot.started_at),
        finished_at=_time(snapshot.finished_at),
        links=JobLinks(self=f"/v1/jobs/{snapshot.id}"),
        replay_of=snapshot.replay_of,
        replayed_as=snapshot.replayed_as,
        depends_on=snapshot.depends_on,
        waiting_for=snapshot.waiting_for,
        schedule=snapshot.schedule,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses={
        202: {"description": "Accepted: the job, queued or deferred.", "headers": LOCATION},
        200: {"model": Job, "description": "An Idempotency-Key replay: the first job.", "headers": LOCATION},
        **problems(
            {
                **BODY_PROBLEMS,
                404: "No job type with this name (GET /v1/job-types lists them).",
                409: "The Idempotency-Key was used with another body, or a job in depends_on failed for good "
                "or was cancelled.",
                422: "A field fails the job type's schema, or a rule stated in words: run_at's window, "
                "backoff.cap_s below base_s, params over the size limit, a depends_on id that names no job "
                "(`unknown_job`). Nothing is enqueued.",
                **OVER_QUOTA,
            }
        ),
    },
    summary="Submit a job",
)
async def submit_job(
    submit: JobSubmit,
    response: Response,
    caller: SubmitKey,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Validate the params against the job type's schema and enqueue; nothing is written when they fail."""
    new_job = prepare(submit, services.job_types, services.settings, tenant=caller.tenant)
    snapshot, created = await services.store.submit(
        new_job,
        job_id=uuid.uuid4().hex,
        quotas=services.settings.default_quotas,
        idempotency_key=idempotency_key,
        request_hash=request_fingerprint(submit) if idempotency_key else "",
    )
    response.headers["Location"] = f"/v1/jobs/{snapshot.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return job_view(snapshot)


@router.post(
    ":batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobBatch,
    responses=problems(
        {
            **BODY_PROBLEMS,
            409: "A job in some item's depends_on failed for good or was cancelled.",
            422: "Items that fail their job type's schema, an unknown type or a rule stated in words (as for "
            "a single submit); each error's pointer names the item's index. Nothing is enqueued.",
            **OVER_QUOTA,
        }
    ),
    summary="Submit up to 1,000 jobs at once",
)
async def submit_batch(batch: JobBatchItems, caller: SubmitKey, services: ServicesDep) -> JobBatch:
    """Every job is validated first (a 422 names each bad item's index), then all are enqueued in one
    pipelined round trip."""
    new_jobs = prepare_batch(batch.jobs, services.job_types, services.settings, tenant=caller.tenant)
    snapshots = await services.store.submit_many(
        [(job, uuid.uuid4().hex) for job in new_jobs],
        tenant=caller.tenant,
        quotas=services.settings.default_quotas,
    )
    return JobBatch(jobs=[job_view(s) for s in snapshots])


@router.get(
    "/{job_id}",
    response_model=Job,
    responses=problems({**NO_JOB, **INVALID_PARAMETER}),
    summary="Read a job, optionally waiting for it",
)
async def get_job(
    job_id: JobId,
    caller: ReadKey,
    services: ServicesDep,
    wait: Annotated[
        float | None, Query(ge=0, le=60, description="Seconds to hold for the job to end.")
    ] = None,
) -> Job:
    if wait:
        return job_view(
            await services.store.wait(job_id, caller.tenant, min(wait, services.settings.max_wait_s))
        )
    return job_view(await services.store.get(job_id, caller.tenant))


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=problems({**NO_JOB, 409: "The job had already finished.", **INVALID_PARAMETER}),
    summary="Cancel a job",
)
async def cancel_job(job_id: JobId, caller: CancelKey, services: ServicesDep) -> Job:
    """A waiting job never starts; a running one is aborted. 409 when it had already finished."""
    return job_view(await services.store.cancel(job_id, caller.tenant, wait_s=CANCEL_WAIT_S))


@router.post(
    ":cancel",
    response_model=CancelledJobs,
    responses=problems(BODY_PROBLEMS),
    summary="Cancel every job that matches",
)
async def cancel_matching(body: CancelMatching, caller: CancelKey, services: ServicesDep) -> CancelledJobs:
    """Every unfinished job of the caller's tenant that the filters match: waiting ones never start,
    running ones are asked to stop. Done in bounded steps; answers how many of each."""
    tally = await services.store.cancel_matching(
        caller.tenant,
        ListFilter(status=body.status, type=body.type, queue=body.queue),
        created_before_ms=None
        if body.created_before is None
        else int(body.created_before.timestamp() * 1000),
    )
    return CancelledJobs(cancelled=tally.cancelled, aborting=tally.aborting)


@router.get(
    "",
    response_model=JobList,
    responses=problems({400: "The cursor is not one this service returned.", **INVALID_PARAMETER}),
    summary="List jobs, newest first",
)
async def list_jobs(
    caller: ReadKey,
    services: ServicesDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    type_: Annotated[str | None, Query(alias="type", pattern=JOB_TYPE_PATTERN, max_length=100)] = None,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> JobList:
    snapshots, next_cursor = await services.store.list_jobs(
        caller.tenant, ListFilter(status=status_, type=type_, queue=queue), limit=limit, cursor=cursor
    )
    return JobList(jobs=[job_view(s) for s in snapshots], next_cursor=next_cursor)


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses={
        202: {"description": "Accepted: the new job.", "headers": LOCATION},
        **problems(
            {
                404: "No job with this id, or its job type no longer exists.",
                409: "The job had not failed or been cancelled, already ran again, or its params no longer "
                "fit its type.",
                **INVALID_PARAMETER,
                **OVER_QUOTA,
            }
        ),
    },
    summary="Run a failed or cancelled job again, as a new job",
)
async def retry_job(
    job_id: JobId,
    response: Response,
    caller: SubmitKey,
    services: ServicesDep,
) -> Job:
    """The new job has the same type, params, queue, priority and attempts, and `replay_of` naming this one;
    this one leaves the dead letters. 409 unless it failed or was cancelled, or when it already ran again."""
    snapshot = await services.dead_letters.retry(job_id, caller.tenant, services.job_types, services.settings)
    response.headers["Location"] = f"/v1/jobs/{snapshot.id}"
    return job_view(snapshot)
