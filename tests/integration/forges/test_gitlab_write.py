"""GitLabWriter against the forge API emulator: the exact requests, stickiness, failures."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from mecha.forges.gitlab.write import GitLabWriter
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.writes import Place, Write, marked_body, worker_marker, write_marker
from mecha.testing.forge.api import FileChange, ForgeEmulator

TOKEN = "glpat-" + "T" * 20
BASE, HEAD = "1a" * 20, "2b" * 20
KEY, OTHER_KEY = "a" * 32, "b" * 32
API = "/gitlab/api/v4"
MR = "/projects/12/merge_requests/5"
#: head lines 1 "ctx one", 2 "new two", 3 "new three", 4 "ctx three" (old line 3)
PATCH = "@@ -1,3 +1,4 @@\n ctx one\n-old two\n+new two\n+new three\n ctx three\n"
PLACE = Place(forge="gitlab", repo="group/app", project_id="12", number=5, kind="pull",
              head_sha=HEAD, base_sha=BASE)  # fmt: skip
BY_PATH = replace(PLACE, project_id="")
ISSUE = replace(PLACE, number=3, kind="issue")
TWO_HUNKS = """diff --git a/src/app.py b/src/app.py
--- a/src/app.py
+++ b/src/app.py
@@ -2,2 +2,2 @@
-new two
-new three
+better two
+better three
@@ -4 +4 @@
-ctx three
+ctx 3
"""
ELSEWHERE = """diff --git a/src/other.py b/src/other.py
--- a/src/other.py
+++ b/src/other.py
@@ -10 +10 @@
-x = 1
+x = 2
"""


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """Merge request group/app!5 (project 12) changing src/app.py, and issue group/app#3."""
    with ForgeEmulator(gitlab_token=TOKEN) as emulator:
        emulator.add_merge_request(
            "group/app", 5, base_sha=BASE, head_sha=HEAD, project_id=12,
            files=[FileChange("src/app.py", PATCH)],
        )  # fmt: skip
        with emulator.lock:
            emulator.gitlab.add_issue("group/app", 3)
        yield emulator


def _comment(body: str = "Looks good.", **fields: Any) -> Write:
    values: dict[str, Any] = {"key": KEY, "worker": "reviewer", "place": PLACE, **fields}
    return Write(action="comment", body=body, **values)


def _write(forge: ForgeEmulator, *writes: Write, uncertain: bool = False, **options: Any) -> Done:
    """Each write in turn with one writer; the last one's Done."""

    async def run() -> Done:
        async with httpx.AsyncClient() as http:
            url = options.pop("base_url", forge.gitlab_url)
            writer = GitLabWriter(http, base_url=url, token=TOKEN, **options)
            done = [await writer.write(write, uncertain=uncertain) for write in writes]
            return done[-1]

    return asyncio.run(run())


def _failure(forge: ForgeEmulator, write: Write, **options: Any) -> WriteFailure:
    with pytest.raises(WriteFailure) as caught:
        _write(forge, write, **options)
    assert TOKEN not in caught.value.message
    return caught.value


def _calls(forge: ForgeEmulator, since: int = 0) -> list[tuple[str, str]]:
    return [(r.method, r.path.removeprefix(API)) for r in forge.requests[since:]]


def _sent(forge: ForgeEmulator, index: int = -1) -> Any:
    return json.loads(forge.requests[index].body)


def _bodies(forge: ForgeEmulator, iid: int = 5, kind: str = "merge_request") -> list[str]:
    with forge.lock:
        return [note.body for note in forge.gitlab.notes("group/app", iid, kind)]


# --- comments ---------------------------------------------------------------------------------


def test_a_comment_is_one_marked_note_by_project_id(forge: ForgeEmulator) -> None:
    write = _comment(sticky=False)
    done = _write(forge, write)
    assert _calls(forge) == [("POST", f"{MR}/notes")]
    request = forge.requests[0]
    assert (request.headers["private-token"], request.headers["content-type"]) == (
        TOKEN, "application/json",
    )  # fmt: skip
    assert _sent(forge) == {"body": marked_body(write, "Looks good.")}
    assert _bodies(forge) == [marked_body(write, "Looks good.")]
    assert done == Done(f"note {done.remote_id} on group/app!5 created", done.remote_id)


