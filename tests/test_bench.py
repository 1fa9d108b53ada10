"""The benchmark suite, quick and for jobsvc only: every section runs and yields positive figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run_bench(module: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``python -m bench.<module> args...`` from the checkout, asserted to exit 0."""
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_quick_suite_measures_every_section_for_jobsvc(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = run_bench("suite", "--quick", "--only", "jobsvc", "--json", str(out), timeout_s=90)
    jobsvc = json.loads(out.read_text())["systems"]["jobsvc"]
    figures = {
        "idle pickup p50": jobsvc["pickup"]["idle_ms"]["p50"],
        "pickup under load p50": jobsvc["pickup"]["load_ms"]["p50"],
        "pickup at a steady load p50": jobsvc["pickup"]["steady_ms"]["p50"],
        "noop drain": jobsvc["drain"]["noop_1w"]["jobs_per_s"],
        "sleep drain": jobsvc["drain"]["sleep_1w"]["jobs_per_s"],
        "REST single": next(iter(jobsvc["rest"]["single"].values()))["jobs_per_s"],
        "REST batch": next(iter(jobsvc["rest"]["batch"].values()))["jobs_per_s"],
        "commands per queued job": jobsvc["commands"]["commands_per_queued_job"],
        "bytes per queued job": jobsvc["commands"]["bytes_per_queued_job"],
        "commands per finished job": jobsvc["commands"]["commands_per_finished_job"],
        # the embedded server keeps an append-only file: every write is paid there again
        "append-only-file bytes per finished job": jobsvc["commands"]["aof_bytes_per_finished_job"],
        "idle commands per second": jobsvc["idle"]["commands_per_s"],
    }
    assert all(value > 0 for value in figures.values()), figures
    assert "Drain throughput" in run.stdout, run.stdout


def test_the_depth_scenario_measures_every_figure_at_both_depths(tmp_path: Path) -> None:
    out = tmp_path / "depth.json"
    run = run_bench("depth", "--depth", "10000", "--probes", "5", "--json", str(out), timeout_s=180)
    figures = json.loads(out.read_text())
    assert (figures["shallow"]["depth"], figures["deep"]["depth"]) == (1000, 10000)
    for depth in ("shallow", "deep"):
        assert len(figures[depth]) >= 12, figures[depth]
        positive = {name: value > 0 for name, value in figures[depth].items()}
        assert all(positive.values()), (depth, figures[depth])
    assert "| GET /v1/jobs?status=failed p99 ms |" in run.stdout
    # the rates once more without a background save (the same when none ran), and what each command took
    assert set(figures["background_save"]) == {"shallow", "deep"}
    for depth in ("shallow", "deep"):
        if not figures["background_save"][depth]:
            rate = figures[depth]["claim jobs/s"]
            assert figures[depth]["claim jobs/s (no background save)"] == rate
        assert figures["commands"][depth]["evalsha"][0] > 0
    assert "| command (while the rates ran) |" in run.stdout
    assert "| evalsha |" in run.stdout


def test_the_memory_census_splits_what_one_more_job_adds_by_key(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    run = run_bench("memory", "--jobs", "2000", "--json", str(out), timeout_s=120)
    measured = json.loads(out.read_text())
    assert measured["jobs"] == 1000
    assert all(value > 0 for value in measured["figures"].values()), measured["figures"]
    # each job of the second half: its ARQ record and meta while queued; its result and meta once ended
    queued, kept = measured["queued"], measured["kept"]
    assert queued["arq:job:<id>"]["keys"] == queued["jobsvc:job:<id>"]["keys"] == 1000, queued
    assert kept["arq:result:<id>"]["keys"] == kept["jobsvc:job:<id>"]["keys"] == 1000, kept
    # an ended job keeps no ARQ record and no place in line, and stays listed
    assert "arq:job:<id>" not in kept, kept
    assert "jobsvc:ready:default" not in kept, kept
    assert queued["jobsvc:ready:default"]["bytes"] > 0, queued
    assert kept["jobsvc:index:t:default"]["bytes"] > 0, kept
    assert "what the second half added a job" in run.stdout, run.stdout


def test_the_api_cost_counts_cpu_and_python_calls_of_every_request(tmp_path: Path) -> None:
    out = tmp_path / "api_cost.json"
    run = run_bench("api_cost", "--requests", "100", "--rounds", "1", "--json", str(out), timeout_s=120)
    costs = {cost["request"]: cost for cost in json.loads(out.read_text())}
    assert list(costs) == [
        "jobsvc POST /v1/jobs",
        "jobsvc GET /v1/jobs/{id}",
        "jobsvc POST /v1/jobs:batch (100 jobs)",
        "minimal POST /v1/jobs",
    ]
    assert all(cost["cpu_us"] > 0 and cost["python_calls"] > 100 for cost in costs.values()), costs
    # a batch of a hundred jobs does more than one job's work
    assert (
        costs["jobsvc POST /v1/jobs:batch (100 jobs)"]["python_calls"]
        > costs["jobsvc POST /v1/jobs"]["python_calls"]
    )
    assert "Python calls" in run.stdout, run.stdout
