"""A real `mecha serve` answers as its /openapi.json says: every GET route and POST /task
(successes and refusals), the webhooks, each route's auth; and /docs renders the document
in real Chromium with no Content-Security-Policy violation and nothing from elsewhere."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mecha.forges.signing import github_headers
from mecha.server.routes import API_ROUTES, Auth
from mecha.testing.browser import console, csp_violations, screenshot
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.serving import GITHUB_SECRET, make_home, pr_payload
from tests.e2e.writing import FAST_WRITES
from tests.openapi_check import check_answer

KEY = "openapi-test-key-0123456789"
NEVER = "  - source: github\n    on: [push]\n    prompt: never asked here\n"
POLICY = "policy:\n  comment: {allow: true}\nbudget:\n  tasks_per_hour: 100\n"


@dataclass
class Server:
    """The server, a client with its key, its document, and what was checked."""

    url: str
    client: httpx.Client
    document: dict[str, Any]
    checked: set[tuple[str, str, int]] = field(default_factory=set)

    def check(self, method: str, path: str, answer: httpx.Response) -> httpx.Response:
        """``answer`` (to ``method path``, a path template) is as the document says."""
        check_answer(self.document, method, path, answer)
        self.checked.add((method, path, answer.status_code))
        return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = make_home(tmp_path_factory.mktemp("openapi"), config=FAST_WRITES)
    with InstantWorker() as worker:
        endpoint_worker(home, "reviewer", worker.url, extra=POLICY)
        endpoint_worker(home, "sleeper", "http://127.0.0.1:9", online=False, rules=NEVER)
        with (
            ServeProcess(home, args=("--api-key", KEY)) as serve,
            httpx.Client(base_url=serve.url, timeout=30, headers={"X-API-Key": KEY}) as client,
        ):
            document = httpx.get(f"{serve.url}/openapi.json", timeout=30).json()
            yield Server(serve.url, client, document)


def webhook(server: Server, body: bytes, *, event: str = "pull_request", **extra: str) -> Any:
    headers = github_headers(body, secret=GITHUB_SECRET, event=event,
                             delivery_id=extra.pop("delivery", str(uuid.uuid4())))  # fmt: skip
    answer = httpx.post(f"{server.url}/webhook/github", content=body,
                        headers={**headers, **extra}, timeout=30)  # fmt: skip
    return server.check("POST", "/webhook/{source}", answer)


def written(server: Server, event_id: str) -> dict[str, Any]:
    """The event once its task is final and its write is too."""
    deadline = time.monotonic() + 60
    while True:
        shown: dict[str, Any] = server.client.get(f"/event/{event_id}").json()
        tasks, writes = shown.get("tasks", []), shown.get("writes", [])
        done = tasks and all(t["state"] in ("completed", "failed") for t in tasks)
        if done and writes and all(w["state"] not in ("planned", "calling") for w in writes):
            return shown
        assert time.monotonic() < deadline, json.dumps(shown)[:2000]
        time.sleep(0.05)


def test_every_answer_is_as_the_document_says(server: Server) -> None:
    get, post, check = server.client.get, server.client.post, server.check
    # webhooks: stored, seen again, a ping, and refusals
    delivery = str(uuid.uuid4())
    stored = webhook(server, pr_payload(), delivery=delivery)
    assert stored.status_code == 202
    assert webhook(server, pr_payload(), delivery=delivery).json()["status"] == "duplicate"
    assert webhook(server, b'{"zen": "hi", "hook_id": 1}', event="ping").status_code == 200
    assert webhook(server, pr_payload(), **{"X-Hub-Signature-256": "sha256=00"}).status_code == 401
    assert webhook(server, b"not json").status_code == 400
    assert webhook(server, pr_payload(), **{"X-Padding": "p" * 70_000}).status_code == 431
    other = httpx.post(f"{server.url}/webhook/nowhere", content=b"{}", timeout=30)
    assert check("POST", "/webhook/{source}", other).status_code == 404
    # the event, fully: matches, a task, its timeline, a dry-run write
    shown = written(server, stored.json()["id"])
    assert shown["writes"][0]["state"] == "dry-run" and shown["matches"]
    assert check("GET", "/event/{event_id}", get(f"/event/{shown['id']}")).status_code == 200
    assert check("GET", "/event/{event_id}", get("/event/nope")).status_code == 404
    assert check("GET", "/events", get("/events")).json()[0]["id"] == shown["id"]
    assert check("GET", "/events", get("/events?state=completed&limit=5")).status_code == 200
    assert check("GET", "/events", get("/events?state=bogus")).status_code == 400
    task_id = shown["tasks"][0]["id"]
    assert check("GET", "/task/{task_id}", get(f"/task/{task_id}")).json()["writes"]
    assert check("GET", "/task/{task_id}", get("/task/zzzzzzzz")).status_code == 404
    assert check("GET", "/tasks", get("/tasks?worker=reviewer")).status_code == 200
    assert check("GET", "/tasks", get("/tasks?state=nope")).status_code == 400
    assert check("GET", "/tasks", get("/tasks?limit=many")).status_code == 400
    # tasks by hand: made, and every refusal
    made = check("POST", "/task", post("/task", json={"prompt": "Sum up", "worker": "reviewer"}))
    assert made.status_code == 202 and made.headers["location"] == f"/task/{made.json()['id']}"
    for body, status in (
        (b"", 400), (b'{"prompt": "x", "promt": 1}', 400), (b'{"prompt": 3}', 400),
        (b'{"prompt": "x", "worker": "ghost"}', 404),
        (b'{"prompt": "x", "worker": "sleeper"}', 409),
        (b'{"prompt": "' + b"x" * (1024 * 1024) + b'"}', 413),
    ):  # fmt: skip
        assert check("POST", "/task", post("/task", content=body)).status_code == status, body
    # the rest
    assert check("GET", "/workers", get("/workers")).status_code == 200
    lines = check("GET", "/budgets", get("/budgets")).json()
    assert {line["window"] for line in lines} == {"tokens_per_day", "tasks_per_hour"}
    assert check("GET", "/budgets", get("/budgets?worker=nobody")).status_code == 404
    assert "nodes" in check("GET", "/health", get("/health")).json()
    bare = httpx.get(f"{server.url}/health", timeout=30)  # without the key: no nodes
    assert "nodes" not in check("GET", "/health", bare).json()
    assert "mecha_tasks_sent_total" in check("GET", "/metrics", get("/metrics")).text
    assert check("GET", "/openapi.json", get("/openapi.json")).json() == server.document
    assert check("GET", "/docs", get("/docs")).status_code == 200
    # every GET route, and POST /task, answered its success as documented
    wanted = {(r.method, r.path) for r in API_ROUTES if r.method == "GET"} | {("POST", "/task")}
    succeeded = {(m, p) for m, p, status in server.checked if status < 300}
    assert wanted <= succeeded, wanted - succeeded


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_route_asks_for_the_key_exactly_when_the_document_says(
    server: Server, route: Any
) -> None:
    path = route.path.format(source="github", event_id="x", task_id="x", name="x")
    answer = httpx.request(route.method, f"{server.url}{path}", content=b"{}", timeout=30)
    if route.auth is Auth.KEY:
        assert answer.status_code == 401
        server.check(route.method, route.path, answer)
    else:
        assert answer.status_code != 401 or route.path == "/webhook/{source}"


def test_the_docs_page_renders_every_operation_in_chromium(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{server.url}/docs")
    wait = WebDriverWait(browser, 120)
    wait.until(lambda d: d.find_elements(By.ID, "operations-events-list_events"))
    shown = {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock")}
    for route in API_ROUTES:
        assert f"operations-{route.tag}-{route.operation_id}" in shown
    # open one: its answers' schemas are rendered from components
    operation = "#operations-tasks-create_task"
    browser.find_element(By.CSS_SELECTOR, f"{operation} .opblock-summary").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{operation} .responses-table"))
    codes = browser.find_elements(By.CSS_SELECTOR, f"{operation} .response-col_status")
    assert {"202", "401", "409"} <= {c.text.strip() for c in codes}
    screenshot(browser, "api-docs", folder=tmp_path)
    assert csp_violations(browser) == []
    problems = [e for e in console(browser) if e["level"] in ("SEVERE", "WARNING")]
    assert problems == []
    # nothing was fetched from anywhere but this server
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);"
    )
    assert set(origins) <= {server.url}, origins


def test_a_csp_violation_is_seen(browser: webdriver.Chrome) -> None:
    """The check above can fail: an inline script under script-src 'self' is reported."""
    page = (
        "data:text/html,<meta http-equiv='Content-Security-Policy' content=\"script-src 'self'\">"
        "<p>x</p><script>document.title='ran'</script>"
    )
    browser.get(page)
    WebDriverWait(browser, 60).until(csp_violations)
    assert browser.title != "ran"
    assert any("Content Security Policy" in e["message"] for e in console(browser))
