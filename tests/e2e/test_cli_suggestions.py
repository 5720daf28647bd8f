"""An unknown command or option gets a "Did you mean …?" where a close or known name exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.console import run_mecha

CASES = [
    (("serve", "--port", "8080"), "Did you mean '--addr 127.0.0.1:8080'?"),
    (("serve", "--port=9000"), "Did you mean '--addr 127.0.0.1:9000'?"),
    (("serve", "--host", "0.0.0.0"), "Did you mean '--addr 0.0.0.0:21212'?"),
    (("event", "send", "x.json", "--port", "8080"), "Did you mean '--addr 127.0.0.1:8080'?"),
    (("wroker",), "No such command 'wroker'. Did you mean 'worker'?"),
    (("confg",), "Did you mean 'config'?"),
    (("worker", "lss"), "No such command 'lss'. Did you mean 'ls'?"),
    (("worker", "list"), "Did you mean 'ls'?"),
    (("worker", "rm", "x"), "Did you mean 'remove'?"),
    (("check",), "Did you mean 'doctor'?"),
    (("worker", "check", "f.yml"), "Did you mean 'validate'?"),
    (("serve", "--adr", "x"), "Did you mean '--addr'?"),  # click's own, kept
    (("--verbose", "worker", "ls"), "Set MECHA_LOG_LEVEL=DEBUG"),
]


@pytest.mark.parametrize(
    ("args", "expected"), CASES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_a_slip_gets_a_suggestion(home: Path, args: tuple[str, ...], expected: str) -> None:
    """Exit 2 (usage), the suggestion on the error line, no traceback."""
    done = run_mecha(home, *args)
    assert done.returncode == 2, done.stderr
    error = done.stderr.splitlines()[-1]
    assert error.startswith("Error: ") and expected in error, done.stderr


def test_verbose_is_not_taken_for_version(home: Path) -> None:
    """A name Mecha maps (--verbose → MECHA_LOG_LEVEL) beats click's close spelling."""
    assert "--version" not in run_mecha(home, "--verbose", "worker", "ls").stderr


def test_nothing_close_means_no_guess(home: Path) -> None:
    """A name far from every command gets the plain error, not a wild guess."""
    error = run_mecha(home, "xyzzy").stderr.splitlines()[-1]
    assert error == "Error: No such command 'xyzzy'."
