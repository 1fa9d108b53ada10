"""The layout holds: what a job author imports and the job types we ship never load the engine, ARQ or
Redis; imports only go downwards; no module grows into two things."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^jobsvc:[a-z]")
AUTHOR_API = sorted(
    f"jobs.{path.stem}" for path in (ROOT / "jobs").glob("*.py") if path.stem not in ("__init__", "registry")
)
CATALOGUE = sorted(f"jobs.catalogue.{path.stem}" for path in (ROOT / "jobs" / "catalogue").glob("*.py"))


def loaded_after_importing(modules: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after importing ``modules``."""
    code = "import sys\n" + "".join(f"import {name}\n" for name in modules) + "print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("modules", [["jobs", *AUTHOR_API], CATALOGUE], ids=["author API", "catalogue"])
def test_the_author_api_and_the_catalogue_load_neither_the_engine_nor_arq_nor_redis(
    modules: list[str],
) -> None:
    loaded = loaded_after_importing(modules)
    forbidden = sorted(
        name
        for name in loaded
        if name.split(".")[0] in ("arq", "redis", "fastapi", "service")
        or name == "jobs.engine"
        or name.startswith("jobs.engine.")
    )
    assert forbidden == []


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_imports_only_go_downwards() -> None:
    """catalogue -> author API; engine -> author API; service -> engine; the catalogue only through the
    registry; nothing of jobs/ imports the service."""
    wrong: list[str] = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for module in imports_of(path):
            if module.startswith("service"):
                wrong.append(f"{where} imports {module}")
            if where.startswith("jobs/catalogue/") and module.startswith("jobs.engine"):
                wrong.append(f"{where} imports {module}")
            if where.startswith("jobs/engine/") and module.startswith("jobs.catalogue"):
                wrong.append(f"{where} imports {module}")
            author = where.startswith("jobs/") and where.count("/") == 1 and where != "jobs/registry.py"
            if author and module.startswith(("jobs.engine", "jobs.catalogue")):
                wrong.append(f"{where} imports {module}")
    for path in sorted((ROOT / "service").rglob("*.py")):
        for module in imports_of(path):
            if module.startswith("jobs.catalogue"):
                wrong.append(f"{path.relative_to(ROOT).as_posix()} imports {module}")
    assert wrong == []


def test_no_python_module_holds_lua_or_names_a_redis_key_prefix_of_its_own() -> None:
    """Key names live in jobs/engine/keys.py (and the one diagnostic log key beside its job type)."""
    allowed = {ROOT / "jobs" / "engine" / "keys.py", ROOT / "jobs" / "catalogue" / "diag.py"}
    spelled: list[str] = []
    for path in sorted([*(ROOT / "jobs").rglob("*.py"), *(ROOT / "service").rglob("*.py")]):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and KEY.match(node.value) is not None
            ):
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert spelled == []


def test_every_lua_script_has_a_test_file_of_its_own() -> None:
    """``jobs/engine/lua/<name>.lua`` is run on its own by ``tests/engine/lua/test_<name>.py``."""
    scripts = sorted(path.stem for path in (ROOT / "jobs" / "engine" / "lua").glob("*.lua"))
    tests = ROOT / "tests" / "engine" / "lua"
    assert scripts
    assert [name for name in scripts if not (tests / f"test_{name}.py").is_file()] == []
