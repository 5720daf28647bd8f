"""GitHubWriter against the forge emulator: real HTTP on loopback, GitHub's wire format."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mecha.diff.suggestions import diff_block
from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.write import GitHubWriter
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.writes import Place, Write, marked_body, worker_marker, write_marker
from mecha.testing.forge.api import FileChange, ForgeEmulator, Recorded

BASE = "1a" * 20
HEAD = "2b" * 20
TOKEN = "ghp_" + "S" * 36
KEY = "0123456789abcdef" * 2
APP_ID = "777"
PATCH = "@@ -1,4 +1,5 @@\n import os\n-x = 1\n+x = 2\n+y = 3\n print(x)\n done()\n"
PULL = Place(forge="github", repo="octo/hello", number=7, kind="pull", head_sha=HEAD)
ISSUE = Place(forge="github", repo="octo/hello", number=8, kind="issue")
COMMENTS = "/github/repos/octo/hello/issues/7/comments"
ONE_LINE = (
    "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n"
    "@@ -2,2 +2,2 @@\n x = 2\n-y = 3\n+y = 4\n"
)
TWO_LINES = (
    "--- a/app.py\n+++ b/app.py\n@@ -2,2 +2,3 @@\n-x = 2\n-y = 3\n+x = 20\n+y = 30\n+z = 0\n"
)
OUTSIDE = "--- a/app.py\n+++ b/app.py\n@@ -40,1 +40,1 @@\n-old\n+new\n"


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """An emulator wanting TOKEN, with pull request #7 (app.py changed) and issue #8."""
    with ForgeEmulator(github_token=TOKEN) as emulator:
        emulator.add_pull(
            "octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=[FileChange("app.py", PATCH)]
        )
        emulator.github.writes.add_issue("octo", "hello", 8)
        yield emulator


def _write(action: str = "comment", *, place: Place = PULL, key: str = KEY, **fields: Any) -> Write:
    return Write(key=key, worker="reviewer", action=action, place=place, **fields)


def _writes(
    forge: ForgeEmulator,
    *writes: Write,
    auth: GitHubAuth | None = None,
    uncertain: bool = False,
    api_url: str = "",
    timeout: float = 30.0,
) -> list[Done]:
    """Each write in turn through one writer (so our account is asked once)."""

    async def run() -> list[Done]:
        async with httpx.AsyncClient() as http:
            writer = GitHubWriter(
                http,
                api_url=api_url or forge.github_url,
                auth=auth or GitHubAuth.token(TOKEN),
                timeout=timeout,
            )
            return [await writer.write(write, uncertain=uncertain) for write in writes]

    return asyncio.run(run())


def _failure(forge: ForgeEmulator, write: Write, **options: Any) -> WriteFailure:
    with pytest.raises(WriteFailure) as caught:
        _writes(forge, write, **options)
    for secret in (TOKEN, "ghs_"):
        assert secret not in caught.value.message
    return caught.value


def _calls(forge: ForgeEmulator) -> list[str]:
    return [f"{r.method} {r.path.removeprefix('/github')}" for r in forge.requests]


def _json(request: Recorded) -> Any:
    return json.loads(request.body)


# ------------------------------------------------------------------ comments


def test_a_comment_is_posted_with_its_markers_and_githubs_headers(forge: ForgeEmulator) -> None:
    """One POST: the body with the write marker; Bearer token, media type, API version."""
    write = _write(body="Looks good.", sticky=False)
    [done] = _writes(forge, write)
    [post] = forge.requests
    assert (post.method, post.path) == ("POST", COMMENTS)
    assert _json(post) == {"body": f"Looks good.\n\n{write_marker(KEY)}"}
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    assert post.headers["user-agent"] == "mecha"
    assert post.headers["content-type"] == "application/json"
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert done == Done(f"comment {comment.id} created", str(comment.id))


