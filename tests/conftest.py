"""Shared fixtures: every test runs with its own HOME and Mecha folder under tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

#: real model servers (llama.cpp with SmolLM2, an Ollama-protocol proxy), one per session;
#: worker images and a model server worker containers can reach
pytest_plugins = ["tests.llm_servers", "tests.worker_images"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "workers"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME for the test; MECHA_HOME and MECHA_DB_PATH unset."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("MECHA_HOME", raising=False)
    monkeypatch.delenv("MECHA_DB_PATH", raising=False)
    monkeypatch.delenv("MECHA_DEBUG", raising=False)
    return folder


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write text to tmp_path/NAME (folders made as needed) and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
