"""The README stays true: every setting is in its table, and the commands it names exist."""

from __future__ import annotations

from pathlib import Path

from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    for name in Settings.model_fields:
        assert f"`JOBSVC_{name.upper()}`" in README, f"JOBSVC_{name.upper()} is missing from the README"


def test_the_two_commands_exist_and_are_executable() -> None:
    for script in ("scripts/dev", "scripts/test"):
        assert f"./{script}" in README
        path = ROOT / script
        assert path.is_file()
        assert path.stat().st_mode & 0o111
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