def test_a_sticky_comment_is_created_then_edited_in_place(forge: ForgeEmulator) -> None:
    """First write: GET /user, list, POST. Second: list, PATCH the same comment."""
    first, second = _write(body="v1"), _write(body="v2", key="f" * 32)
    created, edited = _writes(forge, first, second)
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert _calls(forge) == [
        "GET /user",
        "GET /repos/octo/hello/issues/7/comments",
        "POST /repos/octo/hello/issues/7/comments",
        "GET /repos/octo/hello/issues/7/comments",
        f"PATCH /repos/octo/hello/issues/comments/{comment.id}",
    ]
    assert forge.requests[1].query == {"per_page": "100"}
    assert created.detail == f"comment {comment.id} created"
    assert edited == Done(f"comment {comment.id} edited", str(comment.id))
    assert comment.body == marked_body(second, "v2")
    assert worker_marker("reviewer") in comment.body


def test_a_sticky_comment_with_the_same_body_is_not_patched(forge: ForgeEmulator) -> None:
    """The same write twice: the second only reads."""
    write = _write(body="same")
    _, again = _writes(forge, write, write)
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert again == Done(f"comment {comment.id} unchanged", str(comment.id))
    assert [call.split()[0] for call in _calls(forge)] == ["GET", "GET", "POST", "GET"]


def test_a_forged_marker_by_another_account_is_never_edited(forge: ForgeEmulator) -> None:
    """Someone else's comment with our worker's marker stays; ours is posted beside it."""
    forged = f"pwned\n\n{worker_marker('reviewer')}"
    other = forge.github.writes.add_comment("octo", "hello", 7, forged, login="mallory")
    [done] = _writes(forge, _write(body="real"))
    assert "PATCH" not in {r.method for r in forge.requests}
    theirs, ours = forge.github.writes.comments("octo", "hello", 7)
    assert (theirs.id, theirs.body, theirs.login) == (other, forged, "mallory")
    assert (ours.login, done.detail) == ("mecha-bot", f"comment {ours.id} created")


def test_the_sticky_comment_is_found_on_a_later_page(forge: ForgeEmulator) -> None:
    """The list follows Link rel=next to the newest comment of ours."""
    writes = forge.github.writes
    for i in range(120):
        writes.add_comment("octo", "hello", 7, f"chatter {i}", login="someone")
    ours = writes.add_comment(
        "octo", "hello", 7, f"old\n\n{worker_marker('reviewer')}", login="mecha-bot"
    )
    [done] = _writes(forge, _write(body="new"))
    pages = [r.query for r in forge.requests if r.path == COMMENTS and r.method == "GET"]
    assert pages == [{"per_page": "100"}, {"per_page": "100", "page": "2"}]
    assert done.detail == f"comment {ours} edited"


def test_without_our_account_a_sticky_comment_is_posted_not_edited(forge: ForgeEmulator) -> None:
    """GET /user answers 404: nothing is ever edited; each write posts, and says why."""
    forge.fail(r"/github/user$", 404, times=None)
    first, second = _writes(forge, _write(body="v1"), _write(body="v2", key="e" * 32))
    assert "PATCH" not in {r.method for r in forge.requests}
    assert len(forge.github.writes.comments("octo", "hello", 7)) == 2
    assert "no comment is edited" in first.detail and "GET /user answered 404" in second.detail


def test_an_uncertain_comment_already_made_is_not_posted_twice(forge: ForgeEmulator) -> None:
    """uncertain=True: our comment carrying the write's marker means done."""
    write = _write(body="once", sticky=False)
    [made] = _writes(forge, write)
    [again] = _writes(forge, write, uncertain=True)
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert again == Done(f"comment {comment.id} already there", str(comment.id))
    assert made.remote_id == again.remote_id


def test_an_uncertain_comment_is_not_fooled_by_a_forged_write_marker(
    forge: ForgeEmulator,
) -> None:
    """A comment by someone else with our write marker does not count as ours."""
    forge.github.writes.add_comment("octo", "hello", 7, write_marker(KEY), login="mallory")
    [done] = _writes(forge, _write(body="mine", sticky=False), uncertain=True)
    assert done.detail.endswith("created")
    assert len(forge.github.writes.comments("octo", "hello", 7)) == 2