def test_without_a_project_id_the_path_is_url_encoded(forge: ForgeEmulator) -> None:
    _write(forge, _comment(sticky=False, place=BY_PATH))
    assert _calls(forge) == [("POST", "/projects/group%2Fapp/merge_requests/5/notes")]


def test_a_comment_on_an_issue_is_an_issue_note(forge: ForgeEmulator) -> None:
    _write(forge, _comment(sticky=False, place=ISSUE))
    assert _calls(forge) == [("POST", "/projects/12/issues/3/notes")]
    assert len(_bodies(forge, 3, "issue")) == 1


def test_a_sticky_comment_is_made_then_edited(forge: ForgeEmulator) -> None:
    first = _write(forge, _comment("First."))
    assert _calls(forge) == [
        ("GET", "/user"), ("GET", f"{MR}/notes"), ("POST", f"{MR}/notes"),
    ]  # fmt: skip
    assert forge.requests[1].query == {"sort": "asc", "order_by": "created_at",
                                       "per_page": "100", "page": "1"}  # fmt: skip
    second = _write(forge, _comment("Second.", key=OTHER_KEY))
    assert _calls(forge, 3) == [
        ("GET", "/user"), ("GET", f"{MR}/notes"), ("PUT", f"{MR}/notes/{first.remote_id}"),
    ]  # fmt: skip
    edited = marked_body(_comment("Second.", key=OTHER_KEY), "Second.")
    assert _sent(forge) == {"body": edited}
    assert _bodies(forge) == [edited]
    assert second == Done(f"note {first.remote_id} on group/app!5 edited", first.remote_id)


def test_our_username_is_asked_once_per_writer(forge: ForgeEmulator) -> None:
    _write(forge, _comment("One."), _comment("Two."))
    assert [path for _, path in _calls(forge)].count("/user") == 1


def test_an_identical_sticky_comment_is_not_sent_again(forge: ForgeEmulator) -> None:
    first = _write(forge, _comment())
    again = _write(forge, _comment())
    assert ("PUT", f"{MR}/notes/{first.remote_id}") not in _calls(forge)
    assert [m for m, _ in _calls(forge)].count("POST") == 1
    assert again.detail == f"note {first.remote_id} on group/app!5 already says this"


def test_a_marked_note_by_another_account_is_never_edited(forge: ForgeEmulator) -> None:
    forged = f"Ha.\n\n{worker_marker('reviewer')}"
    with forge.lock:
        forge.gitlab.add_note("group/app", 5, forged, author="mallory")
    _write(forge, _comment())
    assert [m for m, _ in _calls(forge)] == ["GET", "GET", "POST"]
    assert _bodies(forge) == [forged, marked_body(_comment(), "Looks good.")]


def test_system_notes_are_not_ours_to_edit(forge: ForgeEmulator) -> None:
    with forge.lock:
        forge.gitlab.add_note(
            "group/app", 5, worker_marker("reviewer"), author="mecha-bot", system=True
        )
    _write(forge, _comment())
    assert [m for m, _ in _calls(forge)][-1] == "POST"
    assert len(_bodies(forge)) == 2


def test_our_note_is_found_on_a_later_page(forge: ForgeEmulator) -> None:
    first = _write(forge, _comment("Mine."))
    with forge.lock:
        for n in range(120):
            forge.gitlab.add_note("group/app", 5, f"chatter {n}", author="alice")
    _write(forge, _comment("Mine, later."))
    assert _calls(forge)[-1] == ("PUT", f"{MR}/notes/{first.remote_id}")
    assert _bodies(forge)[0].startswith("Mine, later.")


