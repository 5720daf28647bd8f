"""Chromium for tests (``mecha.testing.browser``), missing() when it is not installed:
skipped, or failed under CI=true (.ci/run installs Debian's chromium and chromium-driver).

Tests take the ``browser`` fixture (a pytest plugin of tests/conftest.py: a fresh
headless Chromium per test) or, for another scope, ``open_chromium()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from selenium import webdriver

from mecha.testing.browser import WINDOW, BrowserMissing, chromium
from tests.components import missing


@contextlib.contextmanager
def open_chromium(*, window: tuple[int, int] = WINDOW) -> Iterator[webdriver.Chrome]:
    """``chromium()``, or the test is missing() with what to install."""
    try:
        started = chromium(window=window)
        driver = started.__enter__()
    except BrowserMissing as exc:
        missing(str(exc))
    try:
        yield driver
    finally:
        started.__exit__(None, None, None)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium for one test (see ``mecha.testing.browser``)."""
    with open_chromium() as driver:
        yield driver
