"""A real `mecha serve` refuses wrong-shape signed payloads, repeated keys and a malformed
Content-Length with its JSON error, and stores nothing (issue 14, item 6)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.forges.signing import gitlab_headers
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import (
    GITLAB_TOKEN,
    add_worker,
    count_events,
    make_home,
    post_github,
    pr_payload,
)
from tests.sample_payloads import load_sample

RULES = "  - source: github\n    on: [pull_request.opened]\n    prompt: 'x {{.number}}'\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = make_home(tmp_path_factory.mktemp("shape"))
    add_worker(home, "reviewer", RULES)
    with ServeProcess(home) as server:
        yield server.url, home


@pytest.fixture
def url(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture
def home(served: tuple[str, Path]) -> Path:
    return served[1]


def pull_request(**changes: Any) -> bytes:
    return json.dumps({**json.loads(pr_payload()), **changes}).encode()


def refused(answer: httpx.Response, status: int = 400) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    shown = answer.json()
    assert set(shown) == {"error", "hint"}
    return str(shown["error"])


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (pull_request(pull_request=None), "$.pull_request: expected an object, got null"),
        (pull_request(pull_request=[1]), "$.pull_request: expected an object, got an array"),
        (pull_request(repository="x"), "$.repository: expected an object, got a string"),
        (pull_request(action={}), "$.action: expected a string, got an object"),
        (b"{}", "$.action: expected a string, got nothing (it is missing); "
                "$.pull_request: expected an object, got nothing (it is missing)"),
        (pull_request(number="7"), "$.number: expected an integer, got a string"),
    ],
    ids=["pull_request-null", "pull_request-array", "repository-text", "action-object", "empty",
         "number-text"],
)  # fmt: skip
def test_a_wrong_shape_pull_request_gets_400_and_nothing_is_stored(
    url: str, home: Path, body: bytes, error: str
) -> None:
    before = count_events(home)
    answer = post_github(url, body)
    assert refused(answer) == error
    assert "GitHub sends pull_request deliveries" in answer.json()["hint"]
    assert count_events(home) == before


def test_a_nested_wrong_type_gets_400(url: str, home: Path) -> None:
    payload = json.loads(pr_payload())
    payload["pull_request"]["head"]["sha"] = ["a" * 40]
    before = count_events(home)
    answer = post_github(url, json.dumps(payload).encode())
    assert refused(answer) == "$.pull_request.head.sha: expected a string, got an array"
    assert count_events(home) == before


def test_the_signature_is_still_checked_first(url: str) -> None:
    answer = post_github(url, b"{}", secret="not-the-secret")
    assert "does not match" in refused(answer, 401)


def test_a_well_shaped_pull_request_is_still_taken(url: str, home: Path) -> None:
    before = count_events(home)
    assert post_github(url, pr_payload()).status_code == 202
    assert count_events(home) == before + 1


def test_an_unknown_github_event_is_still_taken(url: str, home: Path) -> None:
    before = count_events(home)
    body = json.dumps({"action": {}, "repository": "x", "starred_at": None}).encode()
    answer = post_github(url, body, event="star")
    assert answer.status_code == 202, answer.text
    assert answer.json()["type"] == "star"
    assert count_events(home) == before + 1


def post_gitlab(url: str, body: bytes, event: str = "Merge Request Hook") -> httpx.Response:
    headers = gitlab_headers(token=GITLAB_TOKEN, event=event, delivery_id=str(uuid.uuid4()))
    return httpx.post(f"{url}/webhook/gitlab", content=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"object_attributes": None}, "$.object_attributes: expected an object, got null"),
        ({"object_attributes": {"iid": "5"}},
         "$.object_attributes.iid: expected an integer, got a string"),
        ({"project": "x"}, "$.project: expected an object, got a string"),
    ],
)  # fmt: skip
def test_a_wrong_shape_merge_request_hook_gets_400(
    url: str, home: Path, change: dict[str, Any], error: str
) -> None:
    body, _ = load_sample("gitlab", "merge_request.open")
    before = count_events(home)
    assert refused(post_gitlab(url, json.dumps({**json.loads(body), **change}).encode())) == error
    assert refused(post_gitlab(url, b"{}")) == (
        "$.object_attributes: expected an object, got nothing (it is missing)"
    )
    assert count_events(home) == before


def test_an_unknown_gitlab_hook_is_still_taken(url: str) -> None:
    answer = post_gitlab(url, b'{"object_attributes": null}', event="Pipeline Hook")
    assert answer.status_code == 202, answer.text


def repeated(old: bytes, new: bytes) -> bytes:
    body = pr_payload()
    assert old in body
    return body.replace(old, old + b", " + new, 1)


@pytest.mark.parametrize(
    ("body", "key", "where"),
    [
        (repeated(b'"action": "opened"', b'"action": "closed"'), "action", "$"),
        (repeated(b'"title": "Fix the thing"', b'"title": "Other"'), "title", "$.pull_request"),
        (repeated(b'"login": "mona"', b'"\\u006cogin": "eve"'), "login", "$.sender"),
    ],
    ids=["top-level", "nested", "escaped"],
)
def test_a_repeated_key_gets_400_and_nothing_is_stored(
    url: str, home: Path, body: bytes, key: str, where: str
) -> None:
    before = count_events(home)
    assert refused(post_github(url, body)) == (
        f'the GitHub delivery body names the key "{key}" more than once in the object at {where}'
    )
    assert count_events(home) == before


# ---------------------------------------------------------------- Content-Length


def raw_answer(url: str, request: bytes) -> bytes:
    """Everything the server sends back to ``request`` on a fresh connection until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize(
    ("lengths", "reason"),
    [
        ([b"abc"], "Invalid character in Content-Length"),
        ([b"-1"], "Invalid character in Content-Length"),
        ([b"2, 2"], "Invalid character in Content-Length"),
        ([b"2", b"3"], "Duplicate Content-Length"),
        ([b"2", b"2"], "Duplicate Content-Length"),
        ([b"99999999999999999999999"], "Content-Length overflow"),
        ([b""], "Empty Content-Length"),
    ],
)  # fmt: skip
def test_a_malformed_content_length_gets_the_json_error(
    url: str, home: Path, lengths: list[bytes], reason: str
) -> None:
    before = count_events(home)
    head = b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"".join(b"Content-Length: " + value + b"\r\n" for value in lengths)
    answer = raw_answer(url, head + b"\r\n{}")
    status, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status == b"HTTP/1.1 400 Bad Request", answer
    assert b"content-type: application/json" in headers.lower()
    shown = json.loads(body)
    assert shown["error"] == f"the request is not valid HTTP/1.1: {reason}"
    assert "Content-Length" in shown["hint"]
    assert count_events(home) == before
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200


def test_another_unparseable_request_gets_the_json_error_too(url: str) -> None:
    answer = raw_answer(url, b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 400 Bad Request", answer
    shown = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert shown["error"].startswith("the request is not valid HTTP/1.1: ")
    assert shown["hint"] == "send a well-formed HTTP/1.1 request"