def test_an_uncertain_comment_already_made_is_not_made_twice(forge: ForgeEmulator) -> None:
    write = _comment(sticky=False)
    first = _write(forge, write)
    again = _write(forge, write, uncertain=True)
    assert [m for m, _ in _calls(forge)] == ["POST", "GET", "GET"]
    assert again == Done(f"note {first.remote_id} on group/app!5 was made before", first.remote_id)
    assert len(_bodies(forge)) == 1


def test_an_uncertain_comment_not_made_yet_is_made(forge: ForgeEmulator) -> None:
    with forge.lock:
        forge.gitlab.add_note("group/app", 5, f"copied {write_marker(KEY)}", author="mallory")
    _write(forge, _comment(sticky=False), uncertain=True)
    assert [m for m, _ in _calls(forge)] == ["GET", "GET", "POST"]
    assert len(_bodies(forge)) == 2


def test_without_our_username_a_note_is_posted_never_edited(forge: ForgeEmulator) -> None:
    _write(forge, _comment("First."))
    forge.fail(r"/api/v4/user$", 403, body={"message": "403 Forbidden - insufficient_scope"})
    done = _write(forge, _comment("Second."))
    assert _calls(forge, 3) == [("GET", "/user"), ("POST", f"{MR}/notes")]
    assert len(_bodies(forge)) == 2
    assert "our GitLab username is unknown" in done.detail
    assert "403: 403 Forbidden - insufficient_scope" in done.detail


def test_a_comment_too_long_for_gitlab_is_cut_to_fit(forge: ForgeEmulator) -> None:
    write = _comment("x" * 1_200_000)
    _write(forge, write)
    (body,) = _bodies(forge)
    assert len(body) <= 1_000_000
    assert "cut here: a GitLab note holds at most 1,000,000 characters" in body
    assert body.endswith(f"{worker_marker('reviewer')}\n{write_marker(KEY)}")


# --- labels -----------------------------------------------------------------------------------


def test_labels_are_one_put_with_comma_separated_lists(forge: ForgeEmulator) -> None:
    write = Write(key=KEY, worker="triage", action="labels", place=PLACE,
                  add=("bug", "needs review"), remove=("wip",))  # fmt: skip
    done = _write(forge, write)
    assert _calls(forge) == [("PUT", MR)]
    assert _sent(forge) == {"add_labels": "bug,needs review", "remove_labels": "wip"}
    assert forge.gitlab.labels(12, 5) == ["bug", "needs review"]
    assert (
        done.detail
        == "labels on group/app!5: added bug,needs review; removed wip (now: bug, needs review)"
    )


def test_labels_on_an_issue_by_path(forge: ForgeEmulator) -> None:
    write = Write(key=KEY, worker="triage", action="labels", place=replace(ISSUE, project_id=""),
                  add=("bug",))  # fmt: skip
    _write(forge, write)
    assert _calls(forge) == [("PUT", "/projects/group%2Fapp/issues/3")]
    assert _sent(forge) == {"add_labels": "bug"}


def test_a_label_holding_a_comma_is_refused(forge: ForgeEmulator) -> None:
    write = Write(key=KEY, worker="t", action="labels", place=PLACE, add=("ok", "a,b"))
    failure = _failure(forge, write)
    assert (failure.transient, forge.requests) == (False, [])
    assert "'a,b'" in failure.message


def test_no_labels_to_change_sends_nothing(forge: ForgeEmulator) -> None:
    done = _write(forge, Write(key=KEY, worker="t", action="labels", place=PLACE, add=(" ",)))
    assert (forge.requests, done.detail) == ([], "labels on group/app!5: nothing to change")


# --- statuses ---------------------------------------------------------------------------------


def _status(state: str, **fields: Any) -> Write:
    values: dict[str, Any] = {"key": KEY, "worker": "reviewer", "place": PLACE,
                              "description": "2 problems", "context": "mecha/reviewer",
                              **fields}  # fmt: skip
    return Write(action="status", state=state, **values)


