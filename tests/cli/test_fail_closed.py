"""An unset JOBSVC_ENVIRONMENT fails closed: development rules only on loopback, production everywhere else,
for the processes exactly as operators start them."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from service.api.loopback_guard import arrived_on_loopback
from service.devtools.processes import stop_processes
from tests.cli.test_processes import BIN, ROOT, child_env, wait_until_up
from tests.conftest import ADMIN_KEY, auth
from tests.helpers import free_port


def address_beyond_loopback() -> str:
    """This machine's own address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))
        address: str = probe.getsockname()[0]
    assert not address.startswith("127."), "this test needs an interface beyond loopback"
    return address


def test_an_api_bound_beyond_loopback_without_an_environment_serves_loopback_only(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = child_env(JOBSVC_REDIS_URL=redis_url, JOBSVC_DATA_DIR=str(tmp_path))
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [BIN / "uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            wait_until_up(f"http://127.0.0.1:{port}", api)
            for_admin = {"headers": auth(ADMIN_KEY), "timeout": 5}
            from_outside = httpx.get(f"http://{address_beyond_loopback()}:{port}/v1/job-types", **for_admin)
            over_loopback = httpx.get(f"http://127.0.0.1:{port}/v1/job-types", **for_admin)
        finally:
            stop_processes([api])
    assert from_outside.status_code == 403
    assert from_outside.headers["content-type"] == "application/problem+json"
    assert from_outside.json()["type"] == "/problems/environment-unset"
    assert over_loopback.status_code == 200, over_loopback.text


def test_a_worker_reaching_redis_beyond_loopback_without_an_environment_runs_as_production(
    tmp_path: Path,
) -> None:
    env = child_env(
        JOBSVC_REDIS_URL=f"redis://{address_beyond_loopback()}:6379/0", JOBSVC_DATA_DIR=str(tmp_path)
    )
    worker = subprocess.run(
        [BIN / "arq", "worker_settings.WorkerSettings"],
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert worker.returncode != 0
    refusal = worker.stderr.decode()
    assert "unsafe production settings" in refusal
    assert "JOBSVC_WEBHOOK_SECRET" in refusal
    assert "JOBSVC_ENVIRONMENT is unset" in refusal


@pytest.mark.parametrize(
    ("server", "served"),
    [
        (("127.0.0.1", 8000), True),
        (("::1", 8000), True),
        (("::ffff:127.0.0.1", 8000), True),
        (("jobsvc.test", 80), True),  # an in-process transport's name, no network
        (("jobsvc.test", None), True),  # the same, its URL without a port
        (("192.0.2.2", 8000), False),
        (("::", 8000), False),
        (("/run/jobsvc.sock", None), False),  # a Unix socket, as uvicorn names it: a proxy may front it
        (("\0jobsvc", None), False),  # an abstract one
        (None, False),
    ],
)
def test_development_rules_serve_what_arrived_on_loopback_only(
    server: tuple[str, int | None] | None, served: bool
) -> None:
    assert arrived_on_loopback({"type": "http", "server": server}) is served
