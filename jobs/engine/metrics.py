"""The cluster's job counters, in one hash (``keys.METRICS``) that any API process reads in one ``HGETALL``
(``GET /metrics``): no scrape target per worker.

Who counts what: the submit scripts count submissions, and the scripts that end a job away from a worker
(a cancel before it starts, an ARQ producer's job refused) count those ends. A worker tallies what its
own attempts do (:class:`Tally`: queue waits, run times, ends, retries) in memory and adds the tally to
the hash with its heartbeat and when it stops, in numbered batches that count once however often they
are sent (add_tally.lua): the hot path's scripts write no counters, and a worker killed outright loses
at most one heartbeat's tally. Fields are ``|``-separated, never hold a job id,
and so stay few (types x queues x outcomes x buckets)::

    s|<type>|<queue>                       jobs submitted
    f|<type>|<queue>|<outcome>             jobs that ended: succeeded, failed, cancelled, expired
    r|<type>|<queue>                       attempts that failed and were retried
    rb|<type>|<queue>|<i>, rs|<type>|<queue>   run time: count in bucket i (not cumulative), sum in ms
    wb|<type>|<queue>|<i>, ws|<type>|<queue>   queue wait (due -> started): the same
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field

#: upper bounds of the histogram buckets, in ms (the last bucket, +Inf, is implied)
BUCKETS_MS: tuple[int, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
)  # fmt: skip

OUTCOMES = ("succeeded", "failed", "cancelled", "expired")

Labels = tuple[str, str]  # (type, queue)


@dataclass
class Histogram:
    #: count per bucket, not cumulative; one more than BUCKETS_MS (+Inf)
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))
    sum_ms: int = 0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``[(upper bound in s, jobs at or below it), ..., (inf, all)]``, as Prometheus wants them."""
        running, out = 0, []
        for bound, count in zip((*[b / 1000 for b in BUCKETS_MS], float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass
class JobCounters:
    submitted: dict[Labels, int] = field(default_factory=lambda: defaultdict(int))
    finished: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    retries: dict[Labels, int] = field(default_factory=lambda: defaultdict(int))
    run: dict[Labels, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    wait: dict[Labels, Histogram] = field(default_factory=lambda: defaultdict(Histogram))


def parse_counters(raw: dict[bytes, bytes]) -> JobCounters:
    """The hash as ``HGETALL`` returns it -> typed counters; fields it does not know are left out."""
    counters = JobCounters()
    for name, value in raw.items():
        parts = name.decode().split("|")
        number = int(value)
        kind, labels = parts[0], tuple(parts[1:])
        if kind == "s" and len(labels) == 2:
            counters.submitted[labels[0], labels[1]] += number
        elif kind == "f" and len(labels) == 3:
            counters.finished[labels[0], labels[1], labels[2]] += number
        elif kind == "r" and len(labels) == 2:
            counters.retries[labels[0], labels[1]] += number
        elif kind in ("rb", "wb") and len(labels) == 3 and labels[2].isdigit():
            histograms = counters.run if kind == "rb" else counters.wait
            index = int(labels[2])
            if index <= len(BUCKETS_MS):
                histograms[labels[0], labels[1]].counts[index] += number
        elif kind in ("rs", "ws") and len(labels) == 2:
            histograms = counters.run if kind == "rs" else counters.wait
            histograms[labels[0], labels[1]].sum_ms += number
    return counters


def bucket_of(ms: int) -> int:
    """The histogram bucket of a duration: the first whose upper bound it does not exceed (as the
    scripts' ``observe_ms`` finds it); ``len(BUCKETS_MS)`` is +Inf."""
    return bisect.bisect_left(BUCKETS_MS, ms)


@dataclass(frozen=True)
class TallyBatch:
    """Increments of the hash's fields, numbered: the script adds a worker's batch once."""

    number: int
    increments: dict[str, int]

    @property
    def args(self) -> list[str | int]:
        """As add_tally.lua takes them after the worker's id."""
        return [
            self.number,
            *(part for field_increment in self.increments.items() for part in field_increment),
        ]


class Tally:
    """What one worker's attempts did since it last wrote them, as increments of the hash's fields."""

    def __init__(self) -> None:
        self._fields: Counter[str] = Counter()
        self._numbered = 0
        #: batches taken but not known to be added: the write failed, or its reply was lost
        self._unconfirmed: list[TallyBatch] = []

    def claimed(self, job_type: str, queue: str, waited_ms: int) -> None:
        self._observe("w", f"{job_type}|{queue}", waited_ms)

    def ended(self, job_type: str, queue: str, outcome: str, ran_ms: int | None) -> None:
        """An attempt's end, and how long it ran (None: the job never started, e.g. it expired)."""
        labels = f"{job_type}|{queue}"
        self._fields[f"f|{labels}|{outcome}"] += 1
        if ran_ms is not None:
            self._observe("r", labels, ran_ms)

    def retried(self, job_type: str, queue: str) -> None:
        self._fields[f"r|{job_type}|{queue}"] += 1

    def _observe(self, kind: str, labels: str, ms: int) -> None:
        if ms < 0:
            ms = 0
        fields = self._fields
        fields[f"{kind}b|{labels}|{bisect.bisect_left(BUCKETS_MS, ms)}"] += 1
        fields[f"{kind}s|{labels}"] += ms

    def take(self) -> list[TallyBatch]:
        """The batches to send, in order: those not yet confirmed added, each again with its number, and
        the increments since, as a new one. :meth:`confirm` them once the script answered."""
        if self._fields:
            self._numbered += 1
            self._unconfirmed.append(TallyBatch(self._numbered, dict(self._fields)))
            self._fields = Counter()
        return list(self._unconfirmed)

    def confirm(self, batches: list[TallyBatch]) -> None:
        """``batches`` (from :meth:`take`) are added: they are not sent again."""
        self._unconfirmed = [batch for batch in self._unconfirmed if batch not in batches]
