"""Opening ARQ pools that speak jobsvc's codec: to the Redis a URL names, or to the primary that Redis
Sentinel names (and follows through a failover)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    MasterDownError,
    NoScriptError,
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
#: what a server answers a call of a function it has not loaded (jobs.engine.functions)
FUNCTION_MISSING = "Function not found"
#: refusals that carry no error code: ``WAIT`` sent to a server that turned replica (a READONLY by
#: another name, as after a failover, when the write before it was read-only); a function of the
#: engine's library called on a server that lost it between a load and the call (restarted twice over:
#: the next try loads it again)
REFUSAL_TEXTS = ("WAIT cannot be used with replica instances", FUNCTION_MISSING)
#: how redis-py prefixes an error raised by a command inside a pipeline (the asyncio client quotes the
#: reply as a tuple: ``...caused error: ('MISCONF ...',)``)
PIPELINE_ERROR_PREFIX = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: \(?['\"]?", re.DOTALL)
#: what to catch, then ask ``redis_unavailable`` (or, for a WatchError, know) whether to wait it out
REDIS_ERRORS: tuple[type[BaseException], ...] = (*REDIS_DOWN_WHILE_WATCHING, ResponseError)


def redis_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot serve for now (see REDIS_DOWN), rather than that a command is
    wrong. A server that lost its scripts or functions (restarted, or a replica just promoted) between
    their load and a call answers NOSCRIPT, or that the function is missing: the next try loads them."""
    if isinstance(exc, (*REDIS_DOWN, NoScriptError)):
        return True
    if not isinstance(exc, ResponseError):
        return False
    reply = error_reply(exc)
    return reply.split(" ", 1)[0] in REFUSAL_CODES or reply.startswith(REFUSAL_TEXTS)


def error_reply(exc: ResponseError) -> str:
    """The server's error reply, without what redis-py adds in front of one raised from a pipeline."""
    return PIPELINE_ERROR_PREFIX.sub("", str(exc), count=1)


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


@dataclass(frozen=True)
class RedisTarget:
    """Where jobsvc's Redis is. ``url`` gives the user, password, database and TLS; with ``sentinels``
    (host, port pairs) the primary is whichever server they name ``sentinel_master``, and the URL's
    host is unused. ``sentinel_password`` is the Sentinels' own, when they ask for one."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "mymaster"
    sentinel_password: str | None = None

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """The TCP endpoints jobsvc talks to for Redis (none for a unix socket): what webhooks must not
        reach."""
        parts = urlsplit(self.url)
        direct = (
            ((parts.hostname, parts.port or 6379),)
            if parts.scheme in ("redis", "rediss") and parts.hostname and not self.sentinels
            else ()
        )
        return direct + self.sentinels


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (IPv6 in brackets: ``[::1]:26379``) as pairs; the port defaults to 26379."""
    found: list[tuple[str, int]] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        parts = urlsplit(f"//{entry}")
        try:
            port = parts.port or 26379
        except ValueError:
            raise ValueError(f"{entry!r} is not host:port") from None
        if not parts.hostname:
            raise ValueError(f"{entry!r} is not host:port")
        found.append((parts.hostname, port))
    return tuple(found)


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


def redis_settings_for(target: RedisTarget, *, conn_retries: int = 5) -> RedisSettings:
    """ARQ settings for ``target``: its URL's, and its Sentinels' when it has some."""
    settings = redis_settings_from_url(target.url, conn_retries=conn_retries)
    if target.sentinels:
        settings.host = list(target.sentinels)
        settings.sentinel = True
        settings.sentinel_master = target.sentinel_master
    return settings


#: a worker's Sentinel pool rides out a failover (a few seconds) in the command that meets it, as ARQ's
#: ``create_pool`` does at start with its connection retries: ARQ's worker sends its first command
#: (``INFO``) before any hook of jobsvc's could wait, and would exit if the primary were being replaced
FAILOVER_PATIENCE = Retry(ExponentialBackoff(cap=1.0, base=0.1), 12, supported_errors=(RedisConnectionError,))


