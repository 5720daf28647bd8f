"""The dashboard over HTTP against a real `mecha serve` (SQLite): access, sessions and their
cookies, CSRF, the security headers, hostile event text, redaction, filters and pages,
and the live stream. The same pages in real Chromium: tests/e2e/test_dashboard_browser.py."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.serving import make_home, post_github, pr_payload

KEY = "dashboard-test-key-0123456789abcdef"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def titled(number: int, title: str) -> bytes:
    payload = json.loads(pr_payload(number=number))
    payload["pull_request"]["title"] = title
    return json.dumps(payload).encode()


def event_ids(url: str, count: int) -> list[str]:
    deadline = time.monotonic() + 60
    while True:
        shown = httpx.get(f"{url}/events", params={"limit": 1000}, headers=_key()).json()
        if len(shown) >= count or time.monotonic() > deadline:
            return [e["id"] for e in shown]
        time.sleep(0.05)


def _key() -> dict[str, str]:
    return {"X-API-Key": KEY}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF token"
    return found[1]


@pytest.fixture(scope="module")
def open_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = make_home(tmp_path_factory.mktemp("open"))
    endpoint_worker(home, "reviewer", "http://127.0.0.1:9", online=False)
    serve = ServeProcess(home)
    try:
        for number in range(1, 61):
            assert post_github(serve.url, titled(number, f"change {number}")).status_code == 202
        assert post_github(serve.url, titled(61, HOSTILE)).status_code == 202
        assert len(event_ids(serve.url, 61)) == 61
        yield serve
    finally:
        serve.stop()


@pytest.fixture
def client(open_serve: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=open_serve.url, timeout=60) as opened:
        yield opened


@pytest.fixture
def keyed(keyed_serve: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed_serve.url, timeout=60) as opened:
        yield opened


@pytest.fixture(scope="module")
def keyed_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = make_home(tmp_path_factory.mktemp("keyed"))
    serve = ServeProcess(home, args=["--api-key", KEY])
    try:
        assert post_github(serve.url, pr_payload()).status_code == 202
        assert len(event_ids(serve.url, 1)) == 1
        yield serve
    finally:
        serve.stop()


def test_home_redirects_to_the_events_page(open_serve: ServeProcess) -> None:
    for path in ("/", "/ui", "/ui/"):
        answer = httpx.get(open_serve.url + path)
        assert answer.status_code == 307 and answer.headers["location"] == "/ui/events"


def test_open_pages_set_a_strict_session_cookie_and_security_headers(
    open_serve: ServeProcess,
) -> None:
    answer = httpx.get(open_serve.url + "/ui/events")
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("mecha_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert "<script>" not in answer.text.replace('<script src="/static/ui/app.js" defer>', "")


def test_every_page_answers(open_serve: ServeProcess, client: httpx.Client) -> None:
    [newest, *_] = event_ids(open_serve.url, 61)
    task = httpx.get(open_serve.url + "/tasks").json()[0]["id"]
    for path in (
        "/ui/events", f"/ui/events/{newest}", "/ui/tasks", f"/ui/tasks/{task}",
        "/ui/workers", "/ui/workers/reviewer", "/ui/writes", "/ui/system",
    ):  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
    for path in ("/ui/events/nope", "/ui/tasks/nopenope", "/ui/workers/nobody"):
        answer = client.get(path)
        assert answer.status_code == 404 and "Traceback" not in answer.text


def test_event_text_is_shown_as_text(open_serve: ServeProcess) -> None:
    [newest, *_] = event_ids(open_serve.url, 61)
    for path in ("/ui/events", f"/ui/events/{newest}"):
        html = httpx.get(open_serve.url + path).text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html


def test_pages_mask_secrets_the_store_holds(open_serve: ServeProcess) -> None:
    """Text stored before a secret was known (here: written into the file) is masked."""
    task = httpx.get(open_serve.url + "/tasks").json()[0]["id"]
    with sqlite3.connect(open_serve.home / "mecha.db") as conn:
        conn.execute(
            "UPDATE tasks SET error = ? WHERE id = ?",
            ("the forge said: bad credentials gh-webhook-secret-one", task),
        )
    html = httpx.get(f"{open_serve.url}/ui/tasks/{task}").text
    assert "bad credentials" in html
    assert "gh-webhook-secret-one" not in html


def test_pages_keep_their_place_with_a_cursor(
    open_serve: ServeProcess, client: httpx.Client
) -> None:
    first = client.get("/ui/events").text
    rows = re.findall(r'<tr id="event-([0-9a-f]+)"', first)
    assert len(rows) == 50
    older = re.search(r'href="/ui/events\?([^"]+)" rel="next"', first)
    assert older, "no link to older events"
    second = client.get("/ui/events?" + older[1].replace("&amp;", "&")).text
    more = re.findall(r'<tr id="event-([0-9a-f]+)"', second)
    assert len(more) == 11 and not set(rows) & set(more)
    assert set(rows) | set(more) == set(event_ids(open_serve.url, 61))
    assert 'rel="next"' not in second


def test_filters_and_search(client: httpx.Client) -> None:
    found = client.get("/ui/events", params={"q": "CHANGE 42"}).text
    assert len(re.findall(r'<tr id="event-', found)) == 1 and "change 42" in found
    none = client.get("/ui/events", params={"source": "gitlab"}).text
    assert "No events match these filters" in none
    bad = client.get("/ui/events", params={"state": "bogus", "before": "garbage"})
    assert bad.status_code == 200
    assert "is not a state filter" in bad.text and "page link was damaged" in bad.text
    tasks = client.get("/ui/tasks", params={"worker": "reviewer", "state": "pending"}).text
    assert len(re.findall(r'<tr id="task-', tasks)) == 50


def test_a_key_means_signing_in_first(keyed_serve: ServeProcess, keyed: httpx.Client) -> None:
    client = keyed
    answer = client.get("/ui/events?state=received")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fevents%3Fstate%3Dreceived"
    form = client.get(answer.headers["location"])
    assert form.status_code == 200 and 'type="password"' in form.text
    token = csrf_of(form.text)
    wrong = client.post("/ui/login", data={"csrf": token, "key": "not-it", "next": "/ui/tasks"})
    assert wrong.status_code == 401 and "mecha_session" not in wrong.headers.get("set-cookie", "")
    no_token = httpx.post(keyed_serve.url + "/ui/login", data={"key": KEY})
    assert no_token.status_code == 403
    token = csrf_of(client.get("/ui/login").text)
    right = client.post(
        "/ui/login", data={"csrf": token, "key": KEY, "name": "alice", "next": "/ui/tasks"}
    )
    assert right.status_code == 303 and right.headers["location"] == "/ui/tasks"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/ui/events")
    assert page.status_code == 200 and "alice" in page.text
    # the session is not the API key: the JSON API still wants the key
    assert client.get("/events").status_code == 401


def test_a_forged_session_is_refused(keyed_serve: ServeProcess) -> None:
    forged = httpx.get(
        keyed_serve.url + "/ui/events", cookies={"mecha_session": "eyJ3IjoiZXZlIn0.0000"}
    )
    assert forged.status_code == 303


def test_an_action_without_its_csrf_token_is_refused(keyed: httpx.Client) -> None:
    login = keyed
    token = csrf_of(login.get("/ui/login").text)
    login.post("/ui/login", data={"csrf": token, "key": KEY})
    act = login.post("/ui/act", data={"action": "task-retry", "id": "x"})
    assert act.status_code == 403 and "CSRF" in act.text
    evil = login.post("/ui/act", data={"action": "task-retry", "id": "x", "csrf": "0" * 64})
    assert evil.status_code == 403


def test_secure_cookie_behind_tls(keyed: httpx.Client) -> None:
    """A proxy on loopback that terminated TLS says so; the cookie is then Secure."""
    proxied = {"X-Forwarded-Proto": "https"}
    token = csrf_of(keyed.get("/ui/login", headers=proxied).text)
    # an http client keeps no Secure cookie: the login form's own is sent by hand
    sent = {**proxied, "Cookie": f"mecha_login={token}"}
    right = keyed.post("/ui/login", headers=sent, data={"csrf": token, "key": KEY})
    assert right.status_code == 303 and "Secure" in right.headers["set-cookie"]


def test_the_stream_says_what_changed(open_serve: ServeProcess) -> None:
    with (
        httpx.Client(base_url=open_serve.url, timeout=60) as client,
        client.stream("GET", "/ui/stream") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        sent = post_github(open_serve.url, titled(99, "live one"))
        new_id = sent.json()["id"]
        deadline = time.monotonic() + 60
        for line in lines:
            if line.startswith("data:") and new_id in line:
                break
            assert time.monotonic() < deadline, "the new event never came"


def test_an_action_from_another_origin_is_refused(open_serve: ServeProcess) -> None:
    """A cross-site form (or a page whose Origin is hidden: "null") cannot act, even with
    a token; from this server it can (the refusal is the task's state, not the origin)."""
    with httpx.Client(base_url=open_serve.url) as client:
        page = client.get("/ui/confirm", params={"action": "task-retry", "id": "nope"})
        form = {"csrf": csrf_of(page.text), "action": "task-retry", "id": "nope"}
        for origin in ("https://evil.example", "null"):
            answer = client.post("/ui/act", data=form, headers={"Origin": origin})
            assert answer.status_code == 403 and "CSRF" in answer.text, origin
        same = client.post("/ui/act", data=form, headers={"Origin": open_serve.url})
        assert same.status_code == 404 and "nope" in same.text
