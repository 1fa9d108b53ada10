"""The cluster's job counters, as the scripts write them into one hash (``keys.METRICS``).

Workers keep no counts of their own: the scripts that submit, start and end a job count it in Redis, so
any API process reads the whole cluster's figures in one ``HGETALL`` (``GET /metrics``). Fields are
``|``-separated, never hold a job id, and so stay few (types x queues x outcomes x buckets)::

    s|<type>|<queue>                       jobs submitted
    f|<type>|<queue>|<outcome>             jobs that ended: succeeded, failed, cancelled, expired
    r|<type>|<queue>                       attempts that failed and were retried
    rb|<type>|<queue>|<i>, rs|<type>|<queue>   run time: count in bucket i (not cumulative), sum in ms
    wb|<type>|<queue>|<i>, ws|<type>|<queue>   queue wait (due -> started): the same
"""

from __future__ import annotations

from collections import defaultdict
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
