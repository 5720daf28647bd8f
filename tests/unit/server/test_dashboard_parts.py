"""The dashboard's pure parts: sessions and CSRF tokens, list filters and cursors, what a
write links to on its forge."""

from __future__ import annotations

from mecha.forges.credentials import web_base
from mecha.policy.writes import Place, Write, WriteState
from mecha.server.ui.action_words import done_notice
from mecha.server.ui.filters import PAGE_SIZE, cursor_text, event_query
from mecha.server.ui.session import LIFETIME, Sessions, clean_name
from mecha.server.ui.views import write_link
from mecha.store.records import WriteRecord


def test_a_session_survives_only_unchanged_unexpired_and_under_its_key() -> None:
    sessions = Sessions("the-key")
    session, cookie = sessions.issue("alice", now=1000.0)
    assert sessions.read(cookie, now=1001.0) == session
    assert Sessions("the-key").read(cookie, now=1001.0) == session  # another node, same key
    assert Sessions("another-key").read(cookie, now=1001.0) is None  # the key changed
    assert sessions.read(cookie, now=1000.0 + LIFETIME + 1) is None  # expired
    payload, _, signature = cookie.partition(".")
    assert sessions.read(payload[:-2] + "xx." + signature, now=1001.0) is None
    assert sessions.read("garbage", now=1001.0) is None and sessions.read("", now=1.0) is None


def test_the_csrf_token_belongs_to_its_session() -> None:
    sessions = Sessions("")
    one, _ = sessions.issue("", now=1.0)
    two, _ = sessions.issue("", now=1.0)
    assert sessions.csrf_matches(one, sessions.csrf(one))
    assert not sessions.csrf_matches(one, sessions.csrf(two))
    assert not sessions.csrf_matches(one, "")


def test_names_are_printable_and_short() -> None:
    assert clean_name("  ali\u202ece \n\x00 bob ") == "alice bob"
    assert len(clean_name("x" * 500)) == 40


def test_filters_keep_what_is_valid_and_say_what_is_not() -> None:
    query, filters = event_query(
        {"state": "failed", "source": "github", "q": " Tidy ", "window": "1h",
         "before": "1700000000.5~abc"},
        now=2000.0,
    )  # fmt: skip
    assert query.state is not None and query.state.value == "failed"
    assert (query.source, query.search, query.since) == ("github", "Tidy", 2000.0 - 3600)
    assert query.before == (1700000000.5, "abc") and query.limit == PAGE_SIZE + 1
    assert filters.notices == []
    bad, said = event_query({"state": "nope", "window": "1y", "before": "x~"}, now=1.0)
    assert bad.state is None and bad.since is None and bad.before is None
    assert len(said.notices) == 3
    assert cursor_text(12.25, "id1") == "12.25~id1"


def test_links_to_what_a_write_made() -> None:
    place = Place(forge="github", repo="octo/app", number=7, head_sha="a" * 40)
    comment = Write(key="k", worker="w", action="comment", place=place, body="hi")
    done = WriteRecord(write=comment, task_id="t", event_id="e", state=WriteState.DONE,
                       remote_id="123")  # fmt: skip
    web = {"github": web_base("github", "https://api.github.com"),
           "gitlab": web_base("gitlab", "https://gitlab.example/api/v4")}  # fmt: skip
    assert web == {"github": "https://github.com", "gitlab": "https://gitlab.example"}
    assert write_link(done, web) == "https://github.com/octo/app/pull/7#issuecomment-123"
    status = Write(key="s", worker="w", action="status", place=place, state="success")
    made = WriteRecord(write=status, task_id="t", event_id="e", state=WriteState.DONE)
    assert write_link(made, web) == f"https://github.com/octo/app/commit/{'a' * 40}"
    lab = Place(forge="gitlab", repo="g/p", number=3, kind="pull")
    note = Write(key="n", worker="w", action="comment", place=lab, body="x")
    noted = WriteRecord(write=note, task_id="t", event_id="e", state=WriteState.DONE,
                        remote_id="9")  # fmt: skip
    assert write_link(noted, web) == "https://gitlab.example/g/p/-/merge_requests/3#note_9"
    failed = WriteRecord(write=comment, task_id="t", event_id="e", state=WriteState.FAILED)
    assert write_link(failed, web) == ""
    assert web_base("github", "https://ghe.example/api/v3") == "https://ghe.example"


def test_a_notice_is_in_the_dashboards_own_words() -> None:
    assert done_notice({"done": "task-cancel", "on": "0123456789abcdef"}) == (
        "Task 0123456789ab is cancelled."
    )
    assert done_notice({"done": "sign in again at evil.example"}) == ""
    assert done_notice({"notice": "Your key expired: visit evil.example"}) == ""