@pytest.mark.parametrize(
    ("state", "gitlab"),
    [("success", "success"), ("pending", "pending"), ("failure", "failed"), ("error", "failed")],
)
def test_a_status_maps_to_gitlabs_states(forge: ForgeEmulator, state: str, gitlab: str) -> None:
    done = _write(forge, _status(state))
    assert _calls(forge) == [("POST", f"/projects/12/statuses/{HEAD}")]
    assert _sent(forge) == {"state": gitlab, "name": "mecha/reviewer", "description": "2 problems"}
    (made,) = forge.gitlab.statuses(12, HEAD)
    assert (made["status"], done.remote_id) == (gitlab, str(made["id"]))
    assert done.detail == f"status mecha/reviewer on {HEAD[:12]} set to {gitlab}"


def test_a_status_by_project_path_with_a_cut_description(forge: ForgeEmulator) -> None:
    _write(forge, _status("success", place=BY_PATH, description="d" * 300, context=""))
    assert _calls(forge) == [("POST", f"/projects/group%2Fapp/statuses/{HEAD}")]
    sent = _sent(forge)
    assert (sent["name"], len(sent["description"])) == ("mecha", 255)


def test_reposting_a_pending_status_counts_as_done(forge: ForgeEmulator) -> None:
    _write(forge, _status("pending"))
    done = _write(forge, _status("pending"), uncertain=True)
    assert done.detail == f"status mecha/reviewer on {HEAD[:12]} was pending already"
    assert len(forge.gitlab.statuses(12, HEAD)) == 1


def test_a_status_without_a_head_commit_is_refused(forge: ForgeEmulator) -> None:
    failure = _failure(forge, _status("success", place=replace(PLACE, head_sha="")))
    assert not failure.transient
    assert "needs the head commit" in failure.message
    assert forge.requests == []


# --- suggestions ------------------------------------------------------------------------------


def _suggestion(diff: str = TWO_HUNKS, **fields: Any) -> Write:
    values: dict[str, Any] = {"key": KEY, "worker": "fixer", "place": PLACE, **fields}
    return Write(action="suggestion", body="Tidy the names\n\nBecause.", diff=diff, **values)


def _positions(forge: ForgeEmulator) -> list[dict[str, Any]]:
    return [
        json.loads(r.body)["position"]
        for r in forge.requests
        if r.path.endswith("/discussions") and r.method == "POST"
    ]


def test_suggestions_become_diff_threads_on_the_diff_refs(forge: ForgeEmulator) -> None:
    done = _write(forge, _suggestion())
    assert _calls(forge) == [
        ("GET", MR), ("GET", f"{MR}/diffs"),
        ("POST", f"{MR}/discussions"), ("POST", f"{MR}/discussions"),
    ]  # fmt: skip
    assert forge.requests[1].query == {"per_page": "30", "page": "1"}
    refs = {"position_type": "text", "base_sha": BASE, "start_sha": BASE, "head_sha": HEAD,
            "old_path": "src/app.py", "new_path": "src/app.py"}  # fmt: skip
    assert _positions(forge) == [{**refs, "new_line": 3}, {**refs, "new_line": 4, "old_line": 3}]
    threads = forge.gitlab.discussions(12, 5)
    first, second = (thread[0].body for thread in threads)
    message = "**Suggested commit:** Tidy the names\n\nBecause.\n\n"
    assert first.startswith(f"{message}```suggestion:-1+0\nbetter two\nbetter three\n```")
    assert second.startswith("```suggestion:-0+0\nctx 3\n```")
    assert all(write_marker(KEY) in body for body in (first, second))
    assert done.detail == "2 suggestion thread(s) on group/app!5"
    assert done.remote_id == ",".join(thread[0].discussion_id for thread in threads)


def test_hunks_off_the_diff_go_in_one_note(forge: ForgeEmulator) -> None:
    done = _write(forge, _suggestion(TWO_HUNKS + ELSEWHERE))
    assert _calls(forge)[-1] == ("POST", f"{MR}/notes")
    *threads, note = _bodies(forge)
    assert len(threads) == 2
    assert note.startswith("**Suggested commit:** Tidy the names")
    assert "+x = 2" in note
    assert "better two" not in note
    assert write_marker(KEY) in note
    assert "not placed: src/other.py is not changed by the pull request" in done.detail


