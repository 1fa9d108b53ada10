"""Redis behind Sentinel: the API and the workers find the primary through the Sentinels and follow it
through a failover; with ``JOBSVC_REDIS_MIN_REPLICAS`` a 202 means the replicas have the job, so the
failover loses no accepted job. A real primary, real replicas and three real Sentinels, and the primary
killed with SIGKILL while jobs flow."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.sentinels import SentinelCluster, free_port, sentinel_cluster
from jobs.engine import keys
from service.api.app import create_app
from service.config import Settings
from tests.engine.test_reliability import start_worker_process, worker_env
from tests.helpers import assert_problem, serve, wait_for_status

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path / "cluster", replicas=2) as running:
        yield running


def behind_sentinels(settings: Settings, cluster: SentinelCluster, **update: Any) -> Settings:
    return settings.model_copy(
        update={"redis_url": "redis://sentinel-named-primary/0", "redis_sentinels": cluster.sentinels_setting}
        | update
    )


def api(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serve(create_app(settings))


async def test_a_202_means_every_required_replica_has_the_job(
    settings: Settings, cluster: SentinelCluster
) -> None:
    async with api(behind_sentinels(settings, cluster, redis_min_replicas=2)) as http:
        for _ in range(20):
            response = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
            assert response.status_code == 202, response.text
            job_key = keys.job_meta(response.json()["id"])
            # read at once from each replica, not from the primary
            for replica in cluster.servers[1:]:
                assert replica.client().exists(job_key) == 1


async def test_a_submit_the_replicas_do_not_confirm_is_refused_with_503_and_accepted_once_when_sent_again(
    settings: Settings, cluster: SentinelCluster
) -> None:
    lagging = cluster.servers[2]
    settings = behind_sentinels(settings, cluster, redis_min_replicas=2, redis_min_replicas_timeout_ms=200)
    body = {"type": "diag.noop", "params": {}}
    headers = {"Idempotency-Key": "report-2026-12"}
    async with api(settings) as http:
        lagging.process.send_signal(signal.SIGSTOP)
        try:
            refused = await http.post("/v1/jobs", json=body, headers=headers)
        finally:
            lagging.process.send_signal(signal.SIGCONT)
        problem = assert_problem(refused, 503)
        assert "1 of 2 replicas" in problem["detail"]
        assert refused.headers["Retry-After"] == "1"

        async with asyncio.timeout(10):
            while (again := await http.post("/v1/jobs", json=body, headers=headers)).status_code == 503:
                await asyncio.sleep(0.1)
        assert again.status_code == 200, again.text  # the job the refused submit wrote, not a second one
        listed = (await http.get("/v1/jobs", params={"type": "diag.noop"})).json()["jobs"]
        assert [job["id"] for job in listed] == [again.json()["id"]]


async def test_a_primary_turned_replica_answers_503_to_submits_that_wait_for_replicas(
    settings: Settings, cluster: SentinelCluster
) -> None:
    """The old primary after a failover, before clients move: a new submit's write is refused, and so is
    the WAIT behind a resent one (whose script only reads); both are Redis unavailable, a 503 to resend,
    not a server error."""
    primary = cluster.primary().client()
    body = {"type": "diag.noop", "params": {}}
    headers = {"Idempotency-Key": "nightly-2026-12-06"}
    async with api(behind_sentinels(settings, cluster, redis_min_replicas=1)) as http:
        first = await http.post("/v1/jobs", json=body, headers=headers)
        assert first.status_code == 202, first.text
        primary.replicaof("127.0.0.1", str(free_port()))  # a replica of a server that is gone
        try:
            new = await http.post("/v1/jobs", json=body)
            resent = await http.post("/v1/jobs", json=body, headers=headers)
        finally:
            primary.replicaof("NO", "ONE")
        for refused in (new, resent):
            assert_problem(refused, 503)
            assert refused.headers["Retry-After"] == "1"
        again = await http.post("/v1/jobs", json=body, headers=headers)
        assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
        listed = (await http.get("/v1/jobs", params={"type": "diag.noop"})).json()["jobs"]
        assert [job["id"] for job in listed] == [first.json()["id"]]


async def test_jobs_flow_through_a_failover_and_no_accepted_job_is_lost(
    settings: Settings, cluster: SentinelCluster, tmp_path: Path
) -> None:
    old_primary = cluster.primary()
    env = worker_env(
        "redis://sentinel-named-primary/0",
        tmp_path,
        JOBSVC_REDIS_SENTINELS=cluster.sentinels_setting,
        JOBSVC_WORKER_LEASE_S="2",
    )
    workers: list[subprocess.Popen[bytes]] = [
        start_worker_process(env, tmp_path / f"worker-{n}.log") for n in range(2)
    ]
    accepted: list[str] = []
    refusals = 0
    try:
        async with api(behind_sentinels(settings, cluster, redis_min_replicas=1)) as http:

            async def submit_until_accepted() -> None:
                """As a careful client does: the same Idempotency-Key until the job is accepted."""
                nonlocal refusals
                headers = {"Idempotency-Key": uuid.uuid4().hex}
                body = {"type": "diag.sleep", "params": {"seconds": 0.05}}
                async with asyncio.timeout(60):
                    while (
                        response := await http.post("/v1/jobs", json=body, headers=headers)
                    ).status_code == 503:
                        refusals += 1
                        await asyncio.sleep(0.2)
                assert response.status_code in (200, 202), response.text
                accepted.append(response.json()["id"])

            for n in range(120):
                if n == 40:
                    old_primary.process.send_signal(signal.SIGKILL)
                await submit_until_accepted()
                await asyncio.sleep(0.02)

            new_primary = cluster.primary()
            for job_id in accepted:
                await wait_for_status(http, job_id, "succeeded", timeout_s=60)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert new_primary is not old_primary
    assert len(set(accepted)) == 120
    assert refusals > 0  # the failover was met, not slipped past


async def test_a_worker_started_while_the_primary_is_being_replaced_waits_for_the_new_one(
    settings: Settings, cluster: SentinelCluster, tmp_path: Path
) -> None:
    """ARQ's worker sends INFO before any hook could wait: the Sentinel pool rides the failover out."""
    old_primary = cluster.primary()
    old_primary.process.kill()
    env = worker_env(
        "redis://sentinel-named-primary/0", tmp_path, JOBSVC_REDIS_SENTINELS=cluster.sentinels_setting
    )
    worker = start_worker_process(env, tmp_path / "worker.log")  # the Sentinels still name the dead one
    try:
        async with api(behind_sentinels(settings, cluster)) as http:
            async with asyncio.timeout(30):
                while True:
                    response = await http.post("/v1/jobs", json={"type": "diag.noop", "params": {}})
                    if response.status_code == 202:
                        break
                    await asyncio.sleep(0.2)  # 503 until the Sentinels name the new primary
            await wait_for_status(http, response.json()["id"], "succeeded", timeout_s=30)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
    finally:
        worker.kill()
        worker.wait()
