"""The installed ``mecha`` console script, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES

MECHA = Path(sys.executable).parent / "mecha"


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env["HOME"] = str(home)
    return subprocess.run(
        [str(MECHA), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_console_script_is_installed() -> None:
    """`pip install` put `mecha` beside the interpreter."""
    assert MECHA.is_file(), f"{MECHA} missing: install the package (pip install -e .)"


def test_add_ls_remove_round_trip(tmp_path: Path) -> None:
    """A user's first session: add the examples folder, list, remove one."""
    env_home = tmp_path
    added = _run("worker", "add", str(EXAMPLES / "local-ollama.yml"), home=env_home)
    assert added.returncode == 0, added.stderr
    assert added.stdout == "added local-ollama (adapter)\n"
    listing = _run("worker", "ls", home=env_home)
    assert listing.stdout.splitlines()[1].split()[:3] == ["local-ollama", "adapter", "offline"]
    assert (
        _run("worker", "remove", "local-ollama", home=env_home).stdout == "removed local-ollama\n"
    )


def test_bad_file_exits_nonzero_with_a_clean_message(tmp_path: Path) -> None:
    """A broken worker file: exit 1, file:line:col on stderr, no traceback."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: w\ndocker:\n  image: i\n  lifecycle: forever\n")
    result = _run("worker", "add", str(bad), home=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:4:14: docker.lifecycle must be" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    """`mecha --help` shows every command group."""
    out = _run("--help", home=tmp_path).stdout
    for command in ("worker", "config", "doctor", "version"):
        assert command in out
