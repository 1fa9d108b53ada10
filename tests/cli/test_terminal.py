"""What ``jobsvc`` shows: JSON when piped (capsys is not a terminal), tables and a live progress bar on a
terminal (a rich ``Console`` forced to be one, 100 columns wide), against the real app and a real worker.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import httpx
import pytest
from rich.console import Console

from service.cli import main
from tests.conftest import ADMIN_KEY, auth

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


async def jobsvc(*argv: str, console: Console | None = None) -> int:
    return await asyncio.to_thread(main, list(argv), console=console)


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100)


def screen(console: Console) -> list[str]:
    """The lines written to the terminal, without escape codes, redraws split into lines."""
    assert isinstance(console.file, io.StringIO)
    text = ANSI.sub("", console.file.getvalue()).replace("\r", "\n")
    return [line.rstrip() for line in text.splitlines() if line.strip()]


async def submit(api_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert await jobsvc("--url", api_url, "submit", *argv) == 0
    job_id: str = json.loads(capsys.readouterr().out)["id"]
    return job_id


async def watch_while_a_worker_runs(
    background_worker: Any, *argv: str, console: Console | None = None
) -> int:
    """Start watching first, so the stream opens on the queued job, then start the worker."""
    watching = asyncio.create_task(jobsvc(*argv, console=console))
    await asyncio.sleep(0.5)
    assert not watching.done()
    async with background_worker():
        return await asyncio.wait_for(watching, 20)


async def test_watch_piped_prints_each_event_as_a_json_line_and_exits_0_on_success(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = await submit(api_url, capsys, "diag.sleep", "--params", '{"seconds": 2}')

    code = await watch_while_a_worker_runs(background_worker, "--url", api_url, "watch", job_id)

    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses == ["queued", "in_progress", "succeeded"]
    progress = [(e["data"]["current"], e["data"]["total"]) for e in events if e["event"] == "progress"]
    assert progress == [(1, 2), (2, 2)]
    assert {e["data"]["id"] for e in events} == {job_id}
    assert all(e["id"] for e in events)  # each can be resumed from


async def test_watch_exits_1_when_the_job_fails(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = await submit(api_url, capsys, "diag.fail", "--params", '{"times": 1}', "--max-attempts", "1")

    code = await watch_while_a_worker_runs(background_worker, "--url", api_url, "watch", job_id)

    assert code == 1
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (last["event"], last["data"]["status"]) == ("status", "failed")


async def test_watch_of_a_finished_job_prints_it_once(
    api_url: str, run_jobs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = await submit(api_url, capsys, "diag.noop")
    await run_jobs()
    assert await jobsvc("--url", api_url, "watch", job_id) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["data"]["status"] == "succeeded"


async def test_submit_wait_piped_keeps_printing_the_job_and_exits_1_when_it_failed(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--url", api_url, "submit", "diag.fail", "--params", '{"times": 1}', "--max-attempts", "1")
    async with background_worker():
        code = await jobsvc(*argv, "--wait", "10")
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith('{\n  "id": ')
    assert json.loads(out)["status"] == "failed"


async def test_watch_on_a_terminal_ends_with_the_full_bar_and_the_final_status(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = await submit(api_url, capsys, "diag.sleep", "--params", '{"seconds": 2}')
    console = terminal()

    code = await watch_while_a_worker_runs(
        background_worker, "--url", api_url, "watch", job_id, console=console
    )

    assert code == 0
    assert capsys.readouterr().out == ""  # all of it went to the terminal
    final = screen(console)[-1]
    assert final.startswith(f"diag.sleep {job_id}")
    assert re.search(r"━+ 2/2 succeeded \d+(\.\d)?s$", final), final
    assert any(" 1/2 in_progress" in line for line in screen(console))


async def test_submit_wait_on_a_terminal_draws_the_bar_and_exits_1_when_the_job_failed(
    api_url: str, background_worker: Any
) -> None:
    console = terminal()
    argv = ("--url", api_url, "submit", "diag.fail", "--params", '{"times": 1}', "--max-attempts", "1")
    async with background_worker():
        code = await jobsvc(*argv, "--wait", console=console)
    assert code == 1
    final = screen(console)[-1]
    assert final.startswith("diag.fail ")
    assert "failed" in final
    assert "failing attempt 1 of 1 on purpose" in final


async def test_list_draws_a_table_on_a_terminal_and_prints_json_piped(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = await submit(api_url, capsys, "diag.noop")
    console = terminal()

    assert await jobsvc("--url", api_url, "list", console=console) == 0

    lines = screen(console)
    assert lines[0] == "1 jobs"
    assert re.search(r"id\s+┃ type\s+┃ queue\s+┃ status\s+┃ attempts ┃ created\s+┃ finished", lines[2])
    [row] = [line for line in lines if "diag.noop" in line]
    assert re.search(
        rf"{job_id}\s+│ diag\.noop\s+│ \S+\s+│ queued\s+│\s+0/\d+ │ \d+(\.\d)?s ago\s+│ -", row
    ), row

    assert await jobsvc("--url", api_url, "list") == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)["jobs"]] == [job_id]


async def test_queues_workers_and_dead_letters_draw_tables_on_a_terminal(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("submit", "diag.fail", "--params", '{"times": 1}', "--max-attempts", "1", "--wait", "10")
    async with background_worker():
        assert await jobsvc("--url", api_url, *argv) == 1
        job_id = json.loads(capsys.readouterr().out)["id"]
        workers = terminal()
        assert await jobsvc("--url", api_url, "workers", console=workers) == 0

    assert "1 workers" in screen(workers)[0]
    assert re.search(
        r"id\s+┃ host\s+┃\s+pid ┃ queues\s+┃ running ┃ done ┃ failed ┃ started\s+┃ heartbeat",
        "\n".join(screen(workers)),
    )

    queues = terminal()
    async with httpx.AsyncClient(base_url=api_url, headers=auth(ADMIN_KEY)) as api:
        assert (await api.post("/v1/queues/bulk:pause")).status_code == 200
    assert await jobsvc("--url", api_url, "queues", console=queues) == 0
    text = "\n".join(screen(queues))
    assert re.search(r"queue\s+┃ queued ┃ deferred ┃ running ┃ ok/h ┃ failed/h ┃ oldest wait", text)
    assert re.search(r"default\s+│\s+0 │\s+0 │\s+0 │\s+0 │\s+1 │ -", text), text
    assert re.search(r"bulk \(paused\)\s+│", text), text

    dead = terminal()
    assert await jobsvc("--url", api_url, "dead-letters", console=dead) == 0
    text = "\n".join(screen(dead))
    assert re.search(r"id\s+┃ type\s+┃ attempts ┃ failed\s+┃ replayed ┃ error", text), text
    assert re.search(rf"{job_id} │ diag\.fail │\s+1 │ \d+(\.\d)?s ago │ -\s+│ failing attempt", text), text


async def test_queues_workers_and_dead_letters_print_json_piped(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command, key in (("queues", "queues"), ("workers", "workers"), ("dead-letters", "dead_letters")):
        assert await jobsvc("--url", api_url, command) == 0
        out = capsys.readouterr().out
        assert out.startswith("{\n  ")
        assert key in json.loads(out)


async def test_no_color_keeps_the_terminal_tables_free_of_colors(
    api_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await submit(api_url, capsys, "diag.noop")
    colored, plain = terminal(), None
    assert await jobsvc("--url", api_url, "list", console=colored) == 0
    monkeypatch.setenv("NO_COLOR", "1")
    plain = terminal()
    assert await jobsvc("--url", api_url, "list", console=plain) == 0
    assert isinstance(colored.file, io.StringIO)
    assert isinstance(plain.file, io.StringIO)
    assert "\x1b[34m" in colored.file.getvalue()  # queued is blue
    assert not re.search(r"\x1b\[3\dm", plain.file.getvalue())
