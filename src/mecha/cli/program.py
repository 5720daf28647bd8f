"""How the user runs this `mecha`: the command a hint should suggest.

``mecha`` when the ``mecha`` found on ``PATH`` is the one running; else the running
script's path (``.venv/bin/mecha``, relative to the current folder when that is shorter),
or ``<python> -m mecha`` when it runs as a module and no ``mecha`` on ``PATH`` belongs
to the same Python.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path


def program(
    environ: Mapping[str, str] | None = None,
    *,
    argv0: str | None = None,
    executable: str | None = None,
    cwd: Path | None = None,
) -> str:
    """The command that runs this `mecha` from ``cwd`` (a shell word, quoted if needed)."""
    env = os.environ if environ is None else environ
    script = Path(sys.argv[0] if argv0 is None else argv0)
    python = Path(sys.executable if executable is None else executable)
    here = Path.cwd() if cwd is None else cwd
    found = shutil.which("mecha", path=env.get("PATH", ""))
    if script.name == "__main__.py":  # python -m mecha
        if found and _same(Path(found).parent, python.parent, here):
            return "mecha"
        return f"{_shown(python, here)} -m mecha"
    if found and _same(Path(found), script, here):
        return "mecha"
    return _shown(script, here)


def _same(a: Path, b: Path, cwd: Path) -> bool:
    """The same file or folder (a venv's symlinked python counts as its own path)."""
    first, second = _absolute(a, cwd), _absolute(b, cwd)
    if first == second:
        return True
    try:
        return first.resolve() == second.resolve() and first.name == second.name
    except OSError:
        return False


def _absolute(path: Path, cwd: Path) -> Path:
    return Path(os.path.normpath(path if path.is_absolute() else cwd / path))


def _shown(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when that is shorter, else absolute; shell-quoted."""
    absolute = _absolute(path, cwd)
    relative = os.path.relpath(absolute, cwd)
    if not relative.startswith(os.pardir + os.sep) and "/" not in relative:
        relative = "./" + relative  # a bare name would be looked up on PATH
    chosen = relative if len(relative) < len(str(absolute)) else str(absolute)
    return shlex.quote(chosen)
