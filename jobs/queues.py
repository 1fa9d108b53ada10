"""The named queues: which exist, and which ones a worker serves with what weight.

Each job type runs on a default queue and may be sent to another allowed one at submit. A worker serves
one or more queues (``JOBSVC_QUEUES=critical,default`` or with weights, ``critical:6,default:3``); each
time it has free slots it shares them between its queues by weight, so a flood on one queue never
starves another served by the same worker.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the queue a job type runs on unless it names another (ARQ's own queue, ``arq:queue``)
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    #: share of a worker's free slots this queue gets when several have work
    weight: int
    description: str


#: the queues this service knows, with the weight a worker gives each unless told otherwise
QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("critical", 6, "Work a user is waiting for: password resets, receipts."),
    QueueSpec(DEFAULT_QUEUE, 3, "Everything else."),
    QueueSpec("bulk", 1, "Large batches and backfills that may take their time."),
)
QUEUE_NAMES: tuple[str, ...] = tuple(spec.name for spec in QUEUES)
DEFAULT_WEIGHTS = {spec.name: spec.weight for spec in QUEUES}


def parse_served_queues(text: str) -> tuple[tuple[str, int], ...]:
    """``"critical:6,default"`` -> ``(("critical", 6), ("default", 3))``; raises ValueError on nonsense."""
    served: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight_text = part.partition(":")
        name = name.strip()
        if name not in DEFAULT_WEIGHTS:
            raise ValueError(f"unknown queue {name!r}; known queues: {', '.join(QUEUE_NAMES)}")
        if any(name == seen for seen, _ in served):
            raise ValueError(f"queue {name!r} is listed twice")
        weight = DEFAULT_WEIGHTS[name]
        if weight_text:
            if not weight_text.strip().isdigit() or not 1 <= int(weight_text) <= 100:
                raise ValueError(f"queue {name!r}: the weight must be a whole number from 1 to 100")
            weight = int(weight_text)
        served.append((name, weight))
    if not served:
        raise ValueError("a worker must serve at least one queue")
    return tuple(served)
