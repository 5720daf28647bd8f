"""The dashboard in real Chromium (Debian's, through selenium and the system chromedriver)
against a real `mecha serve`: live rows, clicking through to the policy verdict and the
dry-run write, retry and cancel on the timeline, the login and CSRF, hostile event text.
Every page is saved as a screenshot (``$MECHA_SCREENSHOTS``, else the test's folder); the
ones in docs/dashboard.md come from ``MECHA_SCREENSHOTS=docs/img/dashboard``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mecha.testing.browser import csp_violations, screenshot
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.browsers import open_chromium
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.serving import make_home, post_github, pr_payload
from tests.e2e.writing import BASE, FAST_WRITES, GITHUB_TOKEN, HEAD, writes_settled

KEY = "browser-test-key-0123456789abcdef"
#: every wait's deadline (a busy machine is slow, never this slow)
DEADLINE = 60
POLICY = "policy:\n  comment: {allow: true}\n  labels: {allow: true, allowed: [bug]}\n"
RESULT = {
    "output": "Reviewed: the change is small and safe.",
    "comment": {"body": "Looks fine. One nit: name the constant."},
    "labels": {"add": ["bug", "security"]},
}


def titled(number: int, title: str) -> bytes:
    payload = json.loads(pr_payload(number=number))
    payload["pull_request"]["title"] = title
    return json.dumps(payload).encode()


def waiting(driver: WebDriver) -> WebDriverWait[WebDriver]:
    """A wait that looks again when a live refresh replaced what it was reading."""
    return WebDriverWait(
        driver, DEADLINE, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )


def wait_for(driver: WebDriver, css: str) -> None:
    waiting(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def wait_text(driver: WebDriver, css: str, text: str) -> None:
    waiting(driver).until(lambda d: text in text_of(d, css))


def text_of(driver: WebDriver, css: str) -> str:
    """The text of every element ``css`` selects (read again if a refresh replaced one)."""
    for _ in range(50):
        try:
            return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept changing under the test")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """An open loopback serve: "reviewer" answers at once (dry-run writes: no token),
    "triage" is offline (its tasks wait)."""
    home = make_home(tmp_path_factory.mktemp("open"))
    with InstantWorker() as worker:
        worker.set(result=RESULT)
        endpoint_worker(home, "reviewer", worker.url, extra=POLICY)
        endpoint_worker(home, "triage", "http://127.0.0.1:9", online=False)
        serve = ServeProcess(home)
        try:
            for number in (11, 12, 13):
                assert post_github(serve.url, titled(number, f"Tidy module {number}")).is_success
            yield serve
        finally:
            serve.stop()


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    with open_chromium() as started:
        yield started


def test_a_new_event_appears_without_a_reload(
    served: ServeProcess, driver: WebDriver, shots: Path
) -> None:
    driver.get(served.url + "/ui/events")
    wait_for(driver, "#events tbody tr[id^=event-]")
    driver.execute_script("window.__sameDocument = 'yes';")
    wait_for(driver, "#live-state.on")  # the stream is open
    sent = post_github(served.url, titled(21, "Live: add retries to the fetcher"))
    new_id = sent.json()["id"]
    wait_for(driver, f"#event-{new_id}")
    assert driver.execute_script("return window.__sameDocument;") == "yes"  # no reload
    assert "Live: add retries to the fetcher" in text_of(driver, f"#event-{new_id}")
    wait_text(driver, f"#event-{new_id}", "reviewer: completed")
    screenshot(driver, "events", folder=shots)
    assert csp_violations(driver) == []


def test_click_through_to_the_policy_verdict_and_the_dry_run_write(
    served: ServeProcess, driver: WebDriver, shots: Path
) -> None:
    driver.get(served.url + "/ui/events?q=Tidy+module+12")
    wait_for(driver, "#events tbody tr[id^=event-]")
    click(driver, "octo/app#12", By.LINK_TEXT)
    wait_for(driver, "#matches")
    screenshot(driver, "event", folder=shots)
    wait_text(driver, "#matches", "reviewer")
    click(driver, "//table[@id='matches']//tr[td[1][normalize-space()='reviewer']]//a", By.XPATH)
    wait_for(driver, "#policy")
    wait_text(driver, "#policy", "allowed")
    policy = text_of(driver, "#policy")
    assert "allowed" in policy and 'label add "bug"' in policy
    assert "denied" in policy and "security" in policy
    writes = text_of(driver, "main table")
    assert "dry-run" in writes and "would POST /repos/octo/app/issues/12/comments" in writes
    screenshot(driver, "task", folder=shots)
    assert csp_violations(driver) == []


def _open_triage_task(served: ServeProcess, driver: WebDriver) -> str:
    shown = httpx.get(served.url + "/tasks", params={"worker": "triage"}).json()
    task = shown[-1]["id"]
    driver.get(f"{served.url}/ui/tasks/{task}")
    wait_for(driver, "#timeline")
    return str(task)


def href_of(driver: WebDriver, text: str) -> str:
    """The address of the link reading ``text`` (found again if a live refresh replaced it)."""
    found: str = waiting(driver).until(
        lambda d: d.find_element(By.LINK_TEXT, text).get_attribute("href") or False
    )
    return found


def click(driver: WebDriver, css: str, by: str = By.CSS_SELECTOR) -> None:
    """Click ``css`` (found again if a live refresh replaced it first)."""

    def clicked(found: WebDriver) -> bool:
        found.find_element(by, css).click()
        return True

    waiting(driver).until(clicked)


def _press(driver: WebDriver, action: str, shots: Path | None = None) -> None:
    click(driver, f"button[data-action={action}]")
    wait_for(driver, "#confirm")
    if shots is not None:
        screenshot(driver, "confirm", folder=shots)
    driver.find_element(By.ID, "confirm").click()


def test_cancel_and_retry_show_on_the_timeline(
    served: ServeProcess, driver: WebDriver, shots: Path
) -> None:
    task = _open_triage_task(served, driver)
    assert "pending" in text_of(driver, "h1")
    _press(driver, "task-cancel", shots)
    wait_text(driver, ".notice", f"Task {task[:12]} is cancelled.")
    wait_text(driver, "#timeline", "cancelled")
    assert "by hand: dashboard user (dashboard, 127.0.0.1)" in text_of(driver, "#timeline")
    assert "cancelled" in text_of(driver, "h1")
    _press(driver, "task-retry")
    wait_text(driver, ".notice", "is pending again")
    steps = text_of(driver, "#timeline li")
    assert steps.index("cancelled") < steps.index("requeued")
    assert steps.count("by hand: dashboard user (dashboard, 127.0.0.1)") == 2
    state = httpx.get(f"{served.url}/task/{task}").json()
    assert state["state"] == "pending" and state["attempts"] == 0


def test_event_text_is_shown_as_text(served: ServeProcess, driver: WebDriver) -> None:
    hostile = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    sent = post_github(served.url, titled(31, hostile))
    event = sent.json()["id"]
    for path in ("/ui/events", f"/ui/events/{event}"):
        driver.get(served.url + path)
        wait_text(driver, "main", "<script>window.__xss = 1</script>")
        assert driver.execute_script("return window.__xss === undefined;") is True
        assert not driver.find_elements(By.CSS_SELECTOR, "main script, main img")


def test_the_other_pages(served: ServeProcess, driver: WebDriver, shots: Path) -> None:
    for path, marker, name in (
        ("/ui/tasks", "#tasks", "tasks"), ("/ui/workers", "#workers", "workers"),
        ("/ui/workers/reviewer", "#timeline, .timeline", "worker"),
        ("/ui/writes", "#writes", "writes"), ("/ui/system", "#nodes", "system"),
    ):  # fmt: skip
        driver.get(served.url + path)
        wait_for(driver, marker)
        screenshot(driver, name, folder=shots)
        assert csp_violations(driver) == [], path
    driver.get(served.url + "/ui/events")
    wait_for(driver, "#theme-toggle")
    driver.find_element(By.ID, "theme-toggle").click()
    assert driver.execute_script("return document.documentElement.dataset.theme;") in (
        "dark",
        "light",
    )
    if driver.execute_script("return document.documentElement.dataset.theme;") != "dark":
        driver.find_element(By.ID, "theme-toggle").click()
    screenshot(driver, "events-dark", folder=shots)


def test_on_a_phone(served: ServeProcess, shots: Path) -> None:
    with open_chromium(window=(390, 844)) as phone:
        phone.get(served.url + "/ui/events")
        wait_for(phone, "#events")
        width = phone.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 400  # nothing wider than the screen but the table's own scroller
        screenshot(phone, "events-phone", folder=shots)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = make_home(tmp_path_factory.mktemp("keyed"))
    endpoint_worker(home, "triage", "http://127.0.0.1:9", online=False)
    serve = ServeProcess(home, args=["--api-key", KEY])
    try:
        assert post_github(serve.url, titled(41, "Needs a login")).is_success
        yield serve
    finally:
        serve.stop()


def test_with_a_key_the_pages_need_the_login_and_actions_their_token(
    keyed: ServeProcess, driver: WebDriver, shots: Path
) -> None:
    driver.get(keyed.url + "/ui/tasks")
    wait_for(driver, "#key")
    assert "/ui/login" in driver.current_url
    screenshot(driver, "login", folder=shots)
    driver.find_element(By.ID, "key").send_keys("not the key")
    driver.find_element(By.ID, "sign-in").click()
    wait_text(driver, ".error", "not this server's API key")
    driver.find_element(By.ID, "key").send_keys(KEY)
    driver.find_element(By.ID, "name").send_keys("alice")
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, "#tasks")
    assert driver.current_url.endswith("/ui/tasks")
    assert "alice" in text_of(driver, ".session")
    cookie = driver.get_cookie("mecha_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert driver.execute_script("return document.cookie;") == ""  # HttpOnly: not for scripts
    task = httpx.get(keyed.url + "/tasks", headers={"X-API-Key": KEY}).json()[0]["id"]
    driver.get(f"{keyed.url}/ui/tasks/{task}")
    click(driver, "button[data-action=task-cancel]")
    wait_for(driver, "#confirm")
    driver.execute_script(
        "document.querySelector('form[action=\"/ui/act\"] input[name=csrf]').remove();"
    )
    driver.find_element(By.ID, "confirm").click()
    wait_text(driver, "#message", "no valid CSRF token")
    shown = httpx.get(f"{keyed.url}/task/{task}", headers={"X-API-Key": KEY}).json()
    assert shown["state"] == "pending"
    assert not [s for s in shown["timeline"] if s["step"] == "cancelled"]
    driver.get(f"{keyed.url}/ui/tasks/{task}")
    _press(driver, "task-cancel")
    wait_text(driver, ".notice", "is cancelled")
    assert "by hand: alice (dashboard, 127.0.0.1)" in text_of(driver, "#timeline")


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    """A serve writing to the GitHub emulator: the comment is made, the labels refused once
    (a failed write, to retry). Yields the serve and the event's id."""
    root = tmp_path_factory.mktemp("forged")
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        home = make_home(root, config=FAST_WRITES, github_token=GITHUB_TOKEN)
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        forge.fail("/github/repos/octo/app/issues/7/labels$", 422, method="POST", times=1)
        worker.set(result=RESULT)
        endpoint_worker(home, "reviewer", worker.url, extra=POLICY)
        serve = ServeProcess(home, env={"GITHUB_API_URL": forge.github_url})
        try:
            event = post_github(serve.url, pr_payload(number=7)).json()["id"]
            shown = writes_settled(serve.url, event, timeout=DEADLINE)
            assert sorted(w["state"] for w in shown["writes"]) == ["done", "failed"]
            yield serve, event
        finally:
            serve.stop()


