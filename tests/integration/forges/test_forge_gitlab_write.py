"""The GitLab emulator's write side, over real HTTP: notes, labels, statuses, threads, /user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mecha.testing.forge.api import FileChange, ForgeEmulator

TOKEN = "glpat-" + "W" * 20
ALICE = "glpat-" + "A" * 20
BASE, HEAD = "1a" * 20, "2b" * 20
#: old 1-3, new 1-4: line 1 unchanged, old 2 removed, new 2-3 added, old 3 = new 4 unchanged
PATCH = "@@ -1,3 +1,4 @@\n ctx one\n-old two\n+new two\n+new three\n ctx three\n"
MR = "/projects/12/merge_requests/5"
LINE_CODE = '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}'


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """An emulator with merge request group/app!5 (project 12) and issue group/app#3."""
    with ForgeEmulator(gitlab_token=TOKEN) as emulator:
        emulator.add_merge_request(
            "group/app", 5, base_sha=BASE, head_sha=HEAD, project_id=12,
            files=[FileChange("src/app.py", PATCH)],
        )  # fmt: skip
        with emulator.lock:
            emulator.gitlab.add_issue("group/app", 3, title="Broken")
        yield emulator


@pytest.fixture
def api(forge: ForgeEmulator) -> Iterator[httpx.Client]:
    """A client for the emulator's GitLab API, signed in with TOKEN."""
    url = f"{forge.gitlab_url}/api/v4"
    with httpx.Client(base_url=url, headers={"PRIVATE-TOKEN": TOKEN}) as client:
        yield client


def _position(**fields: Any) -> dict[str, Any]:
    position = {"position_type": "text", "base_sha": BASE, "start_sha": BASE, "head_sha": HEAD,
                "old_path": "src/app.py", "new_path": "src/app.py"}  # fmt: skip
    return {**position, **fields}


# --- notes ------------------------------------------------------------------------------------


def test_a_note_is_made_by_the_tokens_user(api: httpx.Client, forge: ForgeEmulator) -> None:
    answer = api.post(f"{MR}/notes", json={"body": "hello"})
    assert answer.status_code == 201
    note = answer.json()
    assert (note["body"], note["author"]["username"], note["system"]) == (
        "hello",
        "mecha-bot",
        False,
    )
    assert (note["noteable_type"], note["noteable_iid"], note["type"]) == ("MergeRequest", 5, None)
    assert [n.body for n in forge.gitlab.notes("group/app", 5)] == ["hello"]


def test_a_note_may_come_as_a_form_or_in_the_query(api: httpx.Client, forge: ForgeEmulator) -> None:
    assert api.post(f"{MR}/notes", data={"body": "from a form"}).status_code == 201
    assert api.post(f"{MR}/notes", params={"body": "from the query"}).status_code == 201
    assert [n.body for n in forge.gitlab.notes(12, 5)] == ["from a form", "from the query"]


def test_a_note_without_a_body_is_refused_as_grape_does(api: httpx.Client) -> None:
    answer = api.post(f"{MR}/notes", json={})
    assert (answer.status_code, answer.json()) == (400, {"error": "body is missing"})


def test_a_blank_or_oversized_note_is_refused_as_the_model_does(api: httpx.Client) -> None:
    blank = api.post(f"{MR}/notes", json={"body": "  "})
    assert blank.status_code == 400
    assert "can't be blank" in blank.json()["message"]
    huge = api.post(f"{MR}/notes", json={"body": "x" * 1_000_001})
    assert huge.status_code == 400
    assert "is too long (maximum is 1000000 characters)" in huge.json()["message"]
    assert api.post(f"{MR}/notes", json={"body": "x" * 1_000_000}).status_code == 201