def sentinel_pool(target: RedisTarget, *, ride_out_failovers: bool = False) -> ArqRedis:
    """An ARQ pool on the primary ``target``'s Sentinels name, not yet connected: each new connection
    asks them where the primary is, and a connection to a server that became a replica is dropped
    (redis-py answers READONLY as a lost connection), so the pool follows a failover by itself. With
    ``ride_out_failovers`` (workers) a command that meets a failover waits for it (FAILOVER_PATIENCE);
    otherwise (the API) it fails at once, and the API answers 503.

    ARQ's own Sentinel support passes neither a password for the Sentinels nor timeouts; this one does.
    """
    settings = redis_settings_from_url(target.url)
    if ride_out_failovers:
        settings.retry = FAILOVER_PATIENCE
    timeouts: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": settings.conn_timeout,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={**timeouts, "password": target.sentinel_password},
        db=settings.database,
        username=settings.username,
        password=settings.password,
        ssl=settings.ssl,
        retry=settings.retry,
        retry_on_error=settings.retry_on_error,
        **timeouts,
    )
    pool: ArqRedis = sentinel.master_for(target.sentinel_master, redis_class=ArqRedis)
    pool.job_serializer = serialize
    pool.job_deserializer = deserialize
    pool.default_queue_name = keys.arq_queue(keys.DEFAULT_QUEUE)
    return pool


async def servers_behind(pool: ArqRedis) -> tuple[tuple[str, int], ...]:
    """The primary and the replicas a Sentinel pool's Sentinels name now (none for a direct pool): with
    the Sentinels themselves, the servers outbound calls must never reach."""
    connection_pool = pool.connection_pool
    if not isinstance(connection_pool, SentinelConnectionPool):
        return ()
    manager, name = connection_pool.sentinel_manager, connection_pool.service_name
    primary = await manager.discover_master(name)
    replicas = await manager.discover_slaves(name)
    return (tuple(primary), *(tuple(replica) for replica in replicas))


async def close_pool(pool: ArqRedis) -> None:
    """Close ``pool``'s connections, and its Sentinels' when it has some."""
    connection_pool = pool.connection_pool
    await pool.aclose(close_connection_pool=True)
    if isinstance(connection_pool, SentinelConnectionPool):
        for sentinel in connection_pool.sentinel_manager.sentinels:
            await sentinel.aclose(close_connection_pool=True)


async def open_pool(target: RedisTarget | str, *, conn_retries: int = 5) -> ArqRedis:
    """An ARQ pool that serializes with msgpack, never pickle, and never waits on Redis forever."""
    if isinstance(target, str):
        target = RedisTarget(target)
    if target.sentinels:
        return await _first_answer(sentinel_pool(target), conn_retries)
    pool = await create_pool(
        redis_settings_for(target, conn_retries=conn_retries),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=keys.arq_queue(keys.DEFAULT_QUEUE),
    )
    await bound_waits(pool)
    return pool


async def _first_answer(pool: ArqRedis, conn_retries: int) -> ArqRedis:
    """``pool``, once its server answers a PING (tried ``conn_retries`` more times, a second apart)."""
    retries_left = conn_retries
    while True:
        try:
            await pool.ping()
            return pool
        except REDIS_DOWN as exc:
            if not retries_left:
                await close_pool(pool)
                raise
            logger.warning("redis unavailable (%s); %d retries left", type(exc).__name__, retries_left)
            retries_left -= 1
            await asyncio.sleep(1)


async def bound_waits(pool: ArqRedis, timeout_s: float = SOCKET_TIMEOUT_S) -> None:
    """Give every connection of ``pool`` a socket timeout; ARQ's ``create_pool`` sets none.

    The connection ``create_pool`` opened to PING was made without it, so it is dropped: disconnected
    connections stay in the pool and reconnect with their old settings unless the pool is reset.
    """
    pool.connection_pool.connection_kwargs["socket_timeout"] = timeout_s
    await pool.connection_pool.disconnect()
    pool.connection_pool.reset()  # type: ignore[no-untyped-call]
