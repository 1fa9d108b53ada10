"""WorkerSettings is what `arq worker_settings.WorkerSettings` runs: guard it against silent drops."""

from __future__ import annotations

import inspect
import logging
import pickle
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from arq.worker import Worker

import worker_settings
from jobs.engine import keys
from jobs.registry import job_types, schedules
from service.config import Settings


def test_every_worker_settings_attribute_is_one_arq_knows() -> None:
    known = set(inspect.signature(Worker).parameters)
    declared = {name for name in vars(worker_settings.WorkerSettings) if not name.startswith("__")}
    assert declared - known == set()
    assert {"functions", "cron_jobs", "job_serializer", "job_deserializer", "keep_result"} <= declared


def test_worker_runs_every_registered_type_and_the_cron_jobs() -> None:
    settings = Settings()
    names = {f.name for f in worker_settings.WorkerSettings.functions}
    assert names == set(job_types(diagnostics=settings.diagnostics))
    crons = {c.name: c for c in worker_settings.WorkerSettings.cron_jobs}
    assert set(crons) == set(schedules())
    assert (crons["cleanup"].minute, crons["cleanup"].hour) == ({0, 30}, None)
    assert (crons["nightly-report"].minute, crons["nightly-report"].hour) == ({0}, {2})


def test_results_are_kept_seven_days_by_default() -> None:
    assert Settings().result_retention_s == 7 * 86_400
    assert worker_settings.WorkerSettings.keep_result == Settings().result_retention_s


async def test_a_pickled_payload_planted_in_redis_is_never_executed(
    http: httpx.AsyncClient, redis: ArqRedis, run_jobs: Any, tmp_path: Any
) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    job_id = "planted"
    payload = pickle.dumps({"f": "diag.noop", "a": [Exploit()], "k": {}, "t": None, "et": 0})
    await redis.set(keys.arq_job(job_id), payload)
    await redis.zadd(keys.arq_queue("default"), {job_id: 1})
    await redis.zadd(keys.ready("default"), {job_id: 1})

    await run_jobs()

    assert not marker.exists()
    job = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed"
    # planted beside jobsvc's own entries, it is taken for an ARQ producer's job, and refused as one
    assert job["error"]["type"] == "PickleRefused"


async def test_job_params_never_reach_the_worker_logs(
    http: httpx.AsyncClient, run_jobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await http.post("/v1/jobs", json={"type": "diag.sleep", "params": {"seconds": 0.0123456}})
    job_id = response.json()["id"]
    await run_jobs()
    assert (await http.get(f"/v1/jobs/{job_id}")).json()["status"] == "succeeded"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"{job_id}:diag.sleep(…)" in logged
    assert "0.0123456" not in logged
