"""What a job type is, and the decorator that declares one.

A job type is a stable dotted name, an async function ``(ctx, params) -> result`` whose params and
result are Pydantic models, and its options::

    @job_type("email.send", timeout_s=60)
    async def send_email(ctx: Ctx, params: EmailParams) -> EmailResult: ...

What crosses Redis is plain data: ``params`` arrive as a dict and are validated into the model; the
result leaves as ``model_dump(mode="json")``. How a type runs on ARQ is the engine's business
(``jobs.engine.runner``); nothing here imports it.
"""

from __future__ import annotations

import random
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from jobs.context import Ctx
from jobs.errors import PermanentJobError, RetryableJobError
from jobs.limits import Limit
from jobs.queues import DEFAULT_QUEUE, QUEUE_NAMES

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

#: The hard cap on attempts a submit may ask for.
MAX_ATTEMPTS_LIMIT = 25
#: failures worth another attempt unless a type says otherwise (timeouts always count as attempts; the
#: engine adds Redis being unavailable)
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (RetryableJobError, TimeoutError)

JobFunction = Callable[[Ctx, P], Awaitable[R]]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter between attempts."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay_s(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class JobType(Generic[P, R]):
    """A job type: name, function, models and options."""

    name: str
    function: JobFunction[P, R]
    params_model: type[P]
    result_model: type[R]
    description: str
    queue: str = DEFAULT_QUEUE
    timeout_s: float | None = None
    max_attempts: int = 5
    keep_result_s: float | None = None
    retry: RetryPolicy = RetryPolicy()
    #: rate and concurrency limits, held across every worker
    limit: Limit | None = None
    #: the queues a submit may send it to besides its own (None: any queue)
    queues: tuple[str, ...] | None = None
    #: run by the service itself (its schedules), never submitted: the API neither lists nor accepts it
    internal: bool = False

    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON

    @property
    def allowed_queues(self) -> tuple[str, ...]:
        if self.queues is None:
            return QUEUE_NAMES
        return (self.queue, *(q for q in self.queues if q != self.queue))

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a failed attempt deserves another: never for permanent errors or invalid params."""
        if isinstance(exc, PermanentJobError | ValidationError):
            return False
        return isinstance(exc, self.retry_on)


def job_type(
    name: str,
    *,
    description: str | None = None,
    queue: str = DEFAULT_QUEUE,
    timeout_s: float | None = None,
    max_attempts: int = 5,
    keep_result_s: float | None = None,
    retry: RetryPolicy | None = None,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    limit: Limit | None = None,
    queues: tuple[str, ...] | None = None,
    internal: bool = False,
) -> Callable[[JobFunction[P, R]], JobType[P, R]]:
    """Declare a job type; params and result models are read from the function's annotations."""

    def decorate(function: JobFunction[P, R]) -> JobType[P, R]:
        hints = typing.get_type_hints(function)
        params_model, result_model = hints.get("params"), hints.get("return")
        if not (_is_model(params_model) and _is_model(result_model)):
            raise TypeError(f"{name}: annotate `params` and the return type with Pydantic models")
        return JobType(
            name=name,
            function=function,
            params_model=typing.cast(type[P], params_model),
            result_model=typing.cast(type[R], result_model),
            description=description or (function.__doc__ or "").strip().split("\n")[0],
            queue=queue,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            keep_result_s=keep_result_s,
            retry=retry or RetryPolicy(),
            retry_on=retry_on,
            limit=limit,
            queues=queues,
            internal=internal,
        )

    return decorate


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
