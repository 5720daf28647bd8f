"""What the engine tests on real stores share: ``database``, each test once on a SQLite file
and once on a PostgreSQL database of its own (``pg_url``), opened as the Store conformance
suite opens them (``STORES``); ``home``, the user's home folder as the registry sees it."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mecha.engine.dispatcher import DispatchSettings
from tests.integration.store.stores import STORES, AnyStore
from tests.unit.engine.fakes import eventually
from tests.unit.engine.rig import FAST


class Database:
    """One test's database (a SQLite file, or a PostgreSQL database of its own) and the store
    open on it now."""

    def __init__(self, kind: str, where: Path | str) -> None:
        self.kind = kind
        self._where = where
        #: how often the engine asked the store for due tasks and due writes (its polls)
        self.reads: Counter[str] = Counter()
        self.store = self._open()

    def _open(self) -> AnyStore:
        store = STORES[self.kind].open(self._where)  # type: ignore[arg-type]
        for name in ("due_tasks", "due_writes"):  # counted, otherwise as they are
            setattr(store, name, self._counted(name, getattr(store, name)))
        return store

    def _counted(self, name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        def counted(**kwargs: Any) -> Any:
            self.reads[name] += 1
            return read(**kwargs)

        return counted

    async def polls(self, count: int = 3) -> None:
        """Let the dispatcher and write-back each read the store ``count`` more times."""
        seen = self.reads.copy()
        await eventually(
            lambda: all(
                self.reads[name] >= seen[name] + count for name in ("due_tasks", "due_writes")
            ),
            f"{count} more polls",
        )

    def restart(self) -> AnyStore:
        """The run stops (its store closed); the next one opens the database again."""
        self.store.close()
        self.store = self._open()
        return self.store

    def another(self) -> AnyStore:
        """A second store on the same database, as another node opens it (PostgreSQL only:
        a SQLite file is one serve's own)."""
        assert self.kind != "sqlite", "one serve owns a SQLite file"
        return STORES[self.kind].open(self._where)  # type: ignore[arg-type]

    def settings(self) -> DispatchSettings:
        """FAST, as serve sets it for this database: a SQLite file is one serve's own."""
        return dataclasses.replace(FAST, own_database=self.kind == "sqlite")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    kind = STORES[request.param]
    opened = Database(request.param, request.getfixturevalue("pg_url") if kind.server else tmp_path)
    yield opened
    opened.store.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
