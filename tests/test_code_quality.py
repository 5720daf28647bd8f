"""ruff, mypy --strict and the import-layer contracts, as part of the test suite."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
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


def _contracts() -> list[dict[str, object]]:
    with (REPO / "pyproject.toml").open("rb") as file:
        contracts: list[dict[str, object]] = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    return contracts


#: one import per contract that the contract must refuse: (file in a copy of the package,
#: the line added to it, the contract's name)
BREAKAGES = [
    ("worker/kind.py", "from mecha.engine import pipeline", "Layers run downward only"),
    (
        "engine/histogram.py",
        "import mecha.runtimes.managed.docker",
        "The engine names no concrete adapter, only Protocols and shared values",
    ),
    (
        "cli/table.py",
        "import mecha.store.sqlite.store",
        "The CLI gets its store and Docker from mecha.app",
    ),
    ("diff/paths.py", "import socket", "The core does no I/O"),
    ("engine/polling.py", "import psycopg", "Only the PostgreSQL store talks to psycopg"),
    (
        "cli/demo.py",
        "import mecha.testing.instant_worker",
        "The installed program never needs mecha.testing (the wheel leaves it out)",
    ),
]


def test_every_contract_goes_red_when_broken(tmp_path: Path) -> None:
    """Each contract refuses the import it exists to refuse, in a copy of the package."""
    assert {name for _, _, name in BREAKAGES} == {c["name"] for c in _contracts()}
    shutil.copytree(REPO / "src" / "mecha", tmp_path / "src" / "mecha",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    clean = _lint(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for file, line, _ in BREAKAGES:
        target = tmp_path / "src" / "mecha" / file
        target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    for _, _, name in BREAKAGES:
        assert f"{name} BROKEN" in broken.stdout, broken.stdout


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_every_package_and_module_of_mecha_is_in_a_layer() -> None:
    """No module escapes the layers: each top-level module and package is named in one."""
    [layers] = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    assert isinstance(layers, list)
    named = {
        part.strip() for layer in layers for part in re.split(r"[|:]", str(layer)) if part.strip()
    }
    package = REPO / "src" / "mecha"
    present = {
        f"mecha.{path.stem}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path.is_dir() and (path / "__init__.py").is_file() and path.name != "demo")
    }
    assert present - named == set(), "add these to a layer in pyproject.toml"
    assert named - present == set(), "these layers name modules that do not exist"
