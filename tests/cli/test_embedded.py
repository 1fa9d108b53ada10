"""The embedded server against the real valkey-server binary: persistence, crash safety, stale leftovers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from arq.connections import RedisSettings

from service.devtools.embedded import EmbeddedRedis, EmbeddedRedisError

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux-only"
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pidfile(data_dir: Path) -> int:
    return int((data_dir / "redis" / "valkey.pid").read_text())


def test_data_written_before_stop_is_there_after_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        client.set("job", "queued")
    assert not (tmp_path / "redis" / "valkey.pid").exists()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()

    with EmbeddedRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        assert client.get("job") == b"queued"


def test_short_data_dir_gets_a_unix_socket_url_arq_accepts(tmp_path: Path) -> None:
    socket_path = tmp_path.resolve() / "redis" / "valkey.sock"
    with EmbeddedRedis(tmp_path) as server:
        assert server.url == f"unix://{socket_path}"
        assert RedisSettings.from_dsn(server.url).unix_socket_path == str(socket_path)
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    assert not socket_path.exists()


def test_long_data_dir_falls_back_to_loopback_tcp(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 120)
    with EmbeddedRedis(data_dir) as server, redis.Redis.from_url(server.url) as client:
        assert server.url.startswith("redis://127.0.0.1:")
        assert client.ping()
    assert not (data_dir / "redis" / "valkey.sock").exists()


def test_data_dir_with_spaces_and_quotes_works(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / 'my "dev" data') as server, redis.Redis.from_url(server.url) as client:
        assert client.ping()


def test_url_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError):
        _ = EmbeddedRedis(tmp_path).url


def test_server_dies_with_its_sigkilled_parent_and_keeps_its_data(tmp_path: Path) -> None:
    script = (
        "import sys, time, redis\n"
        "from pathlib import Path\n"
        "from service.devtools.embedded import EmbeddedRedis\n"
        "server = EmbeddedRedis(Path(sys.argv[1]))\n"
        "url = server.start()\n"
        "redis.Redis.from_url(url).set('job', 'queued')\n"
        "print(url, server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE
    )
    server_pid = None
    try:
        assert parent.stdout is not None
        url, pid = parent.stdout.readline().decode().split()
        server_pid = int(pid)
        assert is_alive(server_pid)

        parent.kill()
        parent.wait()

        assert eventually(lambda: not is_alive(server_pid))
        with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
            client.ping()
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if server_pid is not None and is_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)

    with EmbeddedRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        assert client.get("job") == b"queued"


def test_stale_server_of_a_hung_run_is_stopped_and_its_data_kept(tmp_path: Path) -> None:
    stale = EmbeddedRedis(tmp_path)
    stale.start()
    try:
        stale_pid = stale.pid
        with redis.Redis.from_url(stale.url) as client:
            client.set("job", "queued")

        with EmbeddedRedis(tmp_path) as fresh, redis.Redis.from_url(fresh.url) as client:
            assert fresh.pid != stale_pid
            assert not stale.running
            assert read_pidfile(tmp_path) == fresh.pid
            assert client.get("job") == b"queued"

            stale.stop()  # must leave the fresh server's pidfile alone
            assert read_pidfile(tmp_path) == fresh.pid
            assert client.ping()
    finally:
        stale.stop()


def test_pidfile_naming_an_unrelated_process_leaves_it_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "redis").mkdir()
        (tmp_path / "redis" / "valkey.pid").write_text(f"{bystander.pid}\n")
        with EmbeddedRedis(tmp_path) as server:
            assert bystander.poll() is None
            assert read_pidfile(tmp_path) == server.pid
    finally:
        bystander.kill()
        bystander.wait()


def test_stale_socket_file_is_removed(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis" / "valkey.sock"
    socket_path.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(socket_path))  # closing leaves the file behind, with nobody listening
    assert socket_path.exists()

    with EmbeddedRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        assert client.ping()


def test_unknown_server_on_the_socket_is_refused_not_replaced(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        (tmp_path / "redis" / "valkey.pid").unlink()
        with pytest.raises(EmbeddedRedisError, match="another server"):
            EmbeddedRedis(tmp_path).start()
        assert first.running
        with redis.Redis.from_url(first.url) as client:
            assert client.ping()
