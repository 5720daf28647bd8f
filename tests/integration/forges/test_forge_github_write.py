"""The forge emulator's GitHub write routes, spoken to with plain httpx: GitHub's wire format."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mecha.testing.forge.api import FileChange, ForgeEmulator
from mecha.testing.forge.github.review import hunk_lines

BASE = "1a" * 20
HEAD = "2b" * 20
TOKEN = "ghp_" + "W" * 36
OTHER = "ghp_" + "O" * 36
APP_ID = "4242"
PATCH = "@@ -1,4 +1,5 @@\n import os\n-x = 1\n+x = 2\n+y = 3\n print(x)\n done()\n"
COMMENTS = "/repos/octo/hello/issues/7/comments"
REVIEWS = "/repos/octo/hello/pulls/7/reviews"


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """An emulator wanting TOKEN or OTHER, with pull request #7 and issue #8."""
    with ForgeEmulator(github_token=TOKEN) as emulator:
        emulator.github.tokens[OTHER] = None
        emulator.add_pull(
            "octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=[FileChange("app.py", PATCH)]
        )
        emulator.github.writes.add_issue("octo", "hello", 8, title="A bug", labels=["triage"])
        yield emulator


@pytest.fixture
def http(forge: ForgeEmulator) -> Iterator[httpx.Client]:
    """A client of the GitHub half that signs in with TOKEN."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
    with httpx.Client(base_url=forge.github_url, headers=headers) as client:
        yield client


def _errors(answer: httpx.Response) -> list[Any]:
    assert answer.status_code == 422, answer.text
    data = answer.json()
    assert data["message"] == "Validation Failed"
    assert data["documentation_url"].startswith("https://docs.github.com/")
    errors: list[Any] = data["errors"]
    return errors


# ------------------------------------------------------------------ comments


def test_a_comment_is_created_as_the_tokens_account(
    forge: ForgeEmulator, http: httpx.Client
) -> None:
    """201 with id, body, user.login; the default account is mecha-bot, others are set."""
    forge.github.writes.logins[OTHER] = "alice"
    mine = http.post(COMMENTS, json={"body": "hello"})
    theirs = http.post(COMMENTS, json={"body": "hi"}, headers={"Authorization": f"token {OTHER}"})
    assert mine.status_code == 201
    assert mine.json()["body"] == "hello"
    assert mine.json()["user"]["login"] == "mecha-bot"
    assert mine.headers["location"] == mine.json()["url"]
    assert theirs.json()["user"]["login"] == "alice"
    stored = forge.github.writes.comments("octo", "hello", 7)
    assert [(c.id, c.login) for c in stored] == [
        (mine.json()["id"], "mecha-bot"),
        (theirs.json()["id"], "alice"),
    ]


def test_issues_and_pull_requests_share_numbers(forge: ForgeEmulator, http: httpx.Client) -> None:
    """#8 is an issue, #7 a pull request; #9 is neither: 404. A pull's number is taken."""
    assert http.post("/repos/octo/hello/issues/8/comments", json={"body": "x"}).status_code == 201
    missing = http.post("/repos/octo/hello/issues/9/comments", json={"body": "x"})
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"
    with pytest.raises(ValueError, match="is a pull request already"):
        forge.github.writes.add_issue("octo", "hello", 7)


def test_comments_are_listed_page_by_page_with_link(
    forge: ForgeEmulator, http: httpx.Client
) -> None:
    """Default 30 a page, per_page at most 100, Link with next/last then prev/first."""
    for i in range(130):
        forge.github.writes.add_comment("octo", "hello", 7, f"c{i}", login="someone")
    first = http.get(COMMENTS)
    page1 = http.get(COMMENTS, params={"per_page": 500})
    page2 = http.get(COMMENTS, params={"per_page": 100, "page": 2})
    assert len(first.json()) == 30
    assert [len(page1.json()), len(page2.json())] == [100, 30]
    assert page1.headers["link"] == (
        f'<{forge.github_url}{COMMENTS}?per_page=100&page=2>; rel="next", '
        f'<{forge.github_url}{COMMENTS}?per_page=100&page=2>; rel="last"'
    )
    assert 'rel="next"' not in page2.headers["link"]
    assert page2.json()[-1]["body"] == "c129"


