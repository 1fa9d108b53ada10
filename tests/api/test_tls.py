"""rediss://: the API and a worker talk to Redis over TLS, and refuse a server they cannot trust.

The embedded Valkey is built without TLS, so this test starts the machine's ``redis-server`` (built with
TLS on Debian) with a throwaway certificate, and is skipped where no ``redis-server`` exists.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from jobs.engine.connection import redis_settings_from_url
from service.api.app import create_app
from service.config import Settings
from tests.conftest import ADMIN_KEY, make_worker
from tests.helpers import free_port, serve, submit, wait_for_status

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="no redis-server with TLS on this machine")


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks only TLS on a free port; its port and the certificate to trust."""
    cert, key = make_certificate(tmp_path, "server")
    port = free_port()
    assert REDIS_SERVER is not None
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sync_redis.Redis(port=port, ssl=True, ssl_ca_certs=str(cert), socket_timeout=1).ping()
                break
            except sync_redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server with TLS did not come up"
                time.sleep(0.1)
        yield port, cert
    finally:
        server.terminate()
        server.wait(10)


async def test_api_and_worker_run_a_job_over_tls(tls_redis: tuple[int, Path], tmp_path: Path) -> None:
    port, cert = tls_redis
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={cert}&ssl_check_hostname=true"
    settings = Settings(redis_url=url, admin_api_key=ADMIN_KEY, diagnostics=True, data_dir=tmp_path)
    async with serve(create_app(settings)) as http:
        job = await submit(http, "diag.sleep", {"seconds": 0})
        worker: Any = make_worker(settings, burst=True, poll_delay=0)
        try:
            await worker.main()
        finally:
            await worker.close()
        done = await wait_for_status(http, job["id"], "succeeded")
    assert done["result"] == {"slept_s": 0.0}


def test_a_server_certificate_nobody_vouches_for_is_refused(
    tls_redis: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = tls_redis
    stranger, _ = make_certificate(tmp_path, "stranger")
    settings = redis_settings_from_url(f"rediss://localhost:{port}/0?ssl_ca_certs={stranger}")
    assert (settings.ssl, settings.ssl_cert_reqs, settings.ssl_ca_certs) == (True, "required", str(stranger))
    client = sync_redis.Redis(port=port, ssl=True, ssl_ca_certs=settings.ssl_ca_certs, socket_timeout=2)
    with pytest.raises(sync_redis.ConnectionError, match="certificate verify failed"):
        client.ping()
