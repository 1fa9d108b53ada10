"""The garbage collector in a long-running process (the API under uvicorn, a worker under ARQ's CLI)."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what starting left behind, then take every object alive now (modules, classes, schemas,
    routes, settings) out of the collector's full passes, which would otherwise walk all of them each time:
    in the API about 100,000 objects, a pause of about 90 ms every few thousand requests, which set the p99
    of its single submits (docs/BENCHMARKS.md). Only for a process's entry point: objects frozen are never
    collected as cycles, so a test process that builds many apps must not call it."""
    gc.collect()
    gc.freeze()