def test_issue_notes_need_a_seeded_issue(api: httpx.Client, forge: ForgeEmulator) -> None:
    missing = api.post("/projects/12/issues/99/notes", json={"body": "hi"})
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Issue Not Found"})
    made = api.post("/projects/group%2Fapp/issues/3/notes", json={"body": "hi"})
    assert (made.status_code, made.json()["noteable_type"]) == (201, "Issue")
    assert [n.body for n in forge.gitlab.notes("group/app", 3, "issue")] == ["hi"]


def test_notes_are_listed_newest_first_and_paged(api: httpx.Client, forge: ForgeEmulator) -> None:
    with forge.lock:
        for n in range(5):
            forge.gitlab.add_note("group/app", 5, f"note {n}")
    first = api.get(f"{MR}/notes", params={"per_page": 2})
    assert [n["body"] for n in first.json()] == ["note 4", "note 3"]
    assert (first.headers["x-next-page"], first.headers["x-total"]) == ("2", "5")
    last = api.get(f"{MR}/notes", params={"per_page": 2, "page": 3, "sort": "asc"})
    assert [n["body"] for n in last.json()] == ["note 4"]
    assert last.headers["x-next-page"] == ""


def test_a_bad_sort_is_refused(api: httpx.Client) -> None:
    answer = api.get(f"{MR}/notes", params={"sort": "up"})
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "sort does not have a valid value"},
    )


def test_a_note_is_edited_by_its_author(api: httpx.Client) -> None:
    first = api.post(f"{MR}/notes", json={"body": "one"}).json()
    api.post(f"{MR}/notes", json={"body": "two"})
    edited = api.put(f"{MR}/notes/{first['id']}", json={"body": "one, edited"})
    assert (edited.status_code, edited.json()["body"]) == (200, "one, edited")
    by_update = api.get(f"{MR}/notes", params={"sort": "asc", "order_by": "updated_at"}).json()
    assert [n["body"] for n in by_update] == ["two", "one, edited"]


def test_another_users_note_or_a_system_note_cannot_be_edited(
    api: httpx.Client, forge: ForgeEmulator
) -> None:
    with forge.lock:
        theirs = forge.gitlab.add_note("group/app", 5, "mine", author="alice")
        system = forge.gitlab.add_note("group/app", 5, "added 1 commit", system=True)
    for note_id in (theirs, system):
        answer = api.put(f"{MR}/notes/{note_id}", json={"body": "taken over"})
        assert (answer.status_code, answer.json()) == (403, {"message": "403 Forbidden"})
    assert [n.body for n in forge.gitlab.notes(12, 5)] == ["mine", "added 1 commit"]


def test_editing_a_missing_note_or_without_a_body_is_refused(api: httpx.Client) -> None:
    assert api.put(f"{MR}/notes/424242", json={"body": "x"}).status_code == 404
    note = api.post(f"{MR}/notes", json={"body": "one"}).json()
    empty = api.put(f"{MR}/notes/{note['id']}", json={"body": ""})
    assert (empty.status_code, empty.json()) == (400, {"error": "body is empty"})


def test_each_token_writes_as_its_user(api: httpx.Client, forge: ForgeEmulator) -> None:
    with forge.lock:
        forge.gitlab.add_user(ALICE, "alice")
    as_alice = api.post(f"{MR}/notes", json={"body": "hi"}, headers={"PRIVATE-TOKEN": ALICE})
    assert as_alice.json()["author"]["username"] == "alice"
    assert api.get("/user", headers={"PRIVATE-TOKEN": ALICE}).json()["username"] == "alice"
    assert api.get("/user").json()["username"] == "mecha-bot"


def test_writes_and_user_need_a_known_token(api: httpx.Client) -> None:
    for answer in (
        api.get("/user", headers={"PRIVATE-TOKEN": "glpat-wrong"}),
        api.post(f"{MR}/notes", json={"body": "x"}, headers={"PRIVATE-TOKEN": "glpat-wrong"}),
    ):
        assert (answer.status_code, answer.json()) == (401, {"message": "401 Unauthorized"})


