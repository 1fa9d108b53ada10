"""Calling the engine's Redis function library (``jobs.engine.lua.HOT_PATH``) with ``FCALL``.

The library is loaded where the server lacks it: at the first call, and again whenever a call finds it
gone (a server restarted without persistence, a ``FUNCTION FLUSH``). Once loaded it stays with the data:
the server persists it and sends it to its replicas, so a replica promoted by a failover has it already.
Each version of jobsvc loads its own library, named by a digest of its text, so versions that share a
server during a rolling deploy never call each other's functions; an earlier version's library stays
until ``FUNCTION DELETE`` (docs/OPERATIONS.md). Functions need Redis 7.0 or later, or Valkey.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from jobs.engine.connection import FUNCTION_MISSING, error_reply
from jobs.engine.lua.loader import FunctionLibrary

Args = Sequence[str | bytes | int | float]


class ServerTooOld(RuntimeError):
    """The server has no functions: jobsvc needs Redis 7.0 or later, or Valkey."""

    def __init__(self) -> None:
        super().__init__("jobsvc needs Redis 7.0 or later, or Valkey: this server has no functions")


def missing_function(reply: object) -> bool:
    """Whether a reply (or an error raised, from a pipeline too) says the called function is not loaded."""
    return isinstance(reply, ResponseError) and error_reply(reply).startswith(FUNCTION_MISSING)


def _too_old(exc: ResponseError) -> bool:
    return error_reply(exc).lower().startswith("unknown command")


async def load_library(redis: Redis, library: FunctionLibrary) -> None:
    """Load ``library`` unless the server has it already."""
    try:
        await typing.cast(Awaitable[str], redis.function_load(library.text))
    except ResponseError as exc:
        if "already exists" in str(exc):
            return
        if _too_old(exc):
            raise ServerTooOld from exc
        raise


class LuaFunction:
    """One function of a library, called as redis-py calls a registered script:
    ``await function(keys=..., args=...)``, loading the library when the server lacks it; or queued on
    a pipeline (``queue``), whose sender reloads it when a reply says so (``missing_function``)."""

    def __init__(self, redis: Redis, library: FunctionLibrary, script: str) -> None:
        self.redis = redis
        self.library = library
        self.name = library.functions[script]

    async def __call__(self, keys: Args = (), args: Args = ()) -> Any:
        try:
            return await self._fcall(keys, args)
        except ResponseError as exc:
            if _too_old(exc):
                raise ServerTooOld from exc
            if not missing_function(exc):
                raise
        await self.load()
        return await self._fcall(keys, args)

    def queue(self, pipe: Pipeline, keys: Args = (), args: Args = ()) -> None:
        """Add a call to ``pipe``; its reply is ``pipe``'s to read."""
        pipe.execute_command("FCALL", self.name, len(keys), *keys, *args)

    async def load(self) -> None:
        await load_library(self.redis, self.library)

    async def _fcall(self, keys: Args, args: Args) -> Any:
        # redis-py leaves execute_command untyped, and types fcall's arguments as lists
        return await self.redis.execute_command("FCALL", self.name, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