def test_a_thread_gitlab_refuses_falls_back_to_a_note_with_the_whole_diff(
    forge: ForgeEmulator,
) -> None:
    refused = {"message": '400 Bad request - Note {:line_code=>["must be a valid line code"]}'}
    forge.fail(r"/discussions$", 400, body=refused, times=1)
    done = _write(forge, _suggestion())
    assert len(forge.gitlab.discussions(12, 5)) == 2  # the second thread and the note
    (note,) = (b for b in _bodies(forge) if b.startswith("**Suggested commit:**"))
    assert "better two" in note
    assert "ctx 3" in note
    assert "GitLab refused 1 thread(s)" in done.detail


def test_a_suggestion_on_an_issue_is_a_diff_note(forge: ForgeEmulator) -> None:
    _write(forge, _suggestion(place=ISSUE))
    assert _calls(forge) == [("POST", "/projects/12/issues/3/notes")]
    (note,) = _bodies(forge, 3, "issue")
    assert "```diff\n" in note
    assert "+better two" in note


def test_an_uncertain_suggestion_skips_what_was_made(forge: ForgeEmulator) -> None:
    first = _write(forge, _suggestion(TWO_HUNKS + ELSEWHERE))
    since = len(forge.requests)
    again = _write(forge, _suggestion(TWO_HUNKS + ELSEWHERE), uncertain=True)
    assert [m for m, _ in _calls(forge, since)] == ["GET"] * 4
    assert again.remote_id == first.remote_id
    assert len(_bodies(forge)) == 3


def test_an_uncertain_suggestion_makes_only_the_missing_parts(forge: ForgeEmulator) -> None:
    _write(forge, _suggestion(TWO_HUNKS + ELSEWHERE))
    with forge.lock:
        side = forge.gitlab.noteables[(12, "merge_request", 5)]
        side.notes = side.notes[:1]  # the second thread and the note were never made
    since = len(forge.requests)
    _write(forge, _suggestion(TWO_HUNKS + ELSEWHERE), uncertain=True)
    posted = [path for method, path in _calls(forge, since) if method == "POST"]
    assert posted == [f"{MR}/discussions", f"{MR}/notes"]
    assert len(_bodies(forge)) == 3


def test_an_uncertain_suggestion_ignores_threads_by_another_account(forge: ForgeEmulator) -> None:
    _write(forge, _suggestion())
    with forge.lock:
        for note in forge.gitlab.noteables[(12, "merge_request", 5)].notes:
            note.author = "mallory"
    _write(forge, _suggestion(), uncertain=True)
    assert len(forge.gitlab.discussions(12, 5)) == 4


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(forge: ForgeEmulator, status: int) -> None:
    forge.fail(r"/notes$", status)
    failure = _failure(forge, _comment(sticky=False))
    assert (failure.transient, failure.status, failure.retry_after) == (True, status, None)
    assert f"GitLab POST note on group/app!5 answered {status}" in failure.message


def test_429_waits_as_retry_after_says(forge: ForgeEmulator) -> None:
    forge.fail(r"/notes$", 429, headers={"Retry-After": "30"},
               body={"message": {"error": "Too many requests. Try again later."}})  # fmt: skip
    failure = _failure(forge, _comment(sticky=False))
    assert (failure.transient, failure.status, failure.retry_after) == (True, 429, 30.0)
    assert "429: error: Too many requests. Try again later." in failure.message


def test_429_without_retry_after_waits_for_ratelimit_reset(forge: ForgeEmulator) -> None:
    forge.fail(r"/statuses/", 429, headers={"RateLimit-Reset": str(int(time.time()) + 60)})
    failure = _failure(forge, _status("success"))
    assert failure.transient
    assert failure.retry_after is not None
    assert 50 <= failure.retry_after <= 61