# --- labels -----------------------------------------------------------------------------------


def test_labels_are_added_and_removed(api: httpx.Client, forge: ForgeEmulator) -> None:
    api.put(MR, json={"add_labels": "wip,bug"})
    answer = api.put(MR, json={"add_labels": "needs review", "remove_labels": "wip"})
    assert (answer.status_code, answer.json()["labels"]) == (200, ["bug", "needs review"])
    assert forge.gitlab.labels("group/app", 5) == ["bug", "needs review"]


def test_labels_may_be_lists_or_a_form_and_labels_replaces(
    api: httpx.Client, forge: ForgeEmulator
) -> None:
    api.put(MR, json={"add_labels": ["a", "b"]})
    api.put(MR, data={"remove_labels": "a"})
    assert forge.gitlab.labels(12, 5) == ["b"]
    assert api.put(MR, json={"labels": "x,y"}).json()["labels"] == ["x", "y"]


def test_an_update_without_parameters_is_refused(api: httpx.Client) -> None:
    answer = api.put(MR, json={"colour": "red"})
    assert answer.status_code == 400
    assert answer.json()["error"].endswith("are missing, at least one parameter must be provided")


def test_an_issue_is_updated_and_read(api: httpx.Client, forge: ForgeEmulator) -> None:
    api.put("/projects/12/issues/3", json={"add_labels": "bug"})
    issue = api.get("/projects/12/issues/3").json()
    assert (issue["iid"], issue["title"], issue["labels"]) == (3, "Broken", ["bug"])
    assert forge.gitlab.labels("group/app", 3, "issue") == ["bug"]


# --- commit statuses --------------------------------------------------------------------------


def test_a_status_is_made_and_kept(api: httpx.Client, forge: ForgeEmulator) -> None:
    body = {"state": "failed", "name": "mecha/review", "description": "2 problems"}
    answer = api.post(f"/projects/group%2Fapp/statuses/{HEAD}", json=body)
    assert answer.status_code == 201
    made = answer.json()
    assert (made["status"], made["name"], made["description"], made["sha"]) == (
        "failed", "mecha/review", "2 problems", HEAD,
    )  # fmt: skip
    assert forge.gitlab.statuses("group/app", HEAD) == [made]


def test_a_status_needs_a_state_gitlab_knows(api: httpx.Client) -> None:
    missing = api.post(f"/projects/12/statuses/{HEAD}", json={"name": "x"})
    assert missing.json() == {"error": "state is missing"}
    wrong = api.post(f"/projects/12/statuses/{HEAD}", json={"state": "failure"})
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"error": "state does not have a valid value"},
    )


def test_a_status_on_an_unknown_commit_is_404(api: httpx.Client) -> None:
    answer = api.post(f"/projects/12/statuses/{'9' * 40}", json={"state": "success"})
    assert (answer.status_code, answer.json()) == (404, {"message": "404 Commit Not Found"})


def test_reposting_a_live_state_is_refused_as_gitlab_does(
    api: httpx.Client, forge: ForgeEmulator
) -> None:
    url = f"/projects/12/statuses/{HEAD}"
    pending = api.post(url, json={"state": "pending", "name": "ci"}).json()
    again = api.post(url, json={"state": "pending", "name": "ci"})
    assert again.status_code == 400
    assert again.json()["message"].startswith("Cannot transition status via :enqueue from :pending")
    done = api.post(url, json={"state": "success", "name": "ci"}).json()
    assert done["id"] == pending["id"]
    assert api.post(url, json={"state": "success", "name": "ci"}).status_code == 201
    assert [s["status"] for s in forge.gitlab.statuses(12, HEAD)] == ["success", "success"]


def test_a_status_is_named_by_name_or_context_else_default(api: httpx.Client) -> None:
    url = f"/projects/12/statuses/{BASE}"
    assert api.post(url, data={"state": "success", "context": "lint"}).json()["name"] == "lint"
    assert api.post(url, params={"state": "success"}).json()["name"] == "default"