def test_a_failed_write_retried_from_its_page(
    forged: tuple[ServeProcess, str], driver: WebDriver, shots: Path
) -> None:
    serve, event = forged
    driver.get(f"{serve.url}/ui/events/{event}")
    wait_for(driver, "#matches")
    link = href_of(driver, "open ↗")
    assert "/octo/app/pull/7#issuecomment-" in link  # the comment on the forge
    driver.get(serve.url + "/ui/writes")
    wait_text(driver, "#writes", "labels +bug")
    screenshot(driver, "writes", folder=shots)
    _press(driver, "write-retry")
    wait_text(driver, ".notice", "will be tried again")

    # write changes are not in the live stream (events and tasks are): reload until made
    def made(found: WebDriver) -> bool:
        found.refresh()
        return "No failed or dead-lettered writes." in text_of(found, "#writes")

    waiting(driver).until(made)
    shown = writes_settled(serve.url, event, timeout=DEADLINE)
    assert sorted(w["state"] for w in shown["writes"]) == ["done", "done"]
    retried = [s["detail"] for s in shown["timeline"] if s["step"] == "write retry"]
    assert retried == ["labels: tried again by hand: dashboard user (dashboard, 127.0.0.1)"]


def test_replay_and_worker_stop_start(forged: tuple[ServeProcess, str], driver: WebDriver) -> None:
    serve, event = forged
    driver.get(f"{serve.url}/ui/events/{event}")
    wait_for(driver, "#matches")
    _press(driver, "event-replay")
    wait_text(driver, ".notice", "was replayed as a new event")
    assert event not in driver.current_url
    wait_text(driver, "main", f"replay of {event} by dashboard user")
    assert event in text_of(driver, "table.attrs")  # replay_of
    driver.get(serve.url + "/ui/workers")
    wait_for(driver, "#worker-reviewer")
    _press(driver, "worker-stop")
    wait_text(driver, ".notice", "Worker reviewer is stopped.")
    wait_text(driver, "#worker-reviewer", "offline")
    _press(driver, "worker-start")
    wait_text(driver, ".notice", "Worker reviewer is starting.")
    wait_text(driver, "#worker-reviewer", "online")