def test_a_status_update_in_progress_is_transient(forge: ForgeEmulator) -> None:
    forge.fail(r"/statuses/", 409,
               body={"message": "Another update to this commit status is in progress"})  # fmt: skip
    assert _failure(forge, _status("success")).transient


def test_no_answer_is_transient(forge: ForgeEmulator) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    failure = _failure(forge, _comment(sticky=False), base_url=f"http://127.0.0.1:{port}")
    assert (failure.transient, failure.status) == (True, 0)
    assert "cannot connect" in failure.message


def test_a_slow_answer_times_out_as_transient(forge: ForgeEmulator) -> None:
    forge.fail(r"/notes$", 0, delay=2.0)
    failure = _failure(forge, _comment(sticky=False), timeout=0.3)
    assert (failure.transient, failure.status) == (True, 0)
    assert "timed out after 0.3 s" in failure.message


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (403, {"message": "403 Forbidden"}, "403: 403 Forbidden"),
        (404, {"message": "404 Project Not Found"}, "404: 404 Project Not Found"),
        (400, {"error": "body is missing"}, "400: body is missing"),
        (400, {"message": {"base": ["is invalid"], "note": []}}, "400: base: is invalid"),
        (
            422,
            {"message": ["first problem", "second problem"]},
            "422: first problem, second problem",
        ),
    ],
)
def test_refusals_are_permanent_with_gitlabs_message(
    forge: ForgeEmulator, status: int, body: Any, said: str
) -> None:
    forge.fail(r"/notes$", status, body=body)
    failure = _failure(forge, _comment(sticky=False))
    assert (failure.transient, failure.status, failure.retry_after) == (False, status, None)
    assert failure.message == f"GitLab POST note on group/app!5 answered {said}"


def test_an_unknown_project_is_gitlabs_404(forge: ForgeEmulator) -> None:
    failure = _failure(forge, _comment(sticky=False, place=replace(PLACE, project_id="999")))
    assert (failure.transient, failure.status) == (False, 404)
    assert "404 Project Not Found" in failure.message


def test_a_token_echoed_by_gitlab_is_not_repeated(forge: ForgeEmulator) -> None:
    forge.fail(r"/notes$", 401, body={"message": f"token {TOKEN} is revoked"})
    failure = _failure(forge, _comment(sticky=False))
    assert "token [REDACTED] is revoked" in failure.message


def test_a_write_without_a_number_is_refused(forge: ForgeEmulator) -> None:
    failure = _failure(forge, _comment(place=replace(PLACE, number=0)))
    assert not failure.transient
    assert "needs a merge request or issue" in failure.message


# --- previews ---------------------------------------------------------------------------------


def _preview(write: Write) -> str:
    async def run() -> str:
        async with httpx.AsyncClient() as http:
            return GitLabWriter(http, base_url="https://gitlab.example", token="").preview(write)

    return asyncio.run(run())


def test_previews_name_the_requests() -> None:
    comment = _comment("x" * 1234, place=BY_PATH, sticky=False)
    size = len(marked_body(comment, comment.body))
    assert (
        _preview(comment)
        == f"POST /projects/group%2Fapp/merge_requests/5/notes ({size:,} characters)"
    )
    assert _preview(_comment()).endswith(
        ", or PUT /projects/12/merge_requests/5/notes/:note_id if this worker's note is there"
    )
    labels = Write(key=KEY, worker="t", action="labels", place=PLACE, add=("bug",), remove=("wip",))
    assert _preview(labels) == "PUT /projects/12/merge_requests/5 add_labels=bug remove_labels=wip"
    assert _preview(_status("failure")) == (
        f'POST /projects/12/statuses/{HEAD} failed "2 problems" (name mecha/reviewer)'
    )
    assert _preview(_suggestion()).startswith(
        "POST /projects/12/merge_requests/5/discussions for each of the 2 hunk(s)"
    )
    assert _preview(_suggestion(place=ISSUE)).startswith("POST /projects/12/issues/3/notes (")
