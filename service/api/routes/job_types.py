"""/v1/job-types: the catalogue, with each type's params and result JSON Schemas."""

from __future__ import annotations

from fastapi import APIRouter

from jobs.limits import Limit, effective_limits
from service.api.auth import ReadKey
from service.api.deps import ServicesDep
from service.api.errors import problems
from service.api.schemas import JobTypeList, JobTypeView, LimitView, RetryPolicyView

router = APIRouter(prefix="/v1/job-types", tags=["job types"], responses=problems({}))


@router.get("", response_model=JobTypeList, summary="List job types")
async def list_job_types(caller: ReadKey, services: ServicesDep) -> JobTypeList:
    limits = effective_limits(
        {n: jt.limit for n, jt in services.job_types.items()}, services.settings.limit_overrides
    )
    return JobTypeList(
        job_types=[
            JobTypeView(
                name=jt.name,
                description=jt.description,
                queue=jt.queue,
                queues=list(jt.allowed_queues),
                timeout_s=jt.timeout_s or services.settings.job_timeout_s,
                max_attempts=jt.max_attempts,
                retry=RetryPolicyView(base_s=jt.retry.base_s, cap_s=jt.retry.cap_s),
                limit=_limit_view(limits.get(jt.name)),
                params_schema=jt.params_model.model_json_schema(),
                result_schema=jt.result_model.model_json_schema(mode="serialization"),
            )
            for jt in sorted(services.job_types.values(), key=lambda jt: jt.name)
        ]
    )


def _limit_view(limit: Limit | None) -> LimitView | None:
    if limit is None:
        return None
    return LimitView(
        rate=limit.rate, per_s=limit.per_s, concurrency=limit.concurrency, keyed=limit.key is not None
    )
