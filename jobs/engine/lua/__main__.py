"""``python -m jobs.engine.lua --dump DIR``: write each assembled script to ``DIR/<name>.lua``, as Redis
runs it, and the function library to ``DIR/<library name>.lua``, for luacheck (``.ci/run``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.engine.lua import HOT_PATH, SCRIPTS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.engine.lua", description=__doc__)
    parser.add_argument("--dump", metavar="DIR", type=Path, required=True, help="where to write the scripts")
    directory: Path = parser.parse_args(argv).dump
    directory.mkdir(parents=True, exist_ok=True)
    for name, script in SCRIPTS.items():
        (directory / f"{name}.lua").write_text(script, encoding="utf-8")
    # the first line, ``#!lua name=...``, is Redis's, not Lua's
    library = HOT_PATH.text.split("\n", 1)[1]
    (directory / f"{HOT_PATH.name}.lua").write_text(library, encoding="utf-8")
    print(f"{len(SCRIPTS)} scripts and the {HOT_PATH.name} library written to {directory}")


if __name__ == "__main__":
    main()
