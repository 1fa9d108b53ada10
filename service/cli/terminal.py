"""What the ``jobsvc`` command shows a person at a terminal: tables, and a job's live progress bar.

Piped, the same commands print JSON; the choice is ``Console.is_terminal``, so rich's own rules apply
(``FORCE_COLOR``, ``NO_COLOR``, ``COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from jobsvc_client import Job, JobEvent, JobStatus
from jobsvc_client.models import DeadLetterList, JobList, QueueList, WorkerList
from jobsvc_client.models.jobs import JobProgress
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    JobStatus.deferred: "magenta",
    JobStatus.queued: "blue",
    JobStatus.in_progress: "cyan",
    JobStatus.succeeded: "green",
    JobStatus.failed: "red",
    JobStatus.cancelled: "yellow",
}


def status_text(status: JobStatus | str | None) -> Text:
    if status is None:
        return Text("-")
    return Text(str(status), style=STATUS_STYLES.get(JobStatus(status), ""))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that fits: ``45s ago``, ``3m ago``, ``2h ago``, ``4d ago``."""
    if moment is None:
        return "-"
    return f"{duration(((now or datetime.now(UTC)) - moment).total_seconds())} ago"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def _table(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[str | Text]],
    *,
    counts: Sequence[str] = (),
    wraps: str | None = None,
) -> Table:
    """Cells keep to one line (ids are copied into the next command) but the ``wraps`` column's, which
    takes the width left; ``counts`` are right-aligned."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for header in headers:
        table.add_column(
            header,
            justify="right" if header in counts else "left",
            no_wrap=header != wraps,
            ratio=1 if header == wraps else None,
        )
    for row in rows:
        table.add_row(*row)
    return table


def jobs_table(page: JobList) -> Table:
    now = datetime.now(UTC)
    rows = (
        (
            job.id,
            job.type,
            job.queue,
            status_text(job.status),
            f"{job.attempts}/{job.max_attempts}" if job.max_attempts else str(job.attempts),
            age(job.created_at, now),
            age(job.finished_at, now),
        )
        for job in page.jobs
    )
    headers = ("id", "type", "queue", "status", "attempts", "created", "finished")
    return _table(f"{len(page.jobs)} jobs", headers, rows, counts=["attempts"])


def queues_table(answer: QueueList) -> Table:
    rows = (
        (
            queue.name + (" (paused)" if queue.paused_at else ""),
            str(queue.queued),
            str(queue.deferred),
            str(queue.in_progress),
            str(queue.succeeded_last_hour),
            str(queue.failed_last_hour),
            "-" if queue.oldest_waiting_s is None else duration(queue.oldest_waiting_s),
        )
        for queue in answer.queues
    )
    headers = ("queue", "queued", "deferred", "running", "ok/h", "failed/h", "oldest wait")
    return _table(f"{len(answer.queues)} queues", headers, rows, counts=headers[1:-1])


def workers_table(answer: WorkerList) -> Table:
    now = datetime.now(UTC)
    rows = (
        (
            worker.id,
            worker.host,
            str(worker.pid),
            ", ".join(worker.queues),
            str(worker.jobs_running),
            str(worker.jobs_done),
            str(worker.jobs_failed),
            age(worker.started_at, now),
            age(worker.last_heartbeat, now),
        )
        for worker in answer.workers
    )
    headers = ("id", "host", "pid", "queues", "running", "done", "failed", "started", "heartbeat")
    return _table(
        f"{len(answer.workers)} workers",
        headers,
        rows,
        counts=("pid", "running", "done", "failed"),
        wraps="queues",
    )


def dead_letters_table(page: DeadLetterList) -> Table:
    now = datetime.now(UTC)
    rows = (
        (
            letter.id,
            letter.job.type,
            str(len(letter.attempts)),
            age(letter.failed_at, now),
            "yes" if letter.replayed_as else "-",
            letter.job.error.message if letter.job.error else "-",
        )
        for letter in page.dead_letters
    )
    # the queue and the replay's id are left to the JSON: an id is 32 columns, the error needs the room
    headers = ("id", "type", "attempts", "failed", "replayed", "error")
    title = f"{len(page.dead_letters)} dead letters"
    return _table(title, headers, rows, counts=["attempts"], wraps="error")


TABLES: dict[type[BaseModel], Callable[[BaseModel], Table]] = {
    JobList: lambda m: jobs_table(m),  # type: ignore[arg-type]
    QueueList: lambda m: queues_table(m),  # type: ignore[arg-type]
    WorkerList: lambda m: workers_table(m),  # type: ignore[arg-type]
    DeadLetterList: lambda m: dead_letters_table(m),  # type: ignore[arg-type]
}


def print_table(console: Console, answer: BaseModel) -> None:
    console.print(TABLES[type(answer)](answer))
    next_cursor = getattr(answer, "next_cursor", None)
    if next_cursor:
        console.print(f"more: --cursor {escape(next_cursor)}", style="dim")


class _Elapsed(ProgressColumn):
    """The job's own running time (from when a worker started it), not the watcher's."""

    def render(self, task: Task) -> Text:
        job: Job | None = task.fields.get("job")
        if job is None or job.started_at is None:
            return Text("-", style="progress.elapsed")
        end = job.finished_at or datetime.now(UTC)
        return Text(duration((end - job.started_at).total_seconds()), style="progress.elapsed")


class JobView:
    """A live progress bar for one job, fed its events: ``current/total``, status, message, elapsed; when
    the job ends the bar stays as the last line, with its final status."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[status]}"),
            _Elapsed(),
            TextColumn("{task.fields[message]}"),
            console=console,
        )
        self._task: TaskID | None = None
        self._job: Job | None = None
        self._progress_seen: JobProgress | None = None

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._progress.refresh()
        self._progress.stop()

    def update(self, event: JobEvent) -> None:
        if event.event == "status":
            self._job = event.job()
            if self._job.progress is not None:
                self._progress_seen = self._job.progress
        elif event.event == "progress":
            self._progress_seen = JobProgress.model_validate(event.data)
        if self._job is None:
            return
        if self._task is None:
            self._task = self._progress.add_task(
                escape(f"{self._job.type} {self._job.id}"),
                total=None,
                count="",
                status="",
                message="",
                job=None,
            )
        seen, job = self._progress_seen, self._job
        total = seen.total if seen else None
        current = seen.current if seen else 0
        if job.status == JobStatus.succeeded and total is None:
            total = current = max(current, 1)  # a job that reported nothing still ends with a full bar
        style = STATUS_STYLES.get(job.status, "")
        message = job.error.message if job.error else (seen.message if seen and seen.message else "")
        self._progress.update(
            self._task,
            total=total,
            completed=current,
            count=f"{current}/{total if total is not None else '?'}",
            status=f"[{style}]{job.status}[/]",
            message=escape(message),
            job=job,
        )
