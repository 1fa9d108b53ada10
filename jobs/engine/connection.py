"""Opening ARQ pools that speak jobsvc's codec, from a Redis URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.engine import keys
from jobs.engine.codec import deserialize, serialize

logger = logging.getLogger("jobsvc.connection")
T = TypeVar("T")

#: what a Redis that is unavailable for now raises: down or silent (connection refused, timeout,
#: LOADING), or refusing writes (OOM under ``noeviction``, READONLY on a replica after a failover,
#: TRYAGAIN, MASTERDOWN). One state: wait and try again. redis-py turns a connection lost inside WATCH
#: into a WatchError.
REDIS_DOWN: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    MasterDownError,
)
REDIS_DOWN_WHILE_WATCHING: tuple[type[BaseException], ...] = (*REDIS_DOWN, WatchError)
#: refusals redis-py raises as a plain ResponseError, known by their error code: writes stopped after a
#: failed save, a script running too long, too few replicas for ``min-replicas-to-write``, a blocking
#: read let go because the server turned replica
REFUSAL_CODES = frozenset({"MISCONF", "BUSY", "NOREPLICAS", "UNBLOCKED"})
#: what to catch, then ask ``redis_unavailable`` (or, for a WatchError, know) whether to wait it out
REDIS_ERRORS: tuple[type[BaseException], ...] = (*REDIS_DOWN_WHILE_WATCHING, ResponseError)


def redis_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot serve for now (see REDIS_DOWN), rather than that a command is
    wrong."""
    if isinstance(exc, REDIS_DOWN):
        return True
    return isinstance(exc, ResponseError) and str(exc).split(" ", 1)[0] in REFUSAL_CODES


RECONNECT_MAX_DELAY_S = 5.0


async def until_redis_answers(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Redo ``step`` until Redis answers, backing off up to 5 s: for writes that must not be lost."""
    delay = 0.1
    while True:
        try:
            return await step()
        except REDIS_ERRORS as exc:
            if not redis_unavailable(exc):
                raise
            raise_if_cancelling()
            logger.warning(
                "redis unavailable while %s (%s); retrying in %.1fs", what, type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a Redis client turned into a timeout or connection error.

    On Python 3.11 a cancel that lands while redis-py waits under ``asyncio.timeout`` can surface as a
    TimeoutError; a loop that retries Redis errors would then swallow the cancel and never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and banners."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}***@{host}", parts.path, parts.query, parts.fragment))


#: retries of a command that met a dead connection (one: a restart leaves every pooled connection dead)
STALE_CONNECTION_RETRIES = 1

#: TLS options a ``rediss://`` URL may carry in its query, as redis-py names them
TLS_QUERY_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


def redis_settings_from_url(url: str, *, conn_retries: int = 5) -> RedisSettings:
    """ARQ settings for a ``redis://``, ``rediss://`` or ``unix://`` URL (user, password and db included).

    A ``rediss://`` URL may name its CA, client certificate and key and how strictly to check the
    server's certificate: ``rediss://host:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem&ssl_check_hostname=true``.
    The server's certificate is verified unless ``ssl_cert_reqs=none``."""
    settings = RedisSettings.from_dsn(url)
    # A pooled connection whose server restarted fails its next command; one immediate retry on a
    # fresh connection hides that. Writes retried this way are safe: the scripts tolerate running twice.
    # (not on timeouts: a silent server must answer 503 within the socket timeout, not twice that)
    settings.retry = Retry(NoBackoff(), STALE_CONNECTION_RETRIES, supported_errors=(RedisConnectionError,))
    settings.retry_on_error = [RedisConnectionError]
    query = parse_qs(urlsplit(url).query)
    for option in TLS_QUERY_OPTIONS:
        if option not in query:
            continue
        value = query[option][-1]
        if option == "ssl_check_hostname":
            settings.ssl_check_hostname = value.lower() in ("1", "true", "yes")
        elif option == "ssl_cert_reqs":
            if value not in ("none", "optional", "required"):
                raise ValueError("ssl_cert_reqs must be none, optional or required")
            settings.ssl_cert_reqs = value
        else:
            setattr(settings, option, value)
    settings.conn_retries = conn_retries
    settings.conn_timeout = 2
    return settings


#: a Redis command that takes longer fails instead of hanging (jobsvc never uses blocking commands)
SOCKET_TIMEOUT_S = 5.0


async def open_pool(url: str, *, conn_retries: int = 5) -> ArqRedis:
    """An ARQ pool that serializes with msgpack, never pickle, and never waits on Redis forever."""
    pool = await create_pool(
        redis_settings_from_url(url, conn_retries=conn_retries),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=keys.arq_queue(keys.DEFAULT_QUEUE),
    )
    await bound_waits(pool)
    return pool


async def bound_waits(pool: ArqRedis, timeout_s: float = SOCKET_TIMEOUT_S) -> None:
    """Give every connection of ``pool`` a socket timeout; ARQ's ``create_pool`` sets none.

    The connection ``create_pool`` opened to PING was made without it, so it is dropped: disconnected
    connections stay in the pool and reconnect with their old settings unless the pool is reset.
    """
    pool.connection_pool.connection_kwargs["socket_timeout"] = timeout_s
    await pool.connection_pool.disconnect()
    pool.connection_pool.reset()  # type: ignore[no-untyped-call]
