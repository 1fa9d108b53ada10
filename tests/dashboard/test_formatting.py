"""What the pages print: durations, times, confirmations that only say what the dashboard chose, and the
attempt timeline."""

from __future__ import annotations

import pytest

from jobs.engine.records import JobSnapshot
from jobs.status import JobStatus
from service.dashboard.notices import notice_job, notice_text, notice_url
from service.dashboard.render import between, pager, progress_percent, seconds, size, when
from service.dashboard.timeline import timeline


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (0.0042, "4 ms"),
        (2.5, "2.50 s"),
        (3.0, "3 s"),
        (42.4, "42 s"),
        (185, "3 min 5 s"),
        (7_800, "2 h 10 min"),
        (3 * 86_400 + 4 * 3600, "3 d 4 h"),
    ],
)
def test_durations_read_as_people_say_them(value: float | None, shown: str) -> None:
    assert seconds(value) == shown


def test_times_are_utc_and_missing_ones_are_blank() -> None:
    assert when(1_700_000_000_000) == "2023-11-14 22:13:20 UTC"
    assert when(None) == ""
    assert between(1_000, 3_500) == "2.50 s"
    assert between(None, 3_500) == ""


def test_progress_is_a_bounded_percentage_or_none() -> None:
    assert progress_percent({"current": 3, "total": 10}) == 30
    assert progress_percent({"current": 30, "total": 10}) == 100
    assert progress_percent({"current": 1, "total": 0}) is None
    assert progress_percent(None) is None


def test_a_notice_says_only_its_fixed_words() -> None:
    url = notice_url("/dashboard/dead-letters", "replayed_all", count=3)
    assert url == "/dashboard/dead-letters?notice=replayed_all&count=3"
    assert notice_text({"notice": "replayed_all", "count": "3"}) == "3 dead letters replayed as new jobs."
    assert notice_text({"notice": "<script>alert(1)</script>"}) is None
    assert notice_text({"notice": "purged", "count": "lots"}) == "0 dead letters deleted."
    assert notice_job({"job": "3f2c"}) == "3f2c"
    assert notice_job({"job": "javascript:alert(1)//x y"}) is None


def test_paging_links_keep_the_filters() -> None:
    links = pager("/dashboard/jobs", {"status": "failed", "type": None}, "abc")
    assert links == {
        "newest_url": "/dashboard/jobs?status=failed",
        "older_url": "/dashboard/jobs?status=failed&cursor=abc",
    }
    assert pager("/dashboard/jobs", {}, None) == {"newest_url": "/dashboard/jobs", "older_url": None}


def snapshot(status: JobStatus, attempts: int, error: dict[str, str] | None = None) -> JobSnapshot:
    return JobSnapshot(
        id="j",
        type="diag.fail",
        queue="default",
        priority=5,
        status=status,
        params={},
        result=None,
        error=error,
        attempts=attempts,
        max_attempts=5,
        progress=None,
        created_at=1,
        scheduled_for=None,
        started_at=50,
        finished_at=90 if status is not JobStatus.in_progress else None,
        cancel_requested=False,
    )


def test_the_timeline_is_the_recorded_failures_then_the_last_attempt() -> None:
    failure = {"type": "RetryableJobError", "message": "boom"}
    recorded = [
        {"attempt": 1, "started_at": 10, "finished_at": 20, "error": failure},
        {"attempt": 2, "error": {"type": "WorkerLost", "message": "its worker stopped while running it"}},
    ]
    steps = timeline(snapshot(JobStatus.succeeded, 3), recorded)
    assert [(s.number, s.outcome) for s in steps] == [(1, "failed"), (2, "lost"), (3, "succeeded")]
    assert steps[2].started_at == 50
    assert steps[2].error is None

    running = timeline(snapshot(JobStatus.in_progress, 1), [])
    assert [(s.number, s.outcome, s.finished_at) for s in running] == [(1, "running", None)]
    assert timeline(snapshot(JobStatus.queued, 0), []) == []
    # a failure the worker recorded is not counted twice when the job ended on it
    ended = timeline(snapshot(JobStatus.failed, 1, failure), recorded[:1])
    assert [(s.number, s.outcome) for s in ended] == [(1, "failed")]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0 bytes"), (1023, "1,023 bytes"), (3974, "3.9 KiB"), (1024 * 1024, "1 MiB"), (1 << 30, "1 GiB")],
)
def test_sizes_read_in_binary_units(value: int, shown: str) -> None:
    assert size(value) == shown