def test_a_comment_is_read_and_edited_by_id(forge: ForgeEmulator, http: httpx.Client) -> None:
    """GET and PATCH /issues/comments/{id}; an id of another repository is 404."""
    number = forge.github.writes.add_comment("octo", "hello", 8, "old", login="mallory")
    edited = http.patch(f"/repos/octo/hello/issues/comments/{number}", json={"body": "new"})
    read = http.get(f"/repos/octo/hello/issues/comments/{number}")
    elsewhere = http.get(f"/repos/octo/other/issues/comments/{number}")
    assert edited.status_code == 200
    assert read.json()["body"] == "new"
    assert read.json()["user"]["login"] == "mallory"
    assert elsewhere.status_code == 404


@pytest.mark.parametrize(
    ("content", "field", "code"),
    [
        (b"{}", "body", "missing_field"),
        (b'{"body": null}', "body", "missing_field"),
        (b'{"body": 5}', "body", "invalid"),
        (b'{"body": "' + b"x" * 65537 + b'"}', "data", "custom"),
    ],
)
def test_a_bad_comment_body_is_a_validation_failure(
    http: httpx.Client, content: bytes, field: str, code: str
) -> None:
    """GitHub's 422 with errors naming the field."""
    [error] = _errors(http.post(COMMENTS, content=content))
    assert (error["field"], error["code"]) == (field, code)
    assert error["resource"] == "IssueComment"


def test_a_body_that_is_not_json_is_a_400(http: httpx.Client) -> None:
    """Problems parsing JSON, as GitHub answers."""
    answer = http.post(COMMENTS, content=b"{body: 'x'")
    assert answer.status_code == 400
    assert answer.json()["message"] == "Problems parsing JSON"


# ------------------------------------------------------------------ labels


def test_labels_are_added_and_removed(forge: ForgeEmulator, http: httpx.Client) -> None:
    """POST answers every label of the issue; DELETE the rest; a name is path-quoted."""
    added = http.post("/repos/octo/hello/issues/8/labels", json={"labels": ["bug", "needs review"]})
    again = http.post("/repos/octo/hello/issues/8/labels", json=["BUG", {"name": "ui"}])
    removed = http.delete("/repos/octo/hello/issues/8/labels/needs%20review")
    assert [label["name"] for label in added.json()] == ["triage", "bug", "needs review"]
    assert [label["name"] for label in again.json()] == ["triage", "bug", "needs review", "ui"]
    assert {"id", "node_id", "url", "color", "default"} <= set(added.json()[0])
    assert [label["name"] for label in removed.json()] == ["triage", "bug", "ui"]
    assert forge.github.writes.labels("octo", "hello", 8) == ["triage", "bug", "ui"]


def test_removing_a_label_that_is_not_there_is_404(http: httpx.Client) -> None:
    """Label does not exist."""
    answer = http.delete("/repos/octo/hello/issues/8/labels/wip")
    assert answer.status_code == 404
    assert answer.json()["message"] == "Label does not exist"


@pytest.mark.parametrize("body", [{"labels": "bug"}, {"labels": [1]}, {"labels": [""]}, {}])
def test_bad_labels_are_a_validation_failure(http: httpx.Client, body: dict[str, Any]) -> None:
    """labels must be a list of names."""
    [error] = _errors(http.post("/repos/octo/hello/issues/8/labels", json=body))
    assert error["field"] == "labels"


# ------------------------------------------------------------------ statuses


