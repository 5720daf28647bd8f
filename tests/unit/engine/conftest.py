"""The store every engine test runs on (one fixture, so it changes in one place)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mecha.store import Store
from mecha.testing.memory_store import MemoryStore


@pytest.fixture
def store() -> Iterator[Store]:
    """A fresh, empty store in memory (it behaves as SqliteStore does where a caller can
    tell; tests/integration/store runs the same conformance tests on both)."""
    opened = MemoryStore()
    yield opened
    opened.close()


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    """The user's home folder as the registry sees it (worker files' ``cwd`` checks)."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
