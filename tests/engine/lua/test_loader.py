"""The loader: includes resolved once and in order, placeholders filled, every mistake an error at load
time; and the package's own scripts, assembled whole, shipped as package data, and the only Lua there is."""

from __future__ import annotations

import fnmatch
import re
import tomllib
import typing
from pathlib import Path

import pytest
from arq import ArqRedis

from jobs.engine import lua
from jobs.engine.lua.__main__ import main as dump
from jobs.engine.lua.loader import ScriptAssemblyError, ScriptLoader

ROOT = Path(__file__).resolve().parents[3]
LUA_DIR = ROOT / "jobs" / "engine" / "lua"


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_loader_writes_each_include_once_before_its_first_user(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "main.lua": '-- header\n--- @include "b"\n--- @include "a"\nreturn a() + b()\n',
            "includes/a.lua": '--- @include "base"\nlocal function a() return base end\n',
            "includes/b.lua": '--- @include "base"\nlocal function b() return base end\n',
            "includes/base.lua": "local base = ${ONE}\n",
        },
    )
    script = ScriptLoader(root, {"ONE": 1}).script("main")
    assert script == (
        "-- header\n"
        "local base = 1\n\n"
        "local function b() return base end\n\n"
        "local function a() return base end\n\n"
        "return a() + b()\n"
    )


def test_loader_reads_each_file_once(tmp_path: Path) -> None:
    root = tree(
        tmp_path, {"one.lua": '--- @include "x"\n', "two.lua": '--- @include "x"\n', "includes/x.lua": "x\n"}
    )
    loader = ScriptLoader(root, {})
    loader.script("one")
    (root / "includes" / "x.lua").write_text("changed\n")
    assert loader.script("two") == "x\n"


def test_loader_refuses_a_missing_include_naming_who_wanted_it(tmp_path: Path) -> None:
    root = tree(tmp_path, {"main.lua": '--- @include "a"\n', "includes/a.lua": '--- @include "gone"\n'})
    with pytest.raises(ScriptAssemblyError, match=r"includes/gone\.lua \(included by includes/a\.lua\)"):
        ScriptLoader(root, {}).script("main")


def test_loader_refuses_an_include_cycle(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "main.lua": '--- @include "a"\n',
            "includes/a.lua": '--- @include "b"\n',
            "includes/b.lua": '--- @include "a"\n',
        },
    )
    with pytest.raises(ScriptAssemblyError, match="include cycle: a -> b -> a"):
        ScriptLoader(root, {}).script("main")


def test_loader_refuses_an_include_line_it_cannot_read(tmp_path: Path) -> None:
    root = tree(tmp_path, {"main.lua": "--- @include 'a'\n"})
    with pytest.raises(ScriptAssemblyError, match="an include reads"):
        ScriptLoader(root, {}).script("main")


def test_loader_refuses_an_unknown_placeholder_naming_its_file(tmp_path: Path) -> None:
    root = tree(tmp_path, {"main.lua": '--- @include "a"\n', "includes/a.lua": "return '${NOPE}'\n"})
    with pytest.raises(ScriptAssemblyError, match=r"unknown placeholder \$\{NOPE\} in includes/a\.lua"):
        ScriptLoader(root, {"ONE": 1}).script("main")


def test_loader_refuses_a_placeholder_not_written_as_one(tmp_path: Path) -> None:
    root = tree(tmp_path, {"main.lua": "return '${not-a-name}'\n"})
    with pytest.raises(ScriptAssemblyError, match="is not"):
        ScriptLoader(root, {}).script("main")


def test_loader_refuses_a_value_that_would_break_out_of_a_lua_string(tmp_path: Path) -> None:
    with pytest.raises(ScriptAssemblyError, match="would not fit"):
        ScriptLoader(tmp_path, {"PREFIX": "a' .. redis.call('FLUSHALL') .. '"})


def test_every_script_file_is_assembled_whole() -> None:
    files = sorted(path.stem for path in LUA_DIR.glob("*.lua"))
    assert sorted(lua.SCRIPTS) == files
    for name, script in lua.SCRIPTS.items():
        assert "${" not in script, name
        assert "@include" not in script, name
        assert re.match(r"-- \S", script), f"{name}.lua opens without its header"
        assert all(word in script.split("\n\n")[0] for word in ("KEYS", "ARGV", "Replies")), name


