"""Assembles the Lua scripts from their files: a script, the helpers it includes, the placeholders filled.

A script is a ``<name>.lua`` file; it pulls in shared helpers with lines of their own::

    --- @include "place"

naming ``includes/place.lua``. An include may include others. Each include is written once, before the
first file that needs it, where that file's first include line stood; a script therefore holds exactly
the helpers it uses. ``${NAME}`` anywhere stands for a value given to the loader (a key prefix, a
constant), so key names are spelled only in ``jobs.engine.keys``.

Every mistake is an error when the scripts are loaded, never a script that fails inside Redis: a missing
include, an include cycle, an unknown placeholder, a value that would not fit in a Lua string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources.abc import Traversable

#: an include line, and the form its rest must have: ``--- @include "name"``
INCLUDE = re.compile(r"^--- @include\b(.*)$\n?", re.MULTILINE)
INCLUDE_NAME = re.compile(r'^ "([a-z0-9_]+)"[ \t]*$')
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
BLANK_LINES = re.compile(r"\n{3,}")
INCLUDES_DIR = "includes"
SUFFIX = ".lua"
#: what a placeholder's value may hold: it is written inside a single-quoted Lua string, or as a number
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_:.\-]*$")


class ScriptAssemblyError(ValueError):
    """A script that cannot be assembled: a missing include, an include cycle, an unknown placeholder."""


class ScriptLoader:
    """Reads the ``.lua`` files under ``root`` (each once) and assembles scripts from them."""

    def __init__(self, root: Traversable, placeholders: Mapping[str, str | int]) -> None:
        for name, value in placeholders.items():
            if not isinstance(value, int) and not SAFE_VALUE.match(value):
                raise ScriptAssemblyError(f"placeholder {name} = {value!r} would not fit in a Lua string")
        self._root = root
        self._placeholders = {name: str(value) for name, value in placeholders.items()}
        self._sources: dict[str, str] = {}

    def names(self) -> list[str]:
        """The scripts under ``root``, by name (``claim`` for ``claim.lua``), sorted."""
        return sorted(
            entry.name.removesuffix(SUFFIX)
            for entry in self._root.iterdir()
            if entry.is_file() and entry.name.endswith(SUFFIX)
        )

    def script(self, name: str) -> str:
        """The script ``<name>.lua`` with its includes resolved and its placeholders filled."""
        return self._expand(name + SUFFIX, set(), ()).strip("\n") + "\n"

    def _expand(self, path: str, included: set[str], chain: tuple[str, ...], needed_by: str = "") -> str:
        """The file at ``path``, filled, with its first include line replaced by the includes not yet
        in ``included`` (each expanded the same way first) and its other include lines dropped."""
        source = self._fill(path, self._read(path, needed_by=needed_by))
        blocks: list[str] = []
        for rest in INCLUDE.findall(source):
            wanted = INCLUDE_NAME.match(rest)
            if wanted is None:
                raise ScriptAssemblyError(
                    f'{path}: an include reads --- @include "name", not --- @include{rest}'
                )
            name = wanted.group(1)
            if name in chain:
                raise ScriptAssemblyError(f"include cycle: {' -> '.join((*chain, name))}")
            if name not in included:
                include_path = f"{INCLUDES_DIR}/{name}{SUFFIX}"
                blocks.append(self._expand(include_path, included, (*chain, name), needed_by=path))
                included.add(name)
        placed = False

        def place_blocks(_: re.Match[str]) -> str:
            nonlocal placed
            if placed:
                return ""
            placed = True
            return "".join(block.strip("\n") + "\n\n" for block in blocks)

        return BLANK_LINES.sub("\n\n", INCLUDE.sub(place_blocks, source))

    def _fill(self, path: str, source: str) -> str:
        def value(found: re.Match[str]) -> str:
            if found.group(1) not in self._placeholders:
                raise ScriptAssemblyError(f"unknown placeholder {found.group(0)} in {path}")
            return self._placeholders[found.group(1)]

        filled = PLACEHOLDER.sub(value, source)
        if "${" in filled:
            raise ScriptAssemblyError(
                f"a placeholder in {path} is not ${{NAME}}: {filled[filled.index('${') :][:40]!r}"
            )
        return filled

    def _read(self, path: str, *, needed_by: str = "") -> str:
        """The text of the file at ``path`` (``/``-separated, under ``root``), read on first use only."""
        if path not in self._sources:
            entry = self._root.joinpath(*path.split("/"))
            if not entry.is_file():
                where = f" (included by {needed_by})" if needed_by else ""
                raise ScriptAssemblyError(f"no Lua file {path}{where}")
            self._sources[path] = entry.read_text(encoding="utf-8")
        return self._sources[path]
