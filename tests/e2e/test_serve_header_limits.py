"""A real `mecha serve`: header sizes are capped, delivery ids checked, only known headers kept."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import select
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mecha.forges.signing import gitlab_headers
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import (
    GITLAB_TOKEN,
    SOURCE_SECRET,
    count_events,
    make_home,
    post_github,
    pr_payload,
)

CONFIG = "sources:\n  alerts:\n    delivery_header: X-Alert-Id\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    home = make_home(tmp_path_factory.mktemp("limits"), config=CONFIG)
    with ServeProcess(home) as server:
        yield server, home


@pytest.fixture
def url(served: tuple[ServeProcess, Path]) -> str:
    return served[0].url


@pytest.fixture
def home(served: tuple[ServeProcess, Path]) -> Path:
    return served[1]


def _raw_request(url: str, head: bytes, filler: int) -> bytes:
    """Send ``head`` then ``filler`` bytes of one header value, 16 KiB at a time, stopping
    as soon as the server answers; what it answered (b"" if it only closed)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"X-Padding: ")
        sent = 0
        try:
            while sent < filler:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before the headers ended
                sock.sendall(b"a" * 16384)
                sent += 16384
            else:
                sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def test_a_1_mib_header_gets_431_and_the_server_stays_up(url: str, home: Path) -> None:
    before = count_events(home)
    head = b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    answer = _raw_request(url, head, 1024 * 1024)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"].startswith(
        "the request's headers are larger than 64 KB"
    )
    assert httpx.get(f"{url}/health").status_code == 200  # still serving
    assert post_github(url, pr_payload()).status_code == 202
    assert count_events(home) == before + 1


def test_a_head_that_never_ends_is_refused_at_the_cap_on_any_route(url: str) -> None:
    """The protocol itself refuses once the head passes the cap, without waiting for its
    end (which never comes here, so no route could) and without reading the rest."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused meanwhile
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 98304)
        answer = b""
        try:
            while chunk := sock.recv(65536):  # an uncapped server never answers: timeout
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), answer[:300]
    assert httpx.get(f"{url}/health").status_code == 200


def test_headers_just_under_the_cap_are_served(url: str) -> None:
    padding = {f"X-Pad-{n}": "b" * 1000 for n in range(40)}  # 40 KB
    assert httpx.get(f"{url}/health", headers=padding).status_code == 200


def test_the_app_refuses_headers_over_the_cap_too() -> None:
    from mecha.server.header_limit import MAX_HEADER_BYTES, too_large

    assert not too_large([(b"x-a", b"v" * (MAX_HEADER_BYTES - 3))])
    assert too_large([(b"x-a", b"v" * (MAX_HEADER_BYTES - 3)), (b"x-b", b"")])


@pytest.mark.parametrize(
    ("delivery", "words"),
    [
        ("d" * 60_000, "60000 characters long"),  # under the 64 KB cap on all headers
        ("d" * 129, "129 characters long"),
        ("abc\tdef", "a character other than"),
        ("abc def", "a character other than"),
        ("abc/../def", "a character other than"),
        ("ab%0D%0Acd", "a character other than"),
    ],
)
def test_an_unsafe_github_delivery_id_gets_400_and_nothing_is_stored(
    url: str, home: Path, delivery: str, words: str
) -> None:
    before = count_events(home)
    answer = post_github(url, pr_payload(), delivery=delivery)
    assert answer.status_code == 400, answer.text
    assert "X-GitHub-Delivery" in answer.json()["error"]
    assert words in answer.json()["error"]
    assert count_events(home) == before


def test_a_100_kb_delivery_id_is_over_the_header_cap_and_nothing_is_stored(
    url: str, home: Path
) -> None:
    before = count_events(home)
    answer = post_github(url, pr_payload(), delivery="d" * 100_000)
    assert answer.status_code == 431, answer.text
    assert count_events(home) == before


def test_a_128_character_delivery_id_of_safe_characters_is_taken(url: str) -> None:
    delivery = ("A-z0.9_:" * 16)[:128]
    assert post_github(url, pr_payload(), delivery=delivery).status_code == 202


def test_an_unsafe_gitlab_delivery_id_gets_400(url: str, home: Path) -> None:
    before = count_events(home)
    headers = gitlab_headers(token=GITLAB_TOKEN, event="push", delivery_id="x" * 200)
    del headers["Idempotency-Key"]
    answer = httpx.post(f"{url}/webhook/gitlab", content=b"{}", headers=headers)
    assert answer.status_code == 400, answer.text
    assert "X-Gitlab-Event-UUID" in answer.json()["error"]
    headers["Idempotency-Key"] = "a;b"
    answer = httpx.post(f"{url}/webhook/gitlab", content=b"{}", headers=headers)
    assert answer.status_code == 400, answer.text
    assert "Idempotency-Key" in answer.json()["error"]
    assert count_events(home) == before


def test_an_unsafe_generic_delivery_id_gets_400(url: str, home: Path) -> None:
    before = count_events(home)
    body = b'{"alert": "disk"}'
    signature = hmac.new(SOURCE_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Event-Type": "alert.firing",
        "X-Alert-Id": "z" * 5000,
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    answer = httpx.post(f"{url}/webhook/alerts", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert "X-Alert-Id" in answer.json()["error"]
    assert count_events(home) == before
    headers["X-Alert-Id"] = str(uuid.uuid4())
    assert httpx.post(f"{url}/webhook/alerts", content=body, headers=headers).status_code == 202


def _stored_headers(home: Path, event_id: str) -> str:
    with sqlite3.connect(home / "mecha.db") as conn:
        row = conn.execute("SELECT headers FROM events WHERE id = ?", (event_id,)).fetchone()
    return str(row[0])


def test_only_the_headers_mecha_uses_are_stored(url: str, home: Path) -> None:
    answer = post_github(url, pr_payload(), X_Custom="c" * 5000, X_Forwarded_For="10.0.0.1")
    assert answer.status_code == 202, answer.text
    event_id = answer.json()["id"]
    shown = httpx.get(f"{url}/event/{event_id}").json()["headers"]
    assert set(shown) == {
        "content-type", "user-agent", "x-github-event", "x-github-delivery",
        "x-hub-signature-256",
    }  # fmt: skip
    raw = _stored_headers(home, event_id)
    assert "ccccc" not in raw and "x-custom" not in raw and "10.0.0.1" not in raw


def test_a_long_kept_header_is_cut_at_1_kb(url: str) -> None:
    answer = post_github(url, pr_payload(), User_Agent="GitHub-Hookshot/" + "u" * 3000)
    assert answer.status_code == 202, answer.text
    shown = httpx.get(f"{url}/event/{answer.json()['id']}").json()["headers"]
    assert len(shown["user-agent"]) == 1024


def test_the_gitlab_token_value_is_never_stored(url: str, home: Path) -> None:
    headers = gitlab_headers(token=GITLAB_TOKEN, event="push", delivery_id=str(uuid.uuid4()))
    body = json.dumps({"object_kind": "push", "project": {"path_with_namespace": "g/a"}})
    answer = httpx.post(f"{url}/webhook/gitlab", content=body.encode(), headers=headers)
    assert answer.status_code == 202, answer.text
    event_id = answer.json()["id"]
    shown = httpx.get(f"{url}/event/{event_id}").json()["headers"]
    assert "x-gitlab-token" not in shown
    assert shown["x-gitlab-event"] == "Push Hook"
    assert GITLAB_TOKEN not in _stored_headers(home, event_id)
