"""``GET /metrics``: the cluster's job figures and this process's HTTP figures, in Prometheus text format.

Job counters and histograms come from Redis (``jobs.engine.metrics``), so one scrape of any API process
gives the whole cluster's; queue gauges are read from the queues' own structures at scrape time, in a
bounded number of commands whatever their depth. HTTP request durations are this process's own (labelled
by route template, never the raw path; event streams left out, as their duration is how long a client
listened). Open in development; in production only with ``Authorization: Bearer <JOBSVC_METRICS_TOKEN>``,
else 404, so that an unauthorised scraper learns nothing, not even that the endpoint exists.
"""

from __future__ import annotations

import dataclasses
import hmac
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.engine import keys
from jobs.engine.metrics import JobCounters, parse_counters
from jobs.queues import QUEUE_NAMES
from service.config import Settings
from service.stores.queue_stats import QueueStats, read_queue_stats
from service.stores.tenant_store import TenantStore, TenantView

router = APIRouter(include_in_schema=False)

#: HTTP request duration buckets, seconds
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class ClusterFigures:
    """What one scrape read from Redis."""

    counters: JobCounters
    queues: list[QueueStats]
    dead_letters: dict[str, int]
    workers: int
    #: the queues an operator paused
    paused: frozenset[str] = frozenset()
    #: each tenant's open and kept jobs and bytes against its quotas and storage budget
    tenants: tuple[TenantView, ...] = ()


async def read_cluster_figures(
    redis: Redis, *, stale_after_s: float, dead_letter_retention_s: int
) -> ClusterFigures:
    now = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS)
        pipe.zcount(keys.WORKERS, now - int(stale_after_s * 1000), "+inf")
        pipe.hkeys(keys.PAUSED_QUEUES)
        for queue in QUEUE_NAMES:
            pipe.zcount(keys.dead_letters_in_queue(queue), now - dead_letter_retention_s * 1000, "+inf")
        raw, workers, paused, *dead = await pipe.execute()
    queues = await read_queue_stats(redis, QUEUE_NAMES)
    return ClusterFigures(
        counters=parse_counters(raw),
        queues=queues,
        dead_letters=dict(zip(QUEUE_NAMES, (int(d) for d in dead), strict=True)),
        workers=int(workers),
        paused=frozenset(name.decode() for name in paused),
    )


class ClusterCollector(Collector):
    """Turns one scrape's figures into metric families (read before ``generate_latest`` runs)."""

    def __init__(self, figures: ClusterFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        counters = self.figures.counters
        submitted = CounterMetricFamily(
            "jobsvc_jobs_submitted", "Jobs accepted, by type and queue.", labels=["type", "queue"]
        )
        for (job_type, queue), value in sorted(counters.submitted.items()):
            submitted.add_metric([job_type, queue], value)
        finished = CounterMetricFamily(
            "jobsvc_jobs_finished",
            "Jobs that ended, by type, queue and outcome (succeeded, failed, cancelled, expired).",
            labels=["type", "queue", "outcome"],
        )
        for (job_type, queue, outcome), value in sorted(counters.finished.items()):
            finished.add_metric([job_type, queue, outcome], value)
        retries = CounterMetricFamily(
            "jobsvc_job_retries", "Failed attempts that were retried.", labels=["type", "queue"]
        )
        for (job_type, queue), value in sorted(counters.retries.items()):
            retries.add_metric([job_type, queue], value)
        yield from (submitted, finished, retries)
        for name, doc, histograms in (
            ("jobsvc_job_run_seconds", "How long attempts that ended ran.", counters.run),
            ("jobsvc_job_queue_wait_seconds", "How long jobs waited from due to started.", counters.wait),
        ):
            family = HistogramMetricFamily(name, doc, labels=["type", "queue"])
            for (job_type, queue), histogram in sorted(histograms.items()):
                buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
                family.add_metric([job_type, queue], buckets, histogram.sum_ms / 1000)
            yield family
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "jobsvc_queue_jobs",
            "Jobs in a queue by state (ready, deferred, running).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "jobsvc_queue_oldest_ready_age_seconds",
            "How long the oldest ready job of a queue has waited since it fell due (0 when none waits): "
            "the signal to scale workers on.",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "jobsvc_queue_paused",
            "1 while an operator has paused the queue (its jobs wait; leave it out of autoscaling and "
            "wait-time alerts), else 0.",
            labels=["queue"],
        )
        for stats in self.figures.queues:
            paused.add_metric([stats.name], 1.0 if stats.name in self.figures.paused else 0.0)
            depth.add_metric([stats.name, "ready"], stats.queued)
            depth.add_metric([stats.name, "deferred"], stats.deferred)
            depth.add_metric([stats.name, "running"], stats.in_progress)
            oldest.add_metric([stats.name], stats.oldest_waiting_s or 0.0)
        dead = GaugeMetricFamily(
            "jobsvc_dead_letters", "Jobs in the dead letters, by queue.", labels=["queue"]
        )
        for queue, count in self.figures.dead_letters.items():
            dead.add_metric([queue], count)
        workers = GaugeMetricFamily("jobsvc_workers", "Workers whose heartbeat is fresh.")
        workers.add_metric([], self.figures.workers)
        yield from (depth, oldest, paused, dead, workers)
        yield from self._tenant_gauges()

    def _tenant_gauges(self) -> Iterator[Metric]:
        usage = GaugeMetricFamily(
            "jobsvc_tenant_usage",
            "What a tenant has now, by resource: open_jobs (waiting or running), kept_jobs and kept_bytes "
            "(in Redis, ended jobs included until they expire).",
            labels=["tenant", "resource"],
        )
        limit = GaugeMetricFamily(
            "jobsvc_tenant_limit",
            "A tenant's quota or storage budget for the same resources: past it, its submits answer 429.",
            labels=["tenant", "resource"],
        )
        for tenant in self.figures.tenants:
            for resource, used, most in (
                ("open_jobs", tenant.open_jobs, tenant.quotas.max_open_jobs),
                ("kept_jobs", tenant.kept.jobs, tenant.quotas.max_kept_jobs),
                ("kept_bytes", tenant.kept.bytes, tenant.quotas.max_kept_bytes),
            ):
                usage.add_metric([tenant.name, resource], used)
                limit.add_metric([tenant.name, resource], most)
        yield from (usage, limit)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class HttpMetrics:
    """This process's request durations, by method, route template and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "jobsvc_http_request_duration_seconds",
            "How long the API took to answer, by method, route template and status (streams left out).",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )


class HttpMetricsMiddleware:
    """Times each request; labels it with its route's template (``/v1/jobs/{job_id}``) or ``unmatched``."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        streaming = False

        async def send_and_note(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type" and value.startswith(b"text/event-stream"):
                        streaming = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if not streaming:
                route = route_template(scope)
                self.metrics.duration.labels(scope["method"], route, str(status)).observe(
                    time.perf_counter() - started
                )


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", []):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def authorised(request: Request, settings: Settings) -> bool:
    if settings.is_development:
        return True
    if settings.metrics_token is None:
        return False
    given = request.headers.get("authorization", "")
    expected = f"Bearer {settings.metrics_token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not authorised(request, settings):
        raise HTTPException(status_code=404)
    figures = await read_cluster_figures(
        request.app.state.arq,
        stale_after_s=settings.worker_stale_after_s,
        dead_letter_retention_s=settings.dead_letter_retention_s,
    )
    tenants: TenantStore = request.app.state.tenants
    figures = dataclasses.replace(figures, tenants=tuple(await tenants.list()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(figures))
    body = generate_latest(registry) + generate_latest(request.app.state.http_metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
