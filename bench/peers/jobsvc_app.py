"""jobsvc itself: its ARQ workers (``arq worker_settings.WorkerSettings``) and its API under uvicorn. The
suite enqueues through ``JobStore``, the code behind ``POST /v1/jobs`` without the HTTP hop, so that its
latencies compare with the peers' direct clients; the REST benchmark goes through the API."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from pathlib import Path

from arq import ArqRedis

from bench.measure import CountingRedis
from bench.peers.base import BIN, SLEEP_S, Kind, System, uvicorn_workers
from jobs.engine import keys
from jobs.engine.connection import open_pool
from jobs.engine.queue_ops import NewJob
from jobs.engine.records import read_snapshots
from jobs.registry import job_types
from jobs.status import JobStatus
from service.api.schemas import JobSubmit
from service.api.submissions import prepare
from service.config import Settings
from service.stores.event_hub import EventHub
from service.stores.job_store import JobStore

TYPES: dict[Kind, tuple[str, dict[str, object]]] = {
    "noop": ("diag.noop", {}),
    "sleep": ("diag.sleep", {"seconds": SLEEP_S}),
    "stamp": ("diag.stamp", {}),
}
#: the store writes at most this many jobs per pipelined round trip, as a batch submit does
BATCH = 1000


#: the admin key the benchmark gives the API it starts
ADMIN_KEY = "jsk_admin_" + secrets.token_urlsafe(32)


class JobsvcSystem(System):
    name = "jobsvc"
    concurrency = 100
    describe = "jobsvc: ARQ 0.28 + JobsvcWorker, JOBSVC_WORKER_MAX_JOBS=100, other settings default"

    def __init__(self) -> None:
        self._pool: ArqRedis | None = None
        self._store: JobStore | None = None
        self._settings = Settings(diagnostics=True)
        self._catalogue = job_types(diagnostics=True)

    def worker_args(self) -> list[str | Path]:
        return [BIN / "arq", "worker_settings.WorkerSettings"]

    def worker_env(self, redis_url: str) -> dict[str, str]:
        return {
            "JOBSVC_REDIS_URL": redis_url,
            "JOBSVC_DIAGNOSTICS": "true",
            "JOBSVC_WORKER_MAX_JOBS": str(self.concurrency),
            "JOBSVC_ADMIN_API_KEY": ADMIN_KEY,
            # the quotas stay on (checked in the submit script) but never bind in a benchmark
            "JOBSVC_TENANT_SUBMITS_PER_S": "10000000",
            "JOBSVC_TENANT_MAX_OPEN_JOBS": "100000000",
        }

    def authorization(self) -> str | None:
        return f"Bearer {ADMIN_KEY}"

    def api_args(self, port: int, processes: int = 1) -> list[str | Path]:
        return [
            BIN / "uvicorn",
            "service.main:app",
            "--port",
            str(port),
            "--no-access-log",
            *uvicorn_workers(processes),
        ]

    def rest_job(self, kind: Kind) -> dict[str, object]:
        job_type, params = TYPES[kind]
        return {"type": job_type, "params": params}

    async def connect(self, redis_url: str) -> None:
        self._pool = await open_pool(redis_url)
        settings = self._settings
        self._store = JobStore(
            self._pool,
            queued_job_expiry_s=settings.queued_job_expiry_s,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            retention_s=lambda name: settings.result_retention_s,
            events=EventHub(self._pool, self._pool.client()),  # never waited on: the hub is not started
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose(close_connection_pool=True)
        self._pool = self._store = None

    def _new_job(self, kind: Kind) -> NewJob:
        job_type, params = TYPES[kind]
        submit = JobSubmit(type=job_type, params=params)
        return prepare(submit, self._catalogue, self._settings, tenant=keys.DEFAULT_TENANT)

    async def enqueue(self, kind: Kind) -> str:
        assert self._store is not None
        snapshot, _ = await self._store.submit(self._new_job(kind), job_id=uuid.uuid4().hex)
        return snapshot.id

    async def enqueue_many(self, kind: Kind, count: int) -> list[str]:
        assert self._store is not None
        ids: list[str] = []
        for start in range(0, count, BATCH):
            batch = [(self._new_job(kind), uuid.uuid4().hex) for _ in range(min(BATCH, count - start))]
            written = await self._store.submit_many(batch, tenant=keys.DEFAULT_TENANT)
            ids += [snapshot.id for snapshot in written]
        return ids

    async def remaining(self, redis: CountingRedis, ids: Sequence[str]) -> int:
        # a job stays in ARQ's queue until it has finished for good
        return await redis.number("ZCARD", keys.arq_queue(keys.DEFAULT_QUEUE))

    async def started_at(self, ids: Sequence[str]) -> dict[str, float]:
        assert self._pool is not None
        found: dict[str, float] = {}
        for snapshot in await read_snapshots(self._pool, ids):
            if snapshot is not None and snapshot.status is JobStatus.succeeded and snapshot.result:
                found[snapshot.id] = float(snapshot.result["started_at"])
        return found
