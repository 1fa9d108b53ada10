"""The API and a worker, started as operators start them, take what they started with out of the garbage
collector's full passes (service/collector.py); a test process, which builds many apps, does not."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from tests.cli.test_processes import ROOT, child_env

#: far fewer objects than a started app holds (about 100,000), far more than Python's own start leaves
MANY = 20_000


def frozen_after(code: str, env: dict[str, str]) -> int:
    """``gc.get_freeze_count()`` in a fresh interpreter after running ``code``."""
    run = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport gc\nprint(gc.get_freeze_count())"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return int(run.stdout.split()[-1])


def test_the_apis_entry_point_freezes_what_it_started_with(redis_url: str, tmp_path: Path) -> None:
    env = child_env(JOBSVC_REDIS_URL=redis_url, JOBSVC_DATA_DIR=str(tmp_path))
    assert frozen_after("import service.main", env) > MANY
    assert (
        frozen_after("import service.api.app", env) == 0
    )  # importing the app's module alone freezes nothing


def test_a_worker_under_arqs_cli_freezes_what_it_started_with(redis_url: str, tmp_path: Path) -> None:
    env = child_env(JOBSVC_REDIS_URL=redis_url, JOBSVC_DATA_DIR=str(tmp_path))
    # ARQ's CLI in this interpreter: a burst worker starts (its startup hook runs), finds nothing, and stops
    cli = (
        "import sys\nsys.argv = ['arq']\nfrom arq.cli import cli\n"
        "cli.main(['--burst', 'worker_settings.WorkerSettings'], standalone_mode=False)"
    )
    assert frozen_after(cli, env) > MANY


def test_this_test_process_froze_nothing() -> None:
    assert gc.get_freeze_count() == 0