def test_an_uncertain_comment_without_our_account_is_posted_and_says_so(
    forge: ForgeEmulator,
) -> None:
    """GET /user answers 403: the earlier try cannot be told apart, so the comment is posted."""
    forge.fail(r"/github/user$", 403, times=None)
    [done] = _writes(forge, _write(body="x", sticky=False), uncertain=True)
    assert done.detail.endswith(
        "created (no earlier try looked for: GitHub did not say which account we are, "
        "GET /user answered 403)"
    )
    assert _calls(forge) == ["GET /user", "POST /repos/octo/hello/issues/7/comments"]


def test_a_comment_longer_than_github_takes_is_cut_keeping_the_markers(
    forge: ForgeEmulator,
) -> None:
    """65 536 characters at most, a note saying so, the markers at the end."""
    [done] = _writes(forge, _write(body="word " * 20_000))
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert len(comment.body) == 65536
    assert "… (cut: the text has 100,000 characters" in comment.body
    assert comment.body.endswith(f"{worker_marker('reviewer')}\n{write_marker(KEY)}")
    assert done.detail.endswith("created")


def test_a_comment_on_an_issue_goes_to_the_issue(forge: ForgeEmulator) -> None:
    """Issues take comments like pull requests."""
    _writes(forge, _write(body="hi", place=ISSUE, sticky=False))
    assert _calls(forge) == ["POST /repos/octo/hello/issues/8/comments"]


# ------------------------------------------------------------------ labels and statuses


def test_labels_are_added_in_one_post_and_removed_one_by_one(forge: ForgeEmulator) -> None:
    """POST {"labels": [...]}; DELETE each, its name path-quoted; one not there is fine."""
    forge.github.writes.add_issue("octo", "hello", 9, labels=["needs review"])
    place = Place(forge="github", repo="octo/hello", number=9, kind="issue")
    write = _write("labels", place=place, add=("bug", "ready"), remove=("needs review", "wip"))
    [done] = _writes(forge, write)
    assert _calls(forge) == [
        "POST /repos/octo/hello/issues/9/labels",
        "DELETE /repos/octo/hello/issues/9/labels/needs%20review",
        "DELETE /repos/octo/hello/issues/9/labels/wip",
    ]
    assert _json(forge.requests[0]) == {"labels": ["bug", "ready"]}
    assert forge.github.writes.labels("octo", "hello", 9) == ["bug", "ready"]
    assert done == Done("labels added: bug, ready; removed: needs review; not there to remove: wip")


def test_removing_labels_from_no_issue_fails_for_good(forge: ForgeEmulator) -> None:
    """A 404 that is not "Label does not exist" is a failure."""
    place = Place(forge="github", repo="octo/hello", number=99, kind="issue")
    failure = _failure(forge, _write("labels", place=place, remove=("wip",)))
    assert not failure.transient
    assert (
        failure.message == "DELETE /repos/octo/hello/issues/99/labels/wip answered 404: Not Found"
    )


def test_a_status_is_set_on_the_head_commit(forge: ForgeEmulator) -> None:
    """POST /statuses/{head_sha} with state, the description cut to 140, the context."""
    write = _write("status", state="success", description="d" * 200, context="mecha/reviewer")
    [done] = _writes(forge, write)
    [post] = forge.requests
    assert post.path == f"/github/repos/octo/hello/statuses/{HEAD}"
    body = _json(post)
    assert body == {"state": "success", "description": "d" * 139 + "…", "context": "mecha/reviewer"}
    [status] = forge.github.writes.statuses("octo", "hello", HEAD)
    assert done == Done(
        f"status success set on {HEAD[:12]} (context mecha/reviewer)", str(status["id"])
    )


def test_a_status_without_a_head_commit_fails_for_good(forge: ForgeEmulator) -> None:
    """No head_sha: nothing asked of GitHub."""
    failure = _failure(forge, _write("status", place=ISSUE, state="success"))
    assert not failure.transient
    assert "no head commit" in failure.message
    assert forge.requests == []


def test_a_status_with_an_unknown_state_fails_for_good(forge: ForgeEmulator) -> None:
    """GitHub knows error, failure, pending and success."""
    failure = _failure(forge, _write("status", state="passed"))
    assert "'passed' is not one of error, failure, pending, success" in failure.message
    assert forge.requests == []


