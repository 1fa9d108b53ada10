"""The real processes over TCP: `uvicorn service.main:app`, the `arq` worker CLI and `jobsvc dev`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.devtools.processes import stop_processes
from tests.conftest import ADMIN_KEY, auth
from tests.helpers import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def child_env(*, admin_key: str | None = ADMIN_KEY, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSVC_")}
    if admin_key is not None:
        env["JOBSVC_ADMIN_API_KEY"] = admin_key
    return {**env, **values}


def wait_until_up(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited with {process.returncode}"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url} did not come up in {timeout_s}s")


def wait_until_ready(base_url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{base_url}/readyz", timeout=2).status_code != 200:
        assert time.monotonic() < deadline, "no worker became ready"
        time.sleep(0.1)


def submit(
    base_url: str, job_type: str, params: dict[str, object], key: str = ADMIN_KEY, **extra: object
) -> dict[str, object]:
    body = {"type": job_type, "params": params, **extra}
    response = httpx.post(f"{base_url}/v1/jobs", json=body, headers=auth(key), timeout=5)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_for(base_url: str, job_id: object, seconds: float = 20, key: str = ADMIN_KEY) -> dict[str, object]:
    response = httpx.get(
        f"{base_url}/v1/jobs/{job_id}", params={"wait": seconds}, headers=auth(key), timeout=seconds + 5
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def process_env() -> dict[str, str]:
    """More environment for `api_and_worker`'s processes; overridden by tests that need some."""
    return {}


@pytest.fixture
def api_and_worker(
    redis_url: str, tmp_path: Path, redis: object, process_env: dict[str, str]
) -> Iterator[str]:
    """uvicorn and an `arq` worker as separate processes, exactly as operators start them; their output
    goes to ``api.log`` and ``worker.log`` in ``tmp_path``."""
    port = free_port()
    env = child_env(
        JOBSVC_REDIS_URL=redis_url, JOBSVC_DIAGNOSTICS="true", JOBSVC_DATA_DIR=str(tmp_path), **process_env
    )
    logs = (tmp_path / "api.log").open("wb"), (tmp_path / "worker.log").open("wb")
    api = subprocess.Popen(
        [BIN / "uvicorn", "service.main:app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=logs[0],
        stderr=logs[0],
    )
    worker = subprocess.Popen(
        [BIN / "arq", "worker_settings.WorkerSettings"], cwd=ROOT, env=env, stdout=logs[1], stderr=logs[1]
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, api)
        yield base_url
    finally:
        stop_processes([api, worker])
        for log in logs:
            log.close()


def test_api_and_arq_worker_processes_run_jobs_over_tcp(api_and_worker: str) -> None:
    base_url = api_and_worker
    wait_until_ready(base_url)
    job = submit(base_url, "diag.sleep", {"seconds": 0.2})
    done = wait_for(base_url, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"slept_s": 0.2}

    running = submit(base_url, "diag.sleep", {"seconds": 60})
    deadline = time.monotonic() + 10
    while wait_for(base_url, running["id"], 0)["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = httpx.delete(f"{base_url}/v1/jobs/{running['id']}", headers=auth(ADMIN_KEY), timeout=10)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"


def test_a_job_that_kills_its_worker_every_time_ends_in_the_dead_letters(tmp_path: Path) -> None:
    """diag.crash SIGKILLs its worker; jobsvc dev starts another, the lease lapses, and after its attempts
    are spent the job fails for good while the queue keeps flowing."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = child_env(
        JOBSVC_DATA_DIR=str(tmp_path / "data"),
        JOBSVC_PORT=str(port),
        JOBSVC_LOG_LEVEL="warning",
        JOBSVC_WORKER_HEARTBEAT_S="0.25",
        JOBSVC_WORKER_LEASE_S="1",
    )
    with (tmp_path / "dev.log").open("wb") as log:
        dev = subprocess.Popen([BIN / "jobsvc", "dev"], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_until_up(base_url, dev)
            wait_until_ready(base_url)
            crash = submit(base_url, "diag.crash", {}, max_attempts=2)
            time.sleep(0.5)
            after = submit(base_url, "diag.noop", {})
            assert wait_for(base_url, after["id"], 30)["status"] == "succeeded"

            final = wait_for(base_url, crash["id"], 40)
            assert final["status"] == "failed"
            assert final["error"] == {"type": "PermanentJobError", "message": "gave up after 2 attempts"}
            dead = httpx.get(f"{base_url}/v1/dead-letters/{crash['id']}", headers=auth(ADMIN_KEY), timeout=5)
            assert dead.status_code == 200
            assert [a["error"]["type"] for a in dead.json()["attempts"]] == ["WorkerLost", "WorkerLost"]
        finally:
            dev.send_signal(signal.SIGTERM)
            assert dev.wait(30) == 0


def test_jobsvc_dev_keeps_waiting_jobs_and_results_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    env = child_env(
        admin_key=None, JOBSVC_DATA_DIR=str(data_dir), JOBSVC_PORT=str(port), JOBSVC_LOG_LEVEL="warning"
    )

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / "dev.log").open("ab")
        process = subprocess.Popen([BIN / "jobsvc", "dev"], cwd=ROOT, env=env, stdout=log, stderr=log)
        log.close()
        wait_until_up(base_url, process)
        return process

    dev = start()
    try:
        # with no admin key configured, the first run makes one, keeps it, and prints it once
        key_file = data_dir / "admin-key"
        key = key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "dev.log").read_text().count(key) == 1
        assert httpx.get(f"{base_url}/v1/jobs", timeout=5).status_code == 401
        finished = submit(base_url, "diag.sleep", {"seconds": 0}, key=key)
        assert wait_for(base_url, finished["id"], key=key)["status"] == "succeeded"
        waiting = submit(base_url, "diag.sleep", {"seconds": 0}, key=key, delay_seconds=4)
        assert waiting["status"] == "deferred"
        server_pid = int((data_dir / "redis" / "valkey.pid").read_text())
    finally:
        dev.send_signal(signal.SIGINT)
        assert dev.wait(30) == 0

    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)  # the embedded server stopped with the command

    dev = start()
    try:
        assert (data_dir / "admin-key").read_text().strip() == key  # the same key, not printed again
        assert (tmp_path / "dev.log").read_text().count(key) == 1
        kept = wait_for(base_url, finished["id"], 0, key=key)
        assert kept["status"] == "succeeded"
        assert kept["result"] == {"slept_s": 0.0}
        assert wait_for(base_url, waiting["id"], 20, key=key)["status"] == "succeeded"
    finally:
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(30) == 0
