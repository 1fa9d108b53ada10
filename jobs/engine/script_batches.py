"""Calls of one Redis function that arrive together, sent to Redis together.

A worker ends many attempts at once when its jobs are short: each end is one function call, and sent
one by one each costs a round trip, a socket write and a read. :class:`ScriptBatcher` queues the calls
made in one turn of the event loop and sends them at the next as one pipeline of ``FCALL`` (no check
first: a server that lost the library, after a restart, answers that the function is missing, and the
library is loaded and those calls sent again). Each caller gets its own reply, or its own error: an
error of one call fails that call only; a connection that fails fails every call of the batch, which
then retry as they would alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobs.engine.functions import Args, LuaFunction, missing_function


class ScriptBatcher:
    """``await batcher.call(args)`` runs the function with ``args`` (no keys) in the next batch."""

    def __init__(self, function: LuaFunction) -> None:
        self.function = function
        self._pending: list[tuple[Args, asyncio.Future[Any]]] = []

    async def call(self, args: Args) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._send_pending)
        return await future

    def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        task.add_done_callback(_retrieve)

    async def _send(self, batch: list[tuple[Args, asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._execute([args for args, _ in batch])
            if any(missing_function(reply) for reply in replies):
                await self.function.load()
                again = [i for i, reply in enumerate(replies) if missing_function(reply)]
                for i, reply in zip(again, await self._execute([batch[i][0] for i in again]), strict=True):
                    replies[i] = reply
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, calls: list[Args]) -> list[Any]:
        async with self.function.redis.pipeline(transaction=False) as pipe:
            for args in calls:
                self.function.queue(pipe, args=args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


def _retrieve(task: asyncio.Task[None]) -> None:
    """The batch's failure went to its callers; keep asyncio from reporting it again."""
    if not task.cancelled():
        task.exception()