# ------------------------------------------------------------------ suggestions


def test_a_suggestion_becomes_a_review_on_the_right_line(forge: ForgeEmulator) -> None:
    """Files read, then one review: event COMMENT, the head commit, a suggestion block."""
    write = _write("suggestion", body="Use y = 4", diff=ONE_LINE)
    [done] = _writes(forge, write)
    assert _calls(forge) == [
        "GET /repos/octo/hello/pulls/7/files",
        "POST /repos/octo/hello/pulls/7/reviews",
    ]
    assert _json(forge.requests[1]) == {
        "event": "COMMENT",
        "body": f"Use y = 4\n\n{write_marker(KEY)}",
        "comments": [
            {"path": "app.py", "line": 3, "side": "RIGHT", "body": "```suggestion\ny = 4\n```"}
        ],
        "commit_id": HEAD,
    }
    [review] = forge.github.writes.reviews("octo", "hello", 7)
    assert done == Done(f"review {review.id} created with 1 suggestion", str(review.id))


def test_a_multi_line_suggestion_has_a_start_line(forge: ForgeEmulator) -> None:
    """start_line and start_side for a range."""
    _writes(forge, _write("suggestion", body="Rename", diff=TWO_LINES))
    [review] = forge.github.writes.reviews("octo", "hello", 7)
    assert review.comments == [
        {
            "path": "app.py",
            "line": 3,
            "side": "RIGHT",
            "body": "```suggestion\nx = 20\ny = 30\nz = 0\n```",
            "start_line": 2,
            "start_side": "RIGHT",
        }
    ]


def test_a_suggestion_outside_the_diff_is_a_comment_with_the_diff(forge: ForgeEmulator) -> None:
    """No review; one comment with the diff block, the reason and the write marker."""
    write = _write("suggestion", body="Fix it", diff=OUTSIDE)
    [done] = _writes(forge, write)
    assert _calls(forge)[-1] == "POST /repos/octo/hello/issues/7/comments"
    assert forge.github.writes.reviews("octo", "hello", 7) == []
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert comment.body.startswith(diff_block("Fix it", OUTSIDE))
    assert "- app.py line 40 is not in the pull request's diff" in comment.body
    assert comment.body.endswith(write_marker(KEY))
    assert done.detail == (
        f"comment {comment.id} created with the diff "
        "(app.py line 40 is not in the pull request's diff)"
    )


def test_a_review_github_refuses_falls_back_to_a_comment(forge: ForgeEmulator) -> None:
    """422 from the review: the diff is posted as a comment instead, saying why."""
    refusal = {"message": "Validation Failed", "errors": ["line must be part of the diff"]}
    forge.fail(r"/pulls/7/reviews$", 422, body=refusal)
    [done] = _writes(forge, _write("suggestion", body="Use y = 4", diff=ONE_LINE))
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert "POST /repos/octo/hello/pulls/7/reviews answered 422: Validation Failed" in done.detail
    assert done.remote_id == str(comment.id)
    assert "```diff\n" in comment.body


def test_an_uncertain_suggestion_finds_its_review(forge: ForgeEmulator) -> None:
    """uncertain=True: our review with the write's marker is there, nothing posted again."""
    write = _write("suggestion", body="Use y = 4", diff=ONE_LINE)
    [made] = _writes(forge, write)
    [again] = _writes(forge, write, uncertain=True)
    assert again == Done(f"review {made.remote_id} already there", made.remote_id)
    assert len(forge.github.writes.reviews("octo", "hello", 7)) == 1


def test_a_diff_comment_too_long_is_cut_with_its_code_block_closed(forge: ForgeEmulator) -> None:
    """The fence a cut leaves open is closed before the note and the marker."""
    diff = "--- a/big.txt\n+++ b/big.txt\n@@ -1,1 +1,1 @@\n-a\n" + "+line\n" * 20_000
    _writes(forge, _write("suggestion", place=ISSUE, body="Big", diff=diff))
    [comment] = forge.github.writes.comments("octo", "hello", 8)
    assert len(comment.body) == 65536
    text, _, note = comment.body.rpartition("\n\n… (cut: ")
    assert text.startswith("**Suggested commit:** Big\n\n```diff\n")
    assert text.endswith("\n```")
    assert note.endswith(write_marker(KEY))


