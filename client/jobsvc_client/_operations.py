"""Both clients' methods, declared once: each is an operation of ``_jobs_api`` or ``_service_api``,
which a client carries out with its own transport (a descriptor binds it). ``OPERATIONS`` maps each
operation of the service's OpenAPI document to its method; a test checks it against the served one."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload

from jobsvc_client import _jobs_api as jobs_api
from jobsvc_client import _service_api as service_api
from jobsvc_client._core import Call, Paging, Program, Stream

if TYPE_CHECKING:
    from jobsvc_client._async import AsyncJobsClient
    from jobsvc_client._sync import JobsClient

P = ParamSpec("P")
T = TypeVar("T")


class _Method:
    """A descriptor that binds a builder of ``_jobs_api`` or ``_service_api`` to a client: calling the
    bound method builds the operation and hands it to the client's ``carry_out`` (``_run`` or
    ``_iterate``), which sends it over the client's transport."""

    carry_out = ""

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    def bind(self, client: Any) -> Any:
        if client is None:
            return self
        build, carry_out = self.build, getattr(client, self.carry_out)

        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> Any:
            return carry_out(build(*args, **kwargs))

        # the builder's parameters, not what it returns: the transport makes that an answer or an iterator
        method.__signature__ = inspect.signature(build).replace(  # type: ignore[attr-defined]
            return_annotation=inspect.Signature.empty
        )
        method.__name__ = self.name
        return method


class operation(_Method, Generic[P, T]):
    """A method that answers once: ``T`` from the sync client, an awaitable ``T`` from the async one."""

    carry_out = "_run"

    def __init__(self, build: Callable[P, Call[T] | Program[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: JobsClient, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncJobsClient, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: Any, owner: type[Any]) -> Any:
        return self.bind(client)


class iteration(_Method, Generic[P, T]):
    """A method that yields items (pages followed, events streamed): an iterator from the sync client,
    an async iterator from the async one."""

    carry_out = "_iterate"

    def __init__(self, build: Callable[P, Paging[Any, T] | Stream[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: JobsClient, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, client: AsyncJobsClient, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: Any, owner: type[Any]) -> Any:
        return self.bind(client)


class Operations:
    """Every endpoint of the API, and the helpers built on them (``wait``, ``iter_jobs``)."""

    submit = operation(jobs_api.submit)
    submit_batch = operation(jobs_api.submit_batch)
    get = operation(jobs_api.get)
    wait = operation(jobs_api.wait)
    cancel = operation(jobs_api.cancel)
    cancel_matching = operation(jobs_api.cancel_matching)
    retry = operation(jobs_api.retry)
    list = operation(jobs_api.list_jobs)
    iter_jobs = iteration(jobs_api.iter_jobs)
    job_events = iteration(jobs_api.job_events)
    events = iteration(jobs_api.events)

    list_dead_letters = operation(service_api.list_dead_letters)
    iter_dead_letters = iteration(service_api.iter_dead_letters)
    get_dead_letter = operation(service_api.get_dead_letter)
    replay_dead_letter = operation(service_api.replay_dead_letter)
    delete_dead_letter = operation(service_api.delete_dead_letter)
    replay_dead_letters = operation(service_api.replay_dead_letters)
    purge_dead_letters = operation(service_api.purge_dead_letters)

    job_types = operation(service_api.job_types)
    queues = operation(service_api.queues)
    pause_queue = operation(service_api.pause_queue)
    resume_queue = operation(service_api.resume_queue)
    workers = operation(service_api.workers)
    schedules = operation(service_api.schedules)
    health = operation(service_api.health)
    ready = operation(service_api.ready)

    create_key = operation(service_api.create_key)
    list_keys = operation(service_api.list_keys)
    revoke_key = operation(service_api.revoke_key)
    tenants = operation(service_api.tenants)
    tenant = operation(service_api.tenant)
    set_quotas = operation(service_api.set_quotas)
    rotate_webhook_secret = operation(service_api.rotate_webhook_secret)
    audit_log = operation(service_api.audit_log)
    delete_tenant_jobs = operation(service_api.delete_tenant_jobs)


#: the service's OpenAPI operationId -> the client method that calls it
OPERATIONS: dict[str, str] = {
    "submit_job_v1_jobs_post": "submit",
    "submit_batch_v1_jobs_batch_post": "submit_batch",
    "get_job_v1_jobs__job_id__get": "get",
    "cancel_job_v1_jobs__job_id__delete": "cancel",
    "cancel_matching_v1_jobs_cancel_post": "cancel_matching",
    "retry_job_v1_jobs__job_id__retry_post": "retry",
    "list_jobs_v1_jobs_get": "list",
    "job_events_v1_jobs__job_id__events_get": "job_events",
    "tenant_events_v1_events_get": "events",
    "list_dead_letters_v1_dead_letters_get": "list_dead_letters",
    "get_dead_letter_v1_dead_letters__job_id__get": "get_dead_letter",
    "replay_dead_letter_v1_dead_letters__job_id__replay_post": "replay_dead_letter",
    "delete_dead_letter_v1_dead_letters__job_id__delete": "delete_dead_letter",
    "replay_dead_letters_v1_dead_letters_replay_post": "replay_dead_letters",
    "purge_dead_letters_v1_dead_letters_purge_post": "purge_dead_letters",
    "list_job_types_v1_job_types_get": "job_types",
    "list_queues_v1_queues_get": "queues",
    "pause_v1_queues__name__pause_post": "pause_queue",
    "resume_v1_queues__name__resume_post": "resume_queue",
    "list_workers_v1_workers_get": "workers",
    "list_schedules_v1_schedules_get": "schedules",
    "healthz_healthz_get": "health",
    "readyz_readyz_get": "ready",
    "create_key_v1_admin_keys_post": "create_key",
    "list_keys_v1_admin_keys_get": "list_keys",
    "revoke_key_v1_admin_keys__key_id__delete": "revoke_key",
    "list_tenants_v1_admin_tenants_get": "tenants",
    "get_tenant_v1_admin_tenants__tenant__get": "tenant",
    "set_quotas_v1_admin_tenants__tenant__quotas_put": "set_quotas",
    "rotate_webhook_secret_v1_admin_tenants__tenant__webhook_secrets_post": "rotate_webhook_secret",
    "read_audit_log_v1_admin_audit_get": "audit_log",
    "delete_tenant_jobs_v1_admin_tenants__tenant__jobs_delete": "delete_tenant_jobs",
}
