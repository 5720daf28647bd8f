"""ruff, mypy --strict and the import-layer contracts, as part of the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.quality


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_check_is_clean() -> None:
    """No lint findings."""
    result = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    """Code is formatted."""
    result = _run(str(BIN / "ruff"), "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    """Types check under --strict."""
    result = _run(str(BIN / "mypy"), "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    """Imports run downward only; the core imports no I/O library."""
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