# --- diff threads -----------------------------------------------------------------------------


def test_a_thread_on_an_added_line_takes_new_line(api: httpx.Client, forge: ForgeEmulator) -> None:
    answer = api.post(f"{MR}/discussions", json={"body": "look", "position": _position(new_line=3)})
    assert answer.status_code == 201
    thread = answer.json()
    note = thread["notes"][0]
    assert (thread["individual_note"], note["type"], note["resolvable"]) == (
        False,
        "DiffNote",
        True,
    )
    assert (note["position"]["new_line"], note["position"]["old_line"]) == (3, None)
    assert [[n.body for n in t] for t in forge.gitlab.discussions("group/app", 5)] == [["look"]]


def test_a_thread_on_an_unchanged_line_needs_both_numbers(api: httpx.Client) -> None:
    alone = api.post(f"{MR}/discussions", json={"body": "x", "position": _position(new_line=4)})
    assert (alone.status_code, alone.json()) == (400, {"message": LINE_CODE})
    both = _position(new_line=4, old_line=3)
    assert api.post(f"{MR}/discussions", json={"body": "x", "position": both}).status_code == 201


def test_a_thread_on_a_removed_line_takes_old_line(api: httpx.Client) -> None:
    removed = _position(old_line=2)
    assert api.post(f"{MR}/discussions", json={"body": "x", "position": removed}).status_code == 201
    wrong = _position(new_line=9)
    assert api.post(f"{MR}/discussions", json={"body": "x", "position": wrong}).status_code == 400


def test_a_thread_must_sit_on_the_diff_refs_and_a_changed_file(api: httpx.Client) -> None:
    for position in (
        _position(new_line=3, head_sha="3c" * 20),
        _position(new_line=3, new_path="other.py", old_path="other.py"),
    ):
        answer = api.post(f"{MR}/discussions", json={"body": "x", "position": position})
        assert (answer.status_code, answer.json()) == (400, {"message": LINE_CODE})


def test_a_position_missing_a_field_is_refused_as_grape_does(api: httpx.Client) -> None:
    position = _position(new_line=3)
    del position["base_sha"]
    answer = api.post(f"{MR}/discussions", json={"body": "x", "position": position})
    assert answer.json() == {"error": "position[base_sha] is missing"}
    kind = _position(new_line=3, position_type="pixel")
    answer = api.post(f"{MR}/discussions", json={"body": "x", "position": kind})
    assert answer.json() == {"error": "position[position_type] does not have a valid value"}


def test_a_position_may_come_as_a_form(api: httpx.Client) -> None:
    form = {"body": "x", **{f"position[{k}]": str(v) for k, v in _position(new_line=2).items()}}
    answer = api.post(f"{MR}/discussions", data=form)
    assert (answer.status_code, answer.json()["notes"][0]["position"]["new_line"]) == (201, 2)


def test_threads_list_notes_and_threads_together(api: httpx.Client, forge: ForgeEmulator) -> None:
    api.post(f"{MR}/notes", json={"body": "a comment"})
    api.post(f"{MR}/discussions", json={"body": "a thread"})
    with forge.lock:
        forge.gitlab.add_note("group/app", 5, "merged", system=True)
    answer = api.get(f"{MR}/discussions", params={"per_page": 2})
    threads = answer.json()
    assert [(t["individual_note"], t["notes"][0]["type"]) for t in threads] == [
        (True, None), (False, "DiscussionNote"),
    ]  # fmt: skip
    assert (answer.headers["x-next-page"], answer.headers["x-total"]) == ("2", "3")


def test_an_unknown_path_is_404(api: httpx.Client) -> None:
    answer = api.get("/nothing/here")
    assert (answer.status_code, answer.json()) == (404, {"message": "404 Not Found"})
