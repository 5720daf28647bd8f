"""mecha.testing.browser says what to install when Chromium or its driver is missing, and
never reaches for a download."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecha.testing.browser import BrowserMissing, chromium


def test_a_missing_browser_names_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(BrowserMissing, match=r"chromium\): apt-get install chromium"):
        chromium(browser=str(tmp_path / "chromium")).__enter__()


def test_a_missing_driver_names_the_package_to_install(tmp_path: Path) -> None:
    driver = tmp_path / "chromedriver"
    driver.write_text("not a program")  # there, but not executable
    with pytest.raises(BrowserMissing, match=r"chromium-driver\): apt-get install"):
        chromium(browser="/bin/sh", driver=str(driver)).__enter__()
