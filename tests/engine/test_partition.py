"""A network partition, for real: a worker in a network namespace of its own, joined to the host (where
Redis listens) by a veth pair, and the link cut while it runs a job. The job runs again elsewhere once
its lease lapses; when the link comes back, what the cut-off attempt still sends changes nothing, and
a ``concurrency: 1`` type never runs two at once. Needs root and iproute2 (``ip netns``), as CI has."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.netns import HOST_IP, Namespace, can_make_namespaces, network_namespace
from bench.sentinels import Server, start_server
from service.api.app import create_app
from service.config import Settings
from tests.engine.test_fenced_leases import assert_the_stale_attempt_changed_nothing
from tests.engine.test_reliability import running_sleep, start_worker_process, worker_env
from tests.helpers import free_port, read_job, serve, submit, wait_for_status

pytestmark = pytest.mark.slow


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """Without root or iproute2 the test fails, never skips: ``.ci/run`` has both."""
    if not can_make_namespaces():
        pytest.fail("the partition test needs root and iproute2 (ip netns), as .ci/run has them")
    with network_namespace() as made:
        yield made


@pytest.fixture
def shared_redis(tmp_path: Path, namespace: Namespace) -> Iterator[Server]:
    """A server of its own, listening on loopback and on the host's end of the veth pair."""
    server = start_server(tmp_path / "redis", free_port(), bind=f"127.0.0.1 {HOST_IP}")
    try:
        yield server
    finally:
        server.stop()


async def test_a_worker_cut_off_by_a_partition_changes_nothing_when_the_link_returns(
    settings: Settings, namespace: Namespace, shared_redis: Server, tmp_path: Path
) -> None:
    limits = '{"diag.sleep": {"concurrency": 1}}'

    def worker(redis_host: str, name: str, wrapper: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        url = f"redis://{redis_host}:{shared_redis.port}/0"
        env = worker_env(
            url,
            tmp_path,
            JOBSVC_WORKER_LEASE_S="2",
            JOBSVC_JOB_LIMITS=limits,
            JOBSVC_ENVIRONMENT="development",  # Redis at the host's end of a veth pair is not loopback
        )
        return start_worker_process(env, tmp_path / f"{name}.log", wrapper=wrapper)

    cut_off = worker(HOST_IP, "cut-off", namespace.wrapper)
    other = None
    app = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{shared_redis.port}/0"}))
    try:
        async with serve(app) as http:
            first = await running_sleep(http, 4)
            namespace.cut()
            other = worker("127.0.0.1", "other")
            async with asyncio.timeout(30):  # the lease lapses; the other worker runs the next attempt
                while (await read_job(http, first["id"]))["attempts"] < 2:
                    await asyncio.sleep(0.1)
            second = await submit(http, "diag.sleep", {"seconds": 1})  # waits for the limit's one slot
            namespace.restore()

            first_view = await wait_for_status(http, first["id"], "succeeded", timeout_s=60)
            second_view = await wait_for_status(http, second["id"], "succeeded", timeout_s=60)
    finally:
        for process in (cut_off, other):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
    # told at its first renewal once the link was back
    assert_the_stale_attempt_changed_nothing(first_view, second_view, tmp_path / "cut-off.log")
