"""Real Chromium for tests, through selenium: Debian's ``chromium`` and ``chromium-driver``
(``apt-get install chromium chromium-driver``), never a downloaded browser or driver.

``chromium()`` starts the system browser headless with the system driver (its path is
given to selenium, so Selenium Manager never runs), at a set window size, with the
browser's console log kept (``console(driver)``) and every Content-Security-Policy
violation of every page recorded (``csp_violations(driver)``). It raises ``BrowserMissing``,
saying what to install, when the browser or the driver is not there::

    with chromium() as driver:
        driver.get(url)
        screenshot(driver, "events", folder=tmp_path)
        assert not csp_violations(driver)

``screenshot`` writes ``<name>.png`` to ``$MECHA_SCREENSHOTS`` when it is set, else to
``folder``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver"
SCREENSHOTS_ENV = "MECHA_SCREENSHOTS"
#: a laptop's screen; a phone is ``(390, 844)``
WINDOW = (1280, 900)

#: runs in every page before its own scripts (a CDP script, so the page's CSP allows it):
#: keeps the page's CSP violations where ``csp_violations`` reads them
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(
    e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " +
    e.sourceFile + ":" + e.lineNumber);
});
"""


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed, or would not start."""


def chromium(
    *, window: tuple[int, int] = WINDOW, browser: str = CHROMIUM, driver: str = CHROMEDRIVER
) -> contextlib.AbstractContextManager[webdriver.Chrome]:
    """Headless Chromium (the system's) driven by the system chromedriver; closed on exit."""
    return _chromium(window=window, browser=browser, driver=driver)


@contextlib.contextmanager
def _chromium(*, window: tuple[int, int], browser: str, driver: str) -> Iterator[webdriver.Chrome]:
    for path, package in ((browser, "chromium"), (driver, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise BrowserMissing(f"{path} is missing (Debian's {package}): {INSTALL}")
    profile = tempfile.mkdtemp(prefix="mecha-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new", f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}",
        "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
        "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-default-apps", "--lang=en-US",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        started = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        first = (exc.msg or str(exc)).strip().splitlines()[0]
        raise BrowserMissing(f"Chromium would not start through {driver}: {first}") from None
    try:
        started.set_window_size(*window)
        started.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_VIOLATIONS}
        )
        yield started
    finally:
        started.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The browser console's entries since the last call (``level``, ``message``…)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def csp_violations(driver: webdriver.Chrome) -> list[str]:
    """The Content-Security-Policy violations of the page shown now."""
    found = driver.execute_script("return window.__cspViolations || [];")
    return [str(item) for item in found]


def screenshot(driver: webdriver.Chrome, name: str, *, folder: Path | None = None) -> Path:
    """The page as ``<name>.png`` in ``$MECHA_SCREENSHOTS`` (else ``folder``); its path."""
    chosen = os.environ.get(SCREENSHOTS_ENV) or folder
    if chosen is None:
        raise ValueError(f"set {SCREENSHOTS_ENV} or pass folder= to save screenshot {name!r}")
    target = Path(chosen)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    if not driver.save_screenshot(str(path)):
        raise OSError(f"Chromium could not save the screenshot {path}")
    return path
