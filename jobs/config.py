"""The slice of settings that job functions need, handed to them in ``ctx``.

The worker builds a :class:`JobsConfig` from the service settings at start; job functions never read
the environment and never see settings they do not use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, repr=False)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: Literal["none", "starttls", "tls"]
    sender: str
    timeout_s: float

    def __repr__(self) -> str:  # never print the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, user={self.user!r}, tls={self.tls!r})"


@dataclass(frozen=True, repr=False)
class WebhookConfig:
    signing_key: bytes
    timeout_s: float

    def __repr__(self) -> str:
        return f"WebhookConfig(timeout_s={self.timeout_s})"


@dataclass(frozen=True)
class JobsConfig:
    smtp: SmtpConfig
    webhook: WebhookConfig
    storage_dir: Path
    allow_private_addresses: bool
    result_retention_s: int
    #: the run-time limit of an attempt of a type that sets none
    default_timeout_s: float
    #: (host, port) of the service's own Redis: outbound calls never reach it
    redis_endpoints: tuple[tuple[str, int], ...] = ()