def test_a_suggestion_on_an_issue_is_a_comment(forge: ForgeEmulator) -> None:
    """No pull request, no files to read: the diff as a comment."""
    _writes(forge, _write("suggestion", place=ISSUE, body="Fix", diff=ONE_LINE))
    assert _calls(forge) == ["POST /repos/octo/hello/issues/8/comments"]


# ------------------------------------------------------------------ a GitHub App


def _app_auth(forge: ForgeEmulator) -> GitHubAuth:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forge.github_app(APP_ID, key.public_key())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return GitHubAuth.app(APP_ID, pem)


def test_a_github_app_edits_its_bots_sticky_comment(forge: ForgeEmulator) -> None:
    """Installation token for writes; GET /app with the JWT names "<slug>[bot]"."""
    forge.github.writes.app_slug = "mecha-review"
    auth = _app_auth(forge)
    place = Place(forge="github", repo="octo/hello", number=7, installation_id="31")
    writes = (_write(body="v1", place=place), _write(body="v2", place=place, key="d" * 32))
    _, edited = _writes(forge, *writes, auth=auth)
    [comment] = forge.github.writes.comments("octo", "hello", 7)
    assert (comment.login, edited.detail) == ("mecha-review[bot]", f"comment {comment.id} edited")
    app = next(r for r in forge.requests if r.path == "/github/app")
    claims = jwt.decode(
        app.headers["authorization"].removeprefix("Bearer "),
        options={"verify_signature": False},
    )
    assert claims["iss"] == APP_ID
    [(_, token)] = forge.issued_tokens()
    assert forge.requests[-1].headers["authorization"] == f"Bearer {token}"


def test_a_github_app_without_an_installation_fails_for_good(forge: ForgeEmulator) -> None:
    """No installation_id: nothing asked."""
    failure = _failure(forge, _write(body="x"), auth=_app_auth(forge))
    assert not failure.transient
    assert "installation_id" in failure.message
    assert forge.requests == []


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_429_are_transient(forge: ForgeEmulator, status: int) -> None:
    """5xx and 429: try again later."""
    forge.fail(r"/comments$", status)
    failure = _failure(forge, _write(body="x", sticky=False))
    assert (failure.transient, failure.status) == (True, status)
    assert failure.message.startswith(f"POST /repos/octo/hello/issues/7/comments answered {status}")


def test_a_secondary_rate_limit_with_retry_after_is_transient(forge: ForgeEmulator) -> None:
    """403 with Retry-After: wait that long."""
    forge.fail(r"/comments$", 403, headers={"Retry-After": "30"})
    failure = _failure(forge, _write(body="x", sticky=False))
    assert (failure.transient, failure.retry_after, failure.status) == (True, 30.0, 403)


def test_retry_after_may_be_a_date(forge: ForgeEmulator) -> None:
    """Retry-After as an HTTP date: the seconds until then."""
    when = formatdate(time.time() + 90, usegmt=True)
    forge.fail(r"/comments$", 429, headers={"Retry-After": when})
    failure = _failure(forge, _write(body="x", sticky=False))
    assert failure.transient
    assert failure.retry_after is not None and 80 <= failure.retry_after <= 91


def test_an_exhausted_rate_limit_waits_until_the_reset(forge: ForgeEmulator) -> None:
    """403 with X-RateLimit-Remaining 0: retry_after is the time to X-RateLimit-Reset."""
    reset = int(time.time()) + 120
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    forge.fail(r"/comments$", 403, headers=headers, body={"message": "API rate limit exceeded"})
    failure = _failure(forge, _write(body="x", sticky=False))
    assert failure.transient
    assert failure.retry_after is not None and 100 <= failure.retry_after <= 121


def test_a_secondary_rate_limit_message_alone_is_transient(forge: ForgeEmulator) -> None:
    """GitHub's message, no headers: wait a minute, as GitHub asks."""
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    forge.fail(r"/comments$", 403, body={"message": message})
    failure = _failure(forge, _write(body="x", sticky=False))
    assert (failure.transient, failure.retry_after) == (True, 60.0)


