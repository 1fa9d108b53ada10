"""Pages from Jinja2 templates, each answered with the dashboard's strict Content-Security-Policy.

Nothing runs inline and nothing loads from another host: scripts and styles are files under
``/dashboard/static`` (``'self'``), so the policy needs no nonce, no hash and no ``'unsafe-inline'``.
Templates autoescape everything; the filters below only format values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from jobs.status import JobStatus

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

#: The dashboard's pages: everything from this origin, nothing inline, no plugins, no framing, forms
#: post only here.
DASHBOARD_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-store"}

STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus)


def moment(value: int | float | datetime | None) -> datetime | None:
    """Epoch milliseconds or an aware datetime -> an aware UTC datetime."""
    if value is None or value == 0:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def iso(value: int | float | datetime | None) -> str:
    at = moment(value)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z") if at else ""


def when(value: int | float | datetime | None) -> str:
    """``2026-12-01 10:22:03 UTC``; an empty string for no time."""
    at = moment(value)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else ""


def seconds(value: float | None) -> str:
    """A duration for people: ``250 ms``, ``2.5 s``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if value is None:
        return "—"
    if value < 1:
        return f"{round(value * 1000)} ms"
    if value < 10:
        return f"{value:.2f} s".replace(".00 s", " s")
    total = round(value)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def between(start: int | None, end: int | None) -> str:
    """The duration between two epoch-ms moments, or an empty string when either is missing."""
    if not start or not end:
        return ""
    return seconds(max(0, end - start) / 1000)


def number(value: int) -> str:
    """``100000`` -> ``100,000``."""
    return f"{value:,}"


def size(value: int) -> str:
    """Bytes as people read them, in binary units: ``3974`` -> ``3.9 KiB``, ``1073741824`` -> ``1 GiB``."""
    amount, unit = float(value), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    return f"{value:,} bytes" if unit == "bytes" else f"{amount:.1f}".removesuffix(".0") + f" {unit}"


def label(status: str | JobStatus | None) -> str:
    """``in_progress`` -> ``in progress``: the words a status shows as."""
    return str(status or "").replace("_", " ")


def pretty(value: Any) -> str:
    """JSON, indented, for params and results."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def progress_percent(progress: Mapping[str, Any] | None) -> int | None:
    if not progress:
        return None
    current, total = progress.get("current"), progress.get("total")
    if not isinstance(current, int | float) or not isinstance(total, int | float) or total <= 0:
        return None
    return max(0, min(100, round(100 * current / total)))


def pager(path: str, params: Mapping[str, str | None], next_cursor: str | None) -> dict[str, str | None]:
    """The links of a listing: back to its newest page and on to the next, keeping its filters."""
    kept = {name: value for name, value in params.items() if value}
    return {
        "newest_url": f"{path}?{urlencode(kept)}" if kept else path,
        "older_url": f"{path}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None,
    }


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    env = templates.env
    env.filters.update(
        when=when,
        iso=iso,
        number=number,
        size=size,
        seconds=seconds,
        between=between,
        label=label,
        pretty=pretty,
        percent=progress_percent,
    )
    env.globals.update(STATUSES=STATUSES, label=label)
    env.trim_blocks = True
    env.lstrip_blocks = True
    return templates


TEMPLATES = _templates()


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with the request's session (if any) in the context, under the dashboard's CSP."""
    full: dict[str, Any] = {"session": getattr(request.state, "dashboard_session", None), **(context or {})}
    return TEMPLATES.TemplateResponse(
        request, template, full, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})}
    )
