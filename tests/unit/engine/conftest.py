"""The store every engine test runs on (one fixture, so it changes in one place)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mecha.store import Store
from mecha.store.sqlite.store import open_sqlite


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store (SQLite in tmp_path until the in-memory store lands)."""
    opened = open_sqlite(tmp_path / "m.db")
    yield opened
    opened.close()


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    """The user's home folder as the registry sees it (worker files' ``cwd`` checks)."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
