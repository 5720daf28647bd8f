"""What the worker registry reports when it reloads: added, changed and removed workers,
by definition (a state change, or the same file added again, is no change). A real SQLite
store and real worker files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mecha.engine.registry import RegistryChange, WorkerRegistry
from mecha.store.sqlite.store import SqliteStore, open_sqlite
from mecha.worker.files import read_worker, to_record
from mecha.worker.kind import WorkerState

RULES = 'events:\n  - source: github\n    on: [push]\n    prompt: "hi"\n'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_sqlite(tmp_path / "mecha.db")
    yield opened
    opened.close()


def put(store: SqliteStore, tmp_path: Path, name: str, body: str, *, replace: bool = False) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(f"name: {name}\n{body}{RULES}", encoding="utf-8")
    parsed, _ = read_worker(path, environ={}, home=tmp_path)
    store.add_workers([to_record(parsed, source=path)], replace=replace)


def watched(store: SqliteStore, tmp_path: Path) -> tuple[WorkerRegistry, list[RegistryChange]]:
    registry = WorkerRegistry(store=store, environ={}, home=tmp_path)
    seen: list[RegistryChange] = []
    registry.refresh()  # the first load is no change
    registry.on_change = seen.append
    return registry, seen


def names(change: RegistryChange) -> tuple[list[str], list[str], list[str]]:
    return change.added, change.changed, change.removed


def test_each_reload_reports_what_it_added_changed_and_removed(
    store: SqliteStore, tmp_path: Path
) -> None:
    put(store, tmp_path, "a", "endpoint: http://127.0.0.1:1\n")
    put(store, tmp_path, "b", "endpoint: http://127.0.0.1:2\n")
    registry, seen = watched(store, tmp_path)
    assert seen == []

    put(store, tmp_path, "c", "endpoint: http://127.0.0.1:3\n")
    put(store, tmp_path, "a", "endpoint: http://127.0.0.1:9\n", replace=True)
    store.remove_worker("b", allowed_states=[WorkerState.OFFLINE])
    registry.refresh()

    [change] = seen
    assert names(change) == (["c"], ["a"], ["b"])
    assert change.before["a"].spec is not None and change.after["a"].spec is not None
    assert change.before["a"].spec.endpoint == "http://127.0.0.1:1"
    assert change.after["a"].spec.endpoint == "http://127.0.0.1:9"
    assert change.before["a"].fingerprint != change.after["a"].fingerprint


def test_a_state_change_or_the_same_definition_again_is_no_change(
    store: SqliteStore, tmp_path: Path
) -> None:
    put(store, tmp_path, "a", "endpoint: http://127.0.0.1:1\n")
    registry, seen = watched(store, tmp_path)
    store.set_worker_state("a", WorkerState.ONLINE)
    put(store, tmp_path, "a", "endpoint: http://127.0.0.1:1\n", replace=True)  # version moves
    registry.refresh()
    assert seen == []


def test_removed_and_added_again_is_a_change_even_with_the_same_file(
    store: SqliteStore, tmp_path: Path
) -> None:
    put(store, tmp_path, "a", "endpoint: http://127.0.0.1:1\n")
    registry, seen = watched(store, tmp_path)
    store.remove_worker("a", allowed_states=[WorkerState.OFFLINE])
    put(store, tmp_path, "a", "endpoint: http://127.0.0.1:1\n")
    registry.refresh()
    [change] = seen
    assert names(change) == ([], ["a"], [])  # a new registration: its state starts afresh
