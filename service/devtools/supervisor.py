"""``jobsvc dev``: the API, one worker and (unless JOBSVC_REDIS_URL is set) an embedded server in one command.

A small synchronous supervisor: it restarts the worker when it dies (``diag.crash`` kills it on purpose),
stops everything when the API dies, and on SIGINT/SIGTERM stops the children before the server they use.
Every child dies with the supervisor, even when it is killed with SIGKILL (Linux).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from jobs.engine.connection import redact_url
from service.api.auth import TOKEN_PREFIX
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis, EmbeddedRedisError
from service.devtools.processes import spawn, stop_processes

log = logging.getLogger(__name__)

#: the directory holding worker_settings.py, the children's working directory
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.2
WORKER_BACKOFF_MIN_S = 0.5
WORKER_BACKOFF_MAX_S = 10.0
#: a worker that ran this long before dying is restarted after the shortest backoff again
WORKER_HEALTHY_RUN_S = 30.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_dev(settings: Settings) -> int:
    """Run the development stack until a stop signal (returns 0) or the API's death (returns non-zero).

    Call from the main thread: it installs signal handlers and restores them before returning.
    """
    supervisor = _Supervisor(settings)
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        signal.signal(sig, supervisor.request_stop)
    try:
        return supervisor.run()
    finally:
        supervisor.shutdown()
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


class _Supervisor:
    """The children of one ``jobsvc dev`` run and the loop that watches them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded = EmbeddedRedis(settings.data_dir) if settings.uses_embedded_redis else None
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.stop_signal: int | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: ask the loop to stop; the actual shutdown happens outside the handler."""
        self.stop_signal = signum

    def run(self) -> int:
        """Start the server and the children, then watch them until told to stop; return the exit code."""
        if self.embedded is not None:
            try:
                redis_url = self.embedded.start()
            except EmbeddedRedisError as exc:
                log.error("could not start the embedded server: %s", exc)
                return 1
        else:
            redis_url = self.settings.effective_redis_url
        if self.stop_signal is not None:
            return 0
        env = _child_env(self.settings, redis_url)
        new_admin_key = None
        if self.settings.admin_api_key is None:
            admin_key, created = ensure_admin_key(self.settings)
            env["JOBSVC_ADMIN_API_KEY"] = admin_key
            new_admin_key = admin_key if created else None
        self.api = spawn(_api_command(self.settings), cwd=PROJECT_ROOT, env=env)
        self.worker = spawn(_worker_command(), cwd=PROJECT_ROOT, env=env)
        worker_started = time.monotonic()
        banner = _banner(self.settings, redis_url, embedded=self.embedded is not None, new_key=new_admin_key)
        print(banner, flush=True)

        backoff_s = WORKER_BACKOFF_MIN_S
        restart_at = 0.0
        while self.stop_signal is None:
            now = time.monotonic()
            if self.api.poll() is not None:
                code = self.api.returncode
                log.error("the API process exited with code %s; shutting down", code)
                return code if code > 0 else 1
            if self.embedded is not None and not self.embedded.running:
                log.error("the embedded server exited; shutting down (see %s)", self.embedded.log_path)
                return 1
            if self.worker is not None and self.worker.poll() is not None:
                if now - worker_started >= WORKER_HEALTHY_RUN_S:
                    backoff_s = WORKER_BACKOFF_MIN_S
                log.warning(
                    "the worker exited with code %s; restarting it in %.1f s",
                    self.worker.returncode,
                    backoff_s,
                )
                self.worker, restart_at = None, now + backoff_s
                backoff_s = min(backoff_s * 2, WORKER_BACKOFF_MAX_S)
            if self.worker is None and now >= restart_at:
                self.worker = spawn(_worker_command(), cwd=PROJECT_ROOT, env=env)
                worker_started = now
            time.sleep(POLL_INTERVAL_S)
        log.info("received %s; stopping", signal.Signals(self.stop_signal).name)
        return 0

    def shutdown(self) -> None:
        """Stop the API and the worker (bounded), then the server they were using."""
        stop_processes([child for child in (self.api, self.worker) if child is not None], STOP_TIMEOUT_S)
        if self.embedded is not None:
            self.embedded.stop()


def _api_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "service.main:app",
        "--host", settings.host, "--port", str(settings.port), "--log-level", settings.log_level,
        # Open event streams would otherwise hold a graceful shutdown until the supervisor's SIGKILL.
        "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip


def _worker_command() -> list[str]:
    return [sys.executable, "-m", "arq", "worker_settings.WorkerSettings"]


def _child_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """The children's environment: ours, plus the server's URL and diagnostics on unless chosen otherwise."""
    env = dict(os.environ)
    env["JOBSVC_REDIS_URL"] = redis_url
    if "diagnostics" in settings.model_fields_set:
        env["JOBSVC_DIAGNOSTICS"] = "true" if settings.diagnostics else "false"
    else:
        env.setdefault("JOBSVC_DIAGNOSTICS", "true")
    # The children run in PROJECT_ROOT: relative paths must not be re-resolved against it.
    env["JOBSVC_DATA_DIR"] = str(settings.data_dir.resolve())
    if settings.storage_dir is not None:
        env["JOBSVC_STORAGE_DIR"] = str(settings.storage_dir.resolve())
    return env


def admin_key_path(settings: Settings) -> Path:
    """Where ``jobsvc dev`` keeps the admin key it made (readable by its owner only)."""
    return settings.data_dir.resolve() / "admin-key"


def ensure_admin_key(settings: Settings) -> tuple[str, bool]:
    """The development admin key: the one kept in the data directory, or a new one written there.
    Returns it and whether it is new (a new key is printed once)."""
    path = admin_key_path(settings)
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    key = f"{TOKEN_PREFIX}_admin_{secrets.token_urlsafe(32)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key, True


def _banner(settings: Settings, redis_url: str, *, embedded: bool, new_key: str | None = None) -> str:
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    api_url = f"http://{host}:{settings.port}"
    return "\n".join(
        [
            "jobsvc dev",
            f"  API       {api_url}",
            f"  Docs      {api_url}/docs",
            f"  Redis     {redact_url(redis_url)}" + (" (embedded)" if embedded else ""),
            f"  Data dir  {settings.data_dir.resolve()}",
            *_admin_key_lines(settings, api_url, new_key),
            "Press Ctrl+C to stop.",
        ]
    )


def _admin_key_lines(settings: Settings, api_url: str, new_key: str | None) -> list[str]:
    if settings.admin_api_key is not None:
        return []
    path = admin_key_path(settings)
    if new_key is None:
        return [f"  Admin key in {path}"]
    return [
        f"  Admin key {new_key}",
        f"            (shown once; kept in {path}, which the jobsvc CLI reads)",
        f'  Try       curl -H "Authorization: Bearer $(cat {path})" {api_url}/v1/jobs',
    ]
