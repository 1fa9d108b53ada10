"""The one-line confirmations shown after an action (Post/Redirect/Get): a fixed wording per kind, so a
link can never make the dashboard say something of its choosing; only a count and a job id are filled in,
both checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlencode

from service.api.schemas import JOB_ID_PATTERN

NOTICES = {
    "cancelled": "Job cancelled.",
    "cancelled_all": "{count} unfinished jobs cancelled; running ones stop within moments.",
    "retried": "This is a new job running the failed one again.",
    "replayed": "Dead letter replayed as a new job.",
    "replayed_all": "{count} dead letters replayed as new jobs.",
    "deleted": "Dead letter deleted.",
    "purged": "{count} dead letters deleted.",
    "signed_out": "You are signed out.",
    "queue_paused": "Queue paused: its jobs wait, no worker starts one; running ones finish.",
    "queue_resumed": "Queue resumed: workers start its waiting jobs.",
}
_JOB_ID = re.compile(JOB_ID_PATTERN)


def notice_url(path: str, kind: str, *, count: int | None = None, job: str | None = None) -> str:
    query: dict[str, str] = {"notice": kind}
    if count is not None:
        query["count"] = str(count)
    if job is not None:
        query["job"] = job
    return f"{path}?{urlencode(query)}"


def notice_text(query: Mapping[str, str]) -> str | None:
    """The confirmation named by ``?notice=`` (with ``count``), or None."""
    template = NOTICES.get(query.get("notice", ""))
    if template is None:
        return None
    count = query.get("count", "")
    return template.format(count=int(count) if count.isdigit() else 0)


def notice_job(query: Mapping[str, str]) -> str | None:
    """The job a confirmation links to (``?job=``), if it is shaped like a job id."""
    job = query.get("job", "")
    return job if _JOB_ID.fullmatch(job) else None