@pytest.mark.parametrize(
    ("status", "message"),
    [(403, "Resource not accessible by integration"), (404, "Not Found"), (422, "Bad body")],
)
def test_other_client_errors_fail_for_good(forge: ForgeEmulator, status: int, message: str) -> None:
    """Plain 403, 404, 422: the forge's message, not transient."""
    forge.fail(r"/comments$", status, body={"message": message})
    failure = _failure(forge, _write(body="x", sticky=False))
    assert not failure.transient
    assert failure.status == status
    assert failure.message == (
        f"POST /repos/octo/hello/issues/7/comments answered {status}: {message}"
    )


def test_a_token_the_forge_echoes_is_redacted(forge: ForgeEmulator) -> None:
    """The message never carries the token, even when GitHub quotes it."""
    forge.fail(r"/comments$", 401, body={"message": f"Bad credentials {TOKEN}"})
    failure = _failure(forge, _write(body="x", sticky=False))
    assert failure.message.endswith("answered 401: Bad credentials [REDACTED]")


def test_a_timeout_is_transient(forge: ForgeEmulator) -> None:
    """No answer in time: transient, no status."""
    forge.fail(r"/comments$", 0, delay=2.0)
    failure = _failure(forge, _write(body="x", sticky=False), timeout=0.3)
    assert (failure.transient, failure.status) == (True, 0)
    assert "timed out after 0.3 s" in failure.message


def test_a_refused_connection_is_transient(forge: ForgeEmulator) -> None:
    """Nobody listening: transient."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failure = _failure(forge, _write(body="x", sticky=False), api_url=f"http://127.0.0.1:{port}")
    assert failure.transient
    assert "cannot connect to 127.0.0.1" in failure.message


@pytest.mark.parametrize(
    ("place", "reason"),
    [
        (Place(forge="gitlab", repo="g/p", number=1), "not GitHub"),
        (Place(forge="github", repo="hello", number=1), "not an owner/name repository"),
        (Place(forge="github", repo="octo/hello"), "no pull request or issue number"),
    ],
)
def test_a_place_github_cannot_write_to_fails_for_good(
    forge: ForgeEmulator, place: Place, reason: str
) -> None:
    """Nothing asked of GitHub."""
    failure = _failure(forge, _write(body="x", place=place))
    assert not failure.transient and reason in failure.message
    assert forge.requests == []


# ------------------------------------------------------------------ previews


def _preview(write: Write) -> str:
    async def run() -> str:
        async with httpx.AsyncClient() as http:
            writer = GitHubWriter(http, api_url="http://127.0.0.1:9", auth=GitHubAuth.token(""))
            return writer.preview(write)

    return asyncio.run(run())


def test_previews_name_the_requests_without_making_them() -> None:
    """One line per write, as the dry run shows it."""
    comment = _write(body="x" * 1200, sticky=False)
    assert len(marked_body(comment, comment.body)) == 1255
    assert _preview(comment) == "POST /repos/octo/hello/issues/7/comments (1,255 characters)"
    assert _preview(_write(body="hi")).endswith(
        "(88 characters; sticky: edits this worker's comment instead)"
    )
    labels = _write("labels", add=("bug",), remove=("wip",))
    assert _preview(labels) == (
        'POST /repos/octo/hello/issues/7/labels ["bug"]; '
        "DELETE /repos/octo/hello/issues/7/labels/wip"
    )
    status_place = Place(forge="github", repo="o/r", number=7, head_sha="abc123")
    status = _write(
        "status", place=status_place, state="success", description="looks good", context="mecha/x"
    )
    assert (
        _preview(status) == 'POST /repos/o/r/statuses/abc123 success "looks good" (context mecha/x)'
    )
    suggestion = _write("suggestion", body="m", diff=ONE_LINE + OUTSIDE.split("\n", 2)[2])
    assert _preview(suggestion) == "POST /repos/octo/hello/pulls/7/reviews (2 suggestions)"
    assert _preview(_write(body="x", place=Place(forge="github", repo="o"))).startswith("nothing: ")
