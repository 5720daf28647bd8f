"""What Mecha installs: uvicorn without the extras it does not use, and test tools only in
the dev extra (issue 19, item 9)."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def requirements(extra: str = "") -> dict[str, Requirement]:
    """The core dependencies, or those of ``extra``, by name."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    texts = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {Requirement(text).name: Requirement(text) for text in texts}


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


def test_the_ollama_protocol_server_is_a_test_tool_with_a_ceiling() -> None:
    """ollama-proxy-plus (fastapi, openai) never reaches a user's install, and a new
    release cannot slip into CI unseen."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    for extra in project["optional-dependencies"]:
        if extra != "dev":
            assert "ollama-proxy-plus" not in requirements(extra)
    assert "ollama-proxy-plus" not in requirements()
    pinned = requirements("dev")["ollama-proxy-plus"].specifier
    assert "0.1.0" in pinned
    assert "0.2.0" not in pinned
