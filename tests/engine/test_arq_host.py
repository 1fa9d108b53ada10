"""ARQ's internals are relied on in one module, listed there, and checked at every start: an ARQ that
lacks one refuses to run jobsvc's worker instead of quietly falling back to ARQ's own polling."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from arq import ArqRedis
from arq.worker import Worker

from jobs.engine import arq_host
from jobs.engine.arq_host import ARQ_INTERNALS, missing_arq_internals
from jobs.engine.worker import JobsvcWorker
from service.config import Settings
from tests.conftest import make_worker
from tests.helpers import submit

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_INTERNALS = {name for name in ARQ_INTERNALS if name.startswith("_")}


def project_modules() -> list[Path]:
    return [
        *ROOT.joinpath("jobs").rglob("*.py"),
        *ROOT.joinpath("service").rglob("*.py"),
        ROOT / "worker_settings.py",
    ]


async def test_the_installed_arq_has_every_internal_jobsvc_relies_on(settings: Settings) -> None:
    worker = make_worker(settings)
    try:
        assert missing_arq_internals(worker) == []
    finally:
        await worker.close()


def test_arqs_private_names_appear_in_the_arq_host_module_only() -> None:
    offenders: list[str] = []
    for path in project_modules():
        if path == Path(arq_host.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_INTERNALS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "arq.worker":
                names = {alias.name for alias in node.names}
                if "Worker" in names:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports arq.worker.Worker")
    assert offenders == []


def test_the_list_names_every_private_method_the_engine_overrides() -> None:
    overridden = {
        name for name in vars(arq_host.ArqHost) if name.startswith("_") and not name.startswith("__")
    }
    assert overridden <= PRIVATE_INTERNALS


@pytest.mark.parametrize("lost", ["_poll_iteration", "_jobs_started", "_job_completion_wait", "job_tasks"])
async def test_a_worker_on_an_arq_lacking_an_internal_refuses_to_start_and_names_it(
    settings: Settings, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    worker = make_worker(settings, burst=True, poll_delay=0)
    if lost in vars(Worker):
        monkeypatch.delattr(Worker, lost)  # as if an ARQ release had renamed the method
    else:
        delattr(worker, lost)  # as if it had renamed the attribute its __init__ sets
    try:
        with pytest.raises(RuntimeError, match=f"this ARQ lacks what jobsvc's worker relies on: {lost}"):
            await worker.main()
        assert not isinstance(worker, JobsvcWorker)  # never adopted, and so never polled ARQ's queue
    finally:
        monkeypatch.undo()
        await worker.close()


async def test_a_worker_on_the_installed_arq_is_adopted_and_runs_a_job(
    settings: Settings, http: Any, redis: ArqRedis, run_jobs: Any
) -> None:
    job = await submit(http, "diag.noop", {})
    worker = await run_jobs()
    assert isinstance(worker, JobsvcWorker)
    assert (await http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "succeeded"
