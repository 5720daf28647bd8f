"""The ``store`` fixture: each test of the suite once on every kind of store in ``STORES``
(a store on a server gets an empty database of its own: ``pg_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.store.stores import STORES, AnyStore


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    kind = STORES[request.param]
    where = request.getfixturevalue("pg_url") if kind.server else tmp_path
    opened = kind.open(where)  # type: ignore[arg-type]
    yield opened
    opened.close()