def test_every_include_is_used_by_some_script() -> None:
    used = {
        name
        for script in LUA_DIR.glob("*.lua")
        for name in re.findall(r'@include "(\w+)"', script.read_text())
    }
    used |= {
        name
        for include in (LUA_DIR / "includes").glob("*.lua")
        for name in re.findall(r'@include "(\w+)"', include.read_text())
    }
    assert {path.stem for path in (LUA_DIR / "includes").glob("*.lua")} == used


def test_no_two_scripts_or_includes_share_a_name() -> None:
    scripts = {path.stem for path in LUA_DIR.glob("*.lua")}
    includes = {path.stem for path in (LUA_DIR / "includes").glob("*.lua")}
    assert not scripts & includes


def test_the_lua_files_are_package_data() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["jobs.engine.lua"]
    for path in LUA_DIR.rglob("*.lua"):
        relative = path.relative_to(LUA_DIR).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_no_python_module_holds_lua() -> None:
    python = [*ROOT.glob("jobs/**/*.py"), *ROOT.glob("service/**/*.py"), *ROOT.glob("bench/**/*.py")]
    holding = [str(path.relative_to(ROOT)) for path in python if "redis.call(" in path.read_text()]
    assert holding == []


def test_dump_writes_each_assembled_script_and_the_library_for_luacheck(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump(["--dump", str(tmp_path / "out")])
    written = {path.stem: path.read_text() for path in (tmp_path / "out").glob("*.lua")}
    library = written.pop(lua.HOT_PATH.name)
    assert written == dict(lua.SCRIPTS)
    assert f"#!lua name={lua.HOT_PATH.name}\n{library}" == lua.HOT_PATH.text  # less Redis's first line
    assert (
        f"{len(lua.SCRIPTS)} scripts and the {lua.HOT_PATH.name} library written" in capsys.readouterr().out
    )


def test_a_library_defines_each_include_once_and_each_script_as_a_function(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "one.lua": '-- one\n--- @include "a"\nreturn a(KEYS[1])\n',
            "two.lua": '-- two: no KEYS\n--- @include "a"\n--- @include "b"\nreturn b(ARGV[1])\n',
            "includes/a.lua": '--- @include "base"\nlocal function a(x) return base .. x end\n',
            "includes/b.lua": "local function b(x) return x end\n",
            "includes/base.lua": "local base = '${ONE}'\n",
        },
    )
    library = ScriptLoader(root, {"ONE": 1}).library("test", ["one", "two"])
    digest = library.name.removeprefix("test_")
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert library.functions == {"one": f"test_one_{digest}", "two": f"test_two_{digest}"}
    assert library.text == (
        f"#!lua name=test_{digest}\n\n"
        "local base = '1'\n\n"
        "local function a(x) return base .. x end\n\n"
        "local function b(x) return x end\n\n"
        f"redis.register_function('test_one_{digest}', function(KEYS, _)\n-- one\nreturn a(KEYS[1])\nend)\n\n"
        f"redis.register_function('test_two_{digest}', function(_, ARGV)\n"
        "-- two: no KEYS\nreturn b(ARGV[1])\nend)\n"
    )


def test_a_changed_script_makes_a_library_of_another_name(tmp_path: Path) -> None:
    """Two versions sharing a server during a rolling deploy each call their own functions."""
    root = tree(tmp_path, {"one.lua": "return 1\n"})
    before = ScriptLoader(root, {}).library("test", ["one"])
    (root / "one.lua").write_text("return 2\n")
    after = ScriptLoader(root, {}).library("test", ["one"])
    assert before.name != after.name
    assert before.functions["one"] != after.functions["one"]


async def test_the_hot_path_library_answers_as_its_scripts_do(redis: ArqRedis) -> None:
    """Each function runs its script's own lines: a claim of an empty queue, once by EVAL of the script
    and once by FCALL of the library's function, answers alike."""
    await redis.function_load(lua.HOT_PATH.text, replace=True)
    listed = await redis.function_list(library=lua.HOT_PATH.name)
    names = {function[1].decode() for entry in listed for function in _functions(entry)}
    assert names == set(lua.HOT_PATH.functions.values())
    args = [10_000, 5, "{}", "", "default", 1, 0]
    by_script = await redis.eval(lua.SCRIPTS["claim"], 0, *args)
    by_function = await redis.fcall(lua.HOT_PATH.functions["claim"], 0, *args)
    assert by_function == by_script


def _functions(entry: list[object]) -> list[list[object]]:
    """The ``functions`` field of one library in ``FUNCTION LIST``'s flat reply."""
    fields = dict(zip(entry[::2], entry[1::2], strict=True))
    return typing.cast(list[list[object]], fields[b"functions"])
