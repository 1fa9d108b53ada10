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

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable

#: an include line, and the form its rest must have: ``--- @include "name"``
INCLUDE = re.compile(r"^--- @include\b(.*)$\n?", re.MULTILINE)
INCLUDE_NAME = re.compile(r'^ "([a-z0-9_]+)"[ \t]*$')
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
BLANK_LINES = re.compile(r"\n{3,}")
LINE_COMMENT = re.compile(r"--[^\n]*")
INCLUDES_DIR = "includes"
SUFFIX = ".lua"
#: what a placeholder's value may hold: it is written inside a single-quoted Lua string, or as a number
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_:.\-]*$")


class ScriptAssemblyError(ValueError):
    """A script that cannot be assembled: a missing include, an include cycle, an unknown placeholder."""


@dataclass(frozen=True)
class FunctionLibrary:
    """Scripts as one Redis function library (``FUNCTION LOAD``, Redis 7+): the helpers they include are
    defined once, when the library loads, where a script run by ``EVALSHA`` defines every helper again
    at each call. Its name and its functions' names end in a digest of its text, so that two versions
    of jobsvc sharing a server (a rolling deploy) each call their own."""

    name: str
    #: the library's source, as ``FUNCTION LOAD`` takes it
    text: str
    #: script name -> its function's name
    functions: Mapping[str, str]


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

    def library(self, prefix: str, names: Sequence[str]) -> FunctionLibrary:
        """The scripts ``names`` as one function library: every include they need once, at the top, then
        each script's own lines as the body of a function taking ``KEYS`` and ``ARGV``, as it would run
        by ``EVALSHA``."""
        included: set[str] = set()
        helpers: list[str] = []
        bodies: dict[str, str] = {}
        for name in names:
            path = name + SUFFIX
            source = self._fill(path, self._read(path))
            for rest in INCLUDE.findall(source):
                wanted = INCLUDE_NAME.match(rest)
                if wanted is None:
                    raise ScriptAssemblyError(f'{path}: an include reads --- @include "name", not {rest}')
                include = wanted.group(1)
                if include not in included:
                    include_path = f"{INCLUDES_DIR}/{include}{SUFFIX}"
                    helpers.append(
                        self._expand(include_path, included, (include,), needed_by=path).strip("\n")
                    )
                    included.add(include)
            bodies[name] = BLANK_LINES.sub("\n\n", INCLUDE.sub("", source)).strip("\n")
        digest = hashlib.sha1("\n".join([*helpers, *bodies.values()]).encode()).hexdigest()[:12]
        functions = {name: f"{prefix}_{name}_{digest}" for name in names}
        registered = [
            f"redis.register_function('{functions[name]}', function({_parameters(body)})\n{body}\nend)"
            for name, body in bodies.items()
        ]
        text = "\n\n".join([f"#!lua name={prefix}_{digest}", *helpers, *registered]) + "\n"
        return FunctionLibrary(f"{prefix}_{digest}", text, functions)

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


def _parameters(body: str) -> str:
    """A function's parameters as its script's body uses them: ``KEYS`` and ``ARGV``, ``_`` for unused."""
    code = LINE_COMMENT.sub("", body)
    return ", ".join(name if re.search(rf"\b{name}\b", code) else "_" for name in ("KEYS", "ARGV"))
