"""Processes for CPU-bound work, so a job never blocks the worker's event loop.

A ``ProcessPoolExecutor`` whose child dies (the OOM killer, a crash in a C library) is broken for good:
every later call fails. :class:`CpuPool` replaces a broken executor and fails only the attempt that
was running, with a retryable error.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from jobs.errors import RetryableJobError

T = TypeVar("T")


class CpuPool:
    """``await pool.run(fn, *args)`` runs a picklable module-level function in a child process."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn: a fork of a process running an event loop and threads is not safe
        return ProcessPoolExecutor(
            max_workers=self._max_workers, mp_context=multiprocessing.get_context("spawn")
        )

    async def run(self, function: Callable[..., T], *args: object) -> T:
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = self._new_executor()
                await asyncio.to_thread(executor.shutdown, wait=False, cancel_futures=True)
            raise RetryableJobError("the process running this job died; it will run again") from None

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
