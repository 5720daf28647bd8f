"""The ``store`` fixture: each test of the suite once on every kind of store in ``STORES``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.store.stores import STORES, AnyStore


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened = STORES[request.param].open(tmp_path)
    yield opened
    opened.close()