def test_a_status_is_set_on_a_commit(forge: ForgeEmulator, http: httpx.Client) -> None:
    """201 with state, description, context and the creator."""
    body = {"state": "success", "description": "fine", "context": "mecha/reviewer"}
    answer = http.post(f"/repos/octo/hello/statuses/{HEAD}", json=body)
    assert answer.status_code == 201
    assert {k: answer.json()[k] for k in body} == body
    assert answer.json()["creator"]["login"] == "mecha-bot"
    [stored] = forge.github.writes.statuses("octo", "hello", HEAD)
    assert stored["state"] == "success"


def test_a_status_without_context_gets_default(http: httpx.Client) -> None:
    """context defaults to "default"."""
    answer = http.post(f"/repos/octo/hello/statuses/{HEAD}", json={"state": "pending"})
    assert answer.json()["context"] == "default"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "x"}, "state"),
        ({"state": "passed"}, "state"),
        ({"state": 1}, "state"),
        ({"state": "error", "description": "d" * 141}, "description"),
        ({"state": "error", "context": ["a"]}, "context"),
    ],
)
def test_a_bad_status_is_a_validation_failure(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """state is required and one of four; description at most 140 characters."""
    [error] = _errors(http.post(f"/repos/octo/hello/statuses/{HEAD}", json=body))
    assert error["field"] == field


def test_a_status_on_no_commit_is_refused(http: httpx.Client) -> None:
    """A SHA that is no commit: 422."""
    answer = http.post("/repos/octo/hello/statuses/main", json={"state": "success"})
    assert _errors(answer) == ["No commit found for SHA: main"]


# ------------------------------------------------------------------ reviews


def _comment(**fields: Any) -> dict[str, Any]:
    return {"path": "app.py", "body": "```suggestion\nx\n```", **fields}


def test_hunk_lines_are_read_per_side() -> None:
    """Context lines are on both sides, - on the left, + on the right."""
    assert hunk_lines(PATCH) == [{"LEFT": {1, 2, 3, 4}, "RIGHT": {1, 2, 3, 4, 5}}]


def test_a_review_with_line_comments_is_kept(forge: ForgeEmulator, http: httpx.Client) -> None:
    """200 with state COMMENTED, the commit and the user; listed and kept with comments."""
    comments = [_comment(line=3, side="RIGHT"), _comment(start_line=2, line=3, start_side="RIGHT")]
    body = {"commit_id": HEAD, "event": "COMMENT", "body": "see", "comments": comments}
    answer = http.post(REVIEWS, json=body)
    assert answer.status_code == 200, answer.text
    review = answer.json()
    assert (review["state"], review["commit_id"], review["body"]) == ("COMMENTED", HEAD, "see")
    assert review["user"]["login"] == "mecha-bot"
    assert [r["id"] for r in http.get(REVIEWS).json()] == [review["id"]]
    [kept] = forge.github.writes.reviews("octo", "hello", 7)
    assert kept.comments == comments


@pytest.mark.parametrize(
    ("comment", "message"),
    [
        (_comment(line=40), "pull_request_review_thread.line must be part of the diff"),
        (_comment(line=5, side="LEFT"), "pull_request_review_thread.line must be part of the diff"),
        (_comment(line=2, start_line=3), "start_line must precede the end line"),
        (_comment(path="other.py", line=1), "path could not be resolved"),
        (_comment(line=2, side="right"), "side is not included in the list"),
        (_comment(), "line is missing"),
        (_comment(position=9), "position could not be resolved"),
    ],
)
def test_a_review_comment_off_the_diff_is_refused(
    http: httpx.Client, comment: dict[str, Any], message: str
) -> None:
    """GitHub's 422 for a comment not on the pull request's diff."""
    body = {"event": "COMMENT", "body": "see", "comments": [comment]}
    [error] = _errors(http.post(REVIEWS, json=body))
    assert message in error["message"]


def test_a_range_across_two_hunks_is_refused(forge: ForgeEmulator, http: httpx.Client) -> None:
    """start_line and line must be in one hunk."""
    patch = "@@ -1,2 +1,2 @@\n a\n-b\n+B\n@@ -10,2 +10,2 @@\n j\n-k\n+K\n"
    forge.add_pull("octo", "hello", 9, base_sha=BASE, head_sha=HEAD, files=[FileChange("f", patch)])
    comment = {"path": "f", "body": "x", "start_line": 2, "line": 11}
    body = {"event": "COMMENT", "body": "see", "comments": [comment]}
    [error] = _errors(http.post("/repos/octo/hello/pulls/9/reviews", json=body))
    assert "same hunk" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "SUGGEST", "body": "x"}, "event"),
        ({"event": "COMMENT"}, "body"),
        ({"event": "COMMENT", "body": "x", "commit_id": BASE}, "commit_id"),
        ({"event": "COMMENT", "body": "x", "comments": {"path": "app.py"}}, "comments"),
        ({"event": "COMMENT", "body": "x", "comments": [{"line": 2}]}, "path"),
    ],
)
def test_a_bad_review_is_a_validation_failure(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """The event enum, a body for COMMENT, the head commit, comments as a list of objects."""
    errors = _errors(http.post(REVIEWS, json=body))
    assert errors[0]["field"] == field


def test_a_review_without_event_is_pending(http: httpx.Client) -> None:
    """No event: PENDING, with no submitted_at."""
    review = http.post(REVIEWS, json={"body": "later"}).json()
    assert review["state"] == "PENDING"
    assert "submitted_at" not in review


def test_an_issue_has_no_reviews(http: httpx.Client) -> None:
    """Reviews are for pull requests only."""
    assert http.post("/repos/octo/hello/pulls/8/reviews", json={}).status_code == 404


# ------------------------------------------------------------------ accounts and auth


def test_requests_without_a_token_are_refused(forge: ForgeEmulator) -> None:
    """401 Bad credentials on every write route."""
    with httpx.Client(base_url=forge.github_url) as client:
        answer = client.post(COMMENTS, json={"body": "x"})
    assert answer.status_code == 401
    assert answer.json()["message"] == "Bad credentials"


def test_get_user_names_the_tokens_account(forge: ForgeEmulator, http: httpx.Client) -> None:
    """login of the token; another token, another login."""
    forge.github.writes.logins[TOKEN] = "octo-bot"
    assert http.get("/user").json()["login"] == "octo-bot"


def _app(forge: ForgeEmulator) -> tuple[str, str]:
    """An App on the emulator, an installation token of it and the App's JWT."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forge.github_app(APP_ID, key.public_key())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + 500, "iss": APP_ID}
    app_jwt = jwt.encode(claims, pem, algorithm="RS256")
    with httpx.Client(base_url=forge.github_url) as client:
        url = "/app/installations/5/access_tokens"
        answer = client.post(url, headers={"Authorization": f"Bearer {app_jwt}"})
    return answer.json()["token"], app_jwt


def test_an_installation_token_writes_as_the_apps_bot(forge: ForgeEmulator) -> None:
    """user.login is "<slug>[bot]"; GET /user is 403 for it, as on GitHub."""
    forge.github.writes.app_slug = "reviewer"
    token, _ = _app(forge)
    with httpx.Client(base_url=forge.github_url) as client:
        auth = {"Authorization": f"Bearer {token}"}
        comment = client.post(COMMENTS, json={"body": "x"}, headers=auth).json()
        user = client.get("/user", headers=auth)
    assert comment["user"]["login"] == "reviewer[bot]"
    assert comment["user"]["type"] == "Bot"
    assert user.status_code == 403
    assert user.json()["message"] == "Resource not accessible by integration"


def test_get_app_takes_the_apps_jwt_not_a_token(forge: ForgeEmulator, http: httpx.Client) -> None:
    """GET /app with the JWT: the slug; with a token: 401."""
    forge.github.writes.app_slug = "reviewer"
    _, app_jwt = _app(forge)
    with_jwt = http.get("/app", headers={"Authorization": f"Bearer {app_jwt}"})
    with_token = http.get("/app")
    assert with_jwt.json()["slug"] == "reviewer"
    assert with_jwt.json()["id"] == int(APP_ID)
    assert with_token.status_code == 401
