"""What Mecha installs: uvicorn without the extras it does not use (issue 19, item 9)."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return {Requirement(text).name: Requirement(text) for text in project["dependencies"]}


def test_uvicorn_comes_without_its_standard_extras() -> None:
    """watchfiles (auto-reload), websockets and python-dotenv are never used by serve."""
    found = requirements()
    assert found["uvicorn"].extras == set()
    for unused in ("watchfiles", "websockets", "python-dotenv"):
        assert unused not in found


def test_the_two_extras_serve_uses_are_required_and_installed() -> None:
    found = requirements()
    assert "httptools" in found  # server/header_limit.py builds on its parser
    assert found["uvloop"].marker is not None  # CPython off Windows only
    assert importlib.util.find_spec("httptools") is not None
    assert importlib.util.find_spec("uvloop") is not None
