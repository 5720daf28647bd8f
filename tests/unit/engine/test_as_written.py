"""A write is recorded as its forge client will send it: a long comment is cut first."""

from __future__ import annotations

from mecha.engine.writeback import as_written
from mecha.forges.bodies import MAX_COMMENT, NOTE_LIMIT, fitted_body, note_body
from mecha.policy.writes import Place, Write

GITHUB = Place(forge="github", repo="octo/app", number=7, head_sha="a" * 40)
GITLAB = Place(forge="gitlab", repo="group/app", project_id="3", number=7, head_sha="a" * 40)


def comment(place: Place, body: str, *, sticky: bool = True) -> Write:
    return Write(key="k" * 32, worker="reviewer", action="comment", place=place, body=body,
                 sticky=sticky)  # fmt: skip


def test_a_5_mb_comment_is_recorded_as_the_65536_characters_github_is_sent() -> None:
    write = comment(GITHUB, "word " * 1_000_000)
    recorded = as_written(write)
    sent = fitted_body(recorded, recorded.body)
    assert sent == fitted_body(write, write.body)  # the same request as before
    assert len(sent) == MAX_COMMENT and len(recorded.body) < MAX_COMMENT
    assert recorded.body.startswith("word word") and "(cut: the text has 5,000,000" in sent


def test_a_gitlab_note_is_cut_at_its_limit_the_same_way() -> None:
    write = comment(GITLAB, "x" * 1_500_000, sticky=False)
    recorded = as_written(write)
    assert note_body(recorded, recorded.body) == note_body(write, write.body)
    assert len(recorded.body) < NOTE_LIMIT


def test_what_fits_and_other_actions_are_recorded_as_they_are() -> None:
    short = comment(GITHUB, "fine  \n")
    assert as_written(short) is short
    status = Write(key="k" * 32, worker="w", action="status", place=GITHUB, state="success",
                   description="d" * 100_000)  # fmt: skip
    assert as_written(status) is status
    elsewhere = comment(Place(forge="gitea", repo="a/b", number=1), "x" * 100_000)
    assert as_written(elsewhere) is elsewhere
