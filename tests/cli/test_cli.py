"""The ``jobsvc`` command, run in-process against the app served by uvicorn and a real ARQ worker.

``main`` talks to the API with the sync client, which blocks: it runs in a thread, so that the server on
the test's loop keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.cli import main


async def jobsvc(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_submit_with_wait_prints_the_succeeded_job(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with background_worker():
        code = await jobsvc("--url", api_url, "submit", "diag.noop", "--wait", "10")
    out = capsys.readouterr().out
    assert code == 0
    job = json.loads(out)
    assert (job["type"], job["status"]) == ("diag.noop", "succeeded")
    assert out.startswith('{\n  "id": ')  # indented for people


async def test_status_prints_the_job_and_can_wait_for_its_end(
    api_url: str, background_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await jobsvc("submit", "diag.sleep", "--params", '{"seconds": 0.1}', "--url", api_url) == 0
    job_id = json.loads(capsys.readouterr().out)["id"]

    assert await jobsvc("status", job_id, "--url", api_url) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "queued"

    async with background_worker():
        assert await jobsvc("status", job_id, "--wait", "10", "--url", api_url) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["id"], done["status"], done["result"]) == (job_id, "succeeded", {"slept_s": 0.1})


async def test_cancel_list_and_types(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await jobsvc("--url", api_url, "submit", "diag.noop") == 0
    job_id = json.loads(capsys.readouterr().out)["id"]

    assert await jobsvc("--url", api_url, "list", "--type", "diag.noop", "--status", "queued") == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)["jobs"]] == [job_id]

    assert await jobsvc("--url", api_url, "cancel", job_id) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"

    assert await jobsvc("--url", api_url, "types") == 0
    assert "diag.noop" in {t["name"] for t in json.loads(capsys.readouterr().out)["job_types"]}


async def test_unknown_type_exits_1_with_the_problem_on_stderr(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await jobsvc("--url", api_url, "submit", "diag.nothing_here") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Unknown job type" in captured.err
    assert "diag.nothing_here" in captured.err


async def test_params_failing_the_schema_exit_1_naming_the_field(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await jobsvc("--url", api_url, "submit", "diag.sleep", "--params", '{"seconds": -1}') == 1
    assert "/params/seconds" in capsys.readouterr().err


def test_params_that_are_not_a_json_object_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "diag.noop", "--params", "{not json"]) == 2
    assert "--params" in capsys.readouterr().err
    assert main(["submit", "diag.noop", "--params", "[1, 2]"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_unreachable_service_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["--url", f"http://127.0.0.1:{port}", "types"]) == 1
    assert capsys.readouterr().err.startswith("jobsvc: ")


async def test_keys_are_created_listed_and_revoked(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    create = ("keys", "create", "--tenant", "acme", "--scopes", "read,submit")
    assert await jobsvc("--url", api_url, *create) == 0
    created = json.loads(capsys.readouterr().out)
    assert (created["tenant"], created["scopes"]) == ("acme", ["submit", "read"])
    assert created["key"]

    assert await jobsvc("--url", api_url, "keys", "list") == 0
    assert created["id"] in {key["id"] for key in json.loads(capsys.readouterr().out)["keys"]}
    assert await jobsvc("--url", api_url, "keys", "revoke", created["id"]) == 0
    assert capsys.readouterr().out == f"revoked {created['id']}\n"


def test_unknown_scopes_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "acme", "--scopes", "read,root"]) == 2
    assert "not root" in capsys.readouterr().err


def test_talking_to_the_api_needs_nothing_of_the_server() -> None:
    """Given a key, the commands that talk to the API load the client, not the service, ARQ or Redis."""
    code = (
        "import sys; from service.cli import main; "
        "assert main(['--url', 'http://127.0.0.1:9', 'types']) == 1; "
        "print(sorted({m for m in sys.modules if m.split('.')[0] in {'jobs', 'fastapi', 'arq', 'redis'} "
        "or m.startswith(('service.api', 'service.stores', 'service.config'))}))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"JOBSVC_API_KEY": "k", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    ).stdout
    assert out.strip() == "[]"
