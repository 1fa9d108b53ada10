"""The smallest FastAPI front of vanilla ARQ, for the REST submit benchmark: what an application would write
in a few lines, with no validation beyond the body's shape.

    BENCH_REDIS_URL=redis://… uvicorn bench.peers.arq_api:app
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import ArqRedis, create_pool
from fastapi import FastAPI, Request, status
from pydantic import BaseModel, Field

from bench.peers.arq_vanilla import redis_settings


class Submit(BaseModel):
    function: str
    params: dict[str, Any] = Field(default_factory=dict)


class Batch(BaseModel):
    jobs: list[Submit] = Field(min_length=1, max_length=1000)


class Accepted(BaseModel):
    id: str


class BatchAccepted(BaseModel):
    jobs: list[Accepted]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await create_pool(redis_settings())
    try:
        yield
    finally:
        await app.state.pool.aclose(close_connection_pool=True)


app = FastAPI(lifespan=lifespan)


async def _enqueue(pool: ArqRedis, job: Submit) -> Accepted:
    enqueued = await pool.enqueue_job(job.function, **job.params)
    assert enqueued is not None
    return Accepted(id=enqueued.job_id)


@app.post("/v1/jobs", status_code=status.HTTP_202_ACCEPTED)
async def submit(job: Submit, request: Request) -> Accepted:
    return await _enqueue(request.app.state.pool, job)


@app.post("/v1/jobs:batch", status_code=status.HTTP_202_ACCEPTED)
async def submit_batch(batch: Batch, request: Request) -> BatchAccepted:
    pool: ArqRedis = request.app.state.pool
    return BatchAccepted(jobs=list(await asyncio.gather(*(_enqueue(pool, job) for job in batch.jobs))))
