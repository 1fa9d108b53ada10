"""What crosses Redis: msgpack, never pickle.

ARQ pickles by default, so anyone able to write to Redis could run code on every worker. These two
functions are ARQ's ``job_serializer``/``job_deserializer`` on both the API's pool and the worker. A
failure is stored as plain data, ``{"type", "message", "traceback"}``, never as an exception object.
"""

from __future__ import annotations

import asyncio
import traceback
from datetime import datetime
from typing import Any

import msgpack

MAX_TRACEBACK_CHARS = 8_000


def failure_record(exc: BaseException, *, message: str | None = None) -> dict[str, str]:
    """An exception as plain data: its class name, its message and a size-capped traceback."""
    text = "".join(traceback.format_exception(exc)) if exc.__traceback__ is not None else ""
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    if message is None:
        message = str(exc) or ("cancelled while running" if isinstance(exc, asyncio.CancelledError) else "")
    return {
        "type": type(exc).__name__,
        "message": message,
        "traceback": text,
    }


def _encode(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return failure_record(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def serialize(data: dict[str, Any]) -> bytes:
    return msgpack.packb(data, default=_encode, use_bin_type=True)  # type: ignore[no-any-return]


def deserialize(raw: bytes) -> dict[str, Any]:
    data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    if not isinstance(data, dict):
        raise ValueError("not a jobsvc record")
    return data
