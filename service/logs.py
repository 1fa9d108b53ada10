"""Logging of the API and the workers, configured in one place: :func:`configure_logging`.

``JOBSVC_LOG_FORMAT=text`` (the default) leaves the loggers as uvicorn and ARQ's CLI set them up.
``json`` writes one JSON object per line to stderr for everything the process logs, uvicorn's access
and error logs and ARQ's logs included::

    {"time": "2026-12-01T09:30:00.123Z", "level": "info", "logger": "arq.worker",
     "message": "  0.01s ← 0e6f…:webhook.deliver ● ", "job_id": "0e6f…", "job_type": "webhook.deliver",
     "attempt": 1, "tenant": "default", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}

(one line in the output). Lines written during a job's attempt name it (``jobs.engine.log_context``);
``trace_id`` is there when tracing is on. Never params or results: ARQ's start line hides the job's
arguments, httpx (which logs every request's URL, a job param) is held at WARNING, and every configured
secret and anything shaped like an API key is masked before a line is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from jobs.engine import log_context, tracing
from service.config import Settings

#: loggers that uvicorn and ARQ's CLI give handlers of their own; in JSON mode they go through the root's
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "arq")
#: loggers that write job params (URLs) at INFO or below
QUIET_LOGGERS = ("httpx", "httpcore")
#: an API key's secret part (``jsk_<id>_<secret>``)
_API_KEY = re.compile(r"\b(jsk_[0-9a-f]{16}_)[A-Za-z0-9_-]+")
MASK = "***"

#: how the loggers JSON mode changes were before, to put them back when the format goes back to text
_saved: dict[str, tuple[list[logging.Handler], bool, int]] = {}


def configure_logging(settings: Settings) -> None:
    """Set up the process's logging for ``settings.log_format``; safe to call again (the API's and the
    worker's startup both call it, and a test may switch formats)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, JsonLinesHandler)]:
        root.removeHandler(handler)
    for name, (handlers, propagate, level) in _saved.items():
        logger = logging.getLogger(name)
        if name in LIBRARY_LOGGERS:
            logger.handlers[:] = handlers
            logger.propagate = propagate
        logger.setLevel(level)
    _saved.clear()
    if settings.log_format != "json":
        return
    json_level = settings.log_level.upper()
    for name in ("", *LIBRARY_LOGGERS, *QUIET_LOGGERS):
        logger = logging.getLogger(name)
        _saved[name] = (logger.handlers[:], logger.propagate, logger.level)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root.setLevel(json_level)
    root.addHandler(JsonLinesHandler(JsonFormatter(secrets_of(settings)), level=json_level))


def secrets_of(settings: Settings) -> list[str]:
    """Every secret in ``settings``: the values of its secret fields and the Redis URL's password."""
    found = [
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    ]
    found.append(urlsplit(settings.effective_redis_url).password or "")
    return [secret for secret in found if len(secret) >= 4]


class JsonLinesHandler(logging.Handler):
    """Writes each record as one line to the process's current stderr (looked up per line, so that a
    replaced ``sys.stderr`` is followed)."""

    def __init__(self, formatter: logging.Formatter, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, the running job's fields, trace id,
    exception; with secrets masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first: a secret that contains another is masked whole
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.mask(record.getMessage()),
        }
        job = log_context.current_job()
        if job is not None:
            entry.update(job_id=job.job_id, job_type=job.job_type, attempt=job.attempt, tenant=job.tenant)
        trace_id = (job.trace_id if job is not None else "") or tracing.current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _version, status = record.args
            entry.update(client=client, method=method, path=self.mask(str(path)), status=status)
        if record.exc_info:
            entry["exception"] = self.mask(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.mask(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _API_KEY.sub(rf"\g<1>{MASK}", text) if "jsk_" in text else text
