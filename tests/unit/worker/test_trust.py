"""Comment commands and trust, on event attributes alone."""

from __future__ import annotations

from typing import Any

import pytest

from mecha.worker.trust import command_args, command_miss, trust_miss


@pytest.mark.parametrize(
    ("comment", "args"),
    [
        ("/review", ""),
        ("/review focus on tests", "focus on tests"),
        ("  /review\nplease look at the parser", "please look at the parser"),
        ("/review\tnow", "now"),
        ("/reviewer", None),  # a word boundary: another command
        ("please /review", None),  # not at the start
        ("> /review quoted", None),
        ("", None),
    ],
)
def test_a_command_starts_the_first_line(comment: str, args: str | None) -> None:
    assert command_args(comment, "/review") == args


def data(**attrs: Any) -> dict[str, Any]:
    return {"source": "github", "sender": "mona", "author_association": "MEMBER", **attrs}


def miss(command: bool = True, min_level: str = "member", forks: bool = True,
         bots: tuple[str, ...] = (), **attrs: Any) -> str:  # fmt: skip
    return trust_miss(command=command, min_level=min_level, forks=forks, bots=bots,
                      data=data(**attrs))  # fmt: skip


def test_members_owners_and_collaborators_may_run_a_command_by_default() -> None:
    for association in ("OWNER", "MEMBER", "COLLABORATOR"):
        assert miss(author_association=association) == ""
    for association in ("CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE", ""):
        found = miss(author_association=association)
        assert found.startswith("trust: the comment's author is ") and "trust.min member" in found


def test_trust_min_widens_or_narrows_it() -> None:
    assert miss(min_level="contributor", author_association="CONTRIBUTOR") == ""
    assert miss(min_level="contributor", author_association="NONE") != ""
    assert miss(min_level="owner", author_association="MEMBER") != ""
    assert miss(min_level="owner", author_association="OWNER") == ""
    assert miss(min_level="anyone", author_association="NONE") == ""


def test_a_bot_is_told_by_its_type_not_its_name() -> None:
    bot: dict[str, Any] = {
        "sender": "other-app[bot]",
        "sender_type": "Bot",
        "author_association": "NONE",
    }
    assert "is a bot" in miss(command=False, **bot)
    assert "is a bot" in miss(command=True, min_level="anyone", **bot)
    assert miss(command=False, bots=("other-app[bot]",), **bot) == ""
    assert "is a bot" in miss(command=False, bots=("other-app",), **bot)  # exact login only
    # a user who named themselves like a bot is a user
    assert miss(command=False, sender="sneaky[bot]", sender_type="User") == ""


def test_forks_run_on_rules_unless_turned_off() -> None:
    assert miss(command=False, is_fork=True) == ""
    assert miss(command=False, forks=False, is_fork=True).startswith("trust: the pull request")
    assert miss(command=False, forks=False, is_fork=False) == ""


@pytest.mark.parametrize(
    ("level", "allowed"),
    [
        (50, {"owner", "member", "contributor"}),  # Owner
        (40, {"owner", "member", "contributor"}),  # Maintainer
        (30, {"member", "contributor"}),  # Developer: a member, as by default
        (20, {"contributor"}),  # Reporter
        (15, {"contributor"}),  # Planner
        (10, {"contributor"}),  # Guest
        (5, set()),  # Minimal access
        (0, set()),  # not a member (the members API's 404)
    ],
)
def test_a_gitlab_note_authors_access_level_is_mapped_to_trust(
    level: int, allowed: set[str]
) -> None:
    for min_level in ("owner", "member", "contributor", "anyone"):
        found = miss(source="gitlab", min_level=min_level, author_access_level=level)
        assert (found == "") is (min_level in allowed or min_level == "anyone"), (min_level, found)


def test_a_gitlab_refusal_names_the_level_and_what_trust_min_allows() -> None:
    assert miss(source="gitlab", author_access_level=20) == (
        "trust: the note's author is Reporter (20) on this GitLab project; trust.min member "
        "allows Developer (30) and up"
    )
    owner = miss(source="gitlab", min_level="owner", author_access_level=30)
    assert owner.endswith("is Developer (30) on this GitLab project; trust.min owner allows "
                          "Maintainer (40) and up")  # fmt: skip


def test_a_gitlab_level_unknown_or_not_looked_up_refuses_the_command() -> None:
    unknown = miss(source="gitlab")
    assert "access level is unknown" in unknown and "GitLab token" in unknown
    failed = miss(source="gitlab", author_access_error="GitLab GET /projects/5/members/all/7 "
                  "answered 502")  # fmt: skip
    assert failed == (
        "trust: the note author's access level could not be looked up on GitLab (GitLab GET "
        "/projects/5/members/all/7 answered 502), so the command is refused"
    )
    # an error wins over a level (fail closed); min anyone asks nothing
    assert miss(source="gitlab", author_access_level=50, author_access_error="x") != ""
    assert miss(source="gitlab", min_level="anyone") == ""


def test_a_command_miss_names_the_comment_and_an_edited_note() -> None:
    assert command_miss("/review", {"comment": "/review now"}) == ""
    assert "does not start with /review" in command_miss("/review", {"comment": "LGTM"})
    assert "does not start with /review" in command_miss("/review", {})
    note = {"source": "gitlab", "comment": "/review", "action": "update"}
    assert command_miss("/review", note) == "the note was updated, not new"
    assert command_miss("/review", {**note, "action": "create"}) == ""
