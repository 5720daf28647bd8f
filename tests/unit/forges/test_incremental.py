"""forges.incremental (pure): what a worker's prompt gets as ``diff_since_last`` and friends,
from the full diff's attributes, the last reviewed head and what the forge compared."""

from __future__ import annotations

from mecha.forges.hydration import RawDiff
from mecha.forges.incremental import (
    NO_REVIEW,
    SINCE_LAST_ATTRS,
    Compared,
    force_pushed,
    gone,
    since_last_attrs,
)

LAST, HEAD = "a1" * 20, "b2" * 20
FULL = {"diff": "diff --git a/x b/x\n+all\n", "file_list": "x\ny", "diff_truncated": "false"}


def section(name: str, size: int) -> str:
    return f"diff --git a/{name} b/{name}\n+{'x' * size}\n"


def test_no_earlier_review_gives_the_full_diff_and_says_so() -> None:
    attrs = since_last_attrs(FULL, "", None, max_bytes=1000)
    assert attrs == {
        "diff_since_last": FULL["diff"], "last_reviewed_sha": "",
        "diff_since_last_fallback": NO_REVIEW, "diff_since_last_truncated": "false",
        "files_since_last": "x\ny",
    }  # fmt: skip
    assert set(attrs) == set(SINCE_LAST_ATTRS)


def test_a_comparison_gives_just_the_new_changes_and_the_earlier_head() -> None:
    new = section("y", 3)
    attrs = since_last_attrs(FULL, LAST, Compared(RawDiff(new), ("y",)), max_bytes=1000)
    assert attrs == {
        "diff_since_last": new, "last_reviewed_sha": LAST, "diff_since_last_fallback": "",
        "diff_since_last_truncated": "false", "files_since_last": "y",
    }  # fmt: skip


def test_nothing_new_since_is_an_empty_diff_not_a_fallback() -> None:
    attrs = since_last_attrs(FULL, HEAD, Compared(RawDiff("")), max_bytes=1000)
    assert (attrs["diff_since_last"], attrs["last_reviewed_sha"]) == ("", HEAD)
    assert attrs["diff_since_last_fallback"] == ""


def test_a_force_push_falls_back_to_the_full_diff_with_its_reason() -> None:
    why = force_pushed(LAST, HEAD, "GitHub", "compare: diverged")
    assert why == (f"force-push: the last reviewed commit {LAST[:12]} is no longer an "
                   f"ancestor of the head {HEAD[:12]} (GitHub compare: diverged)")  # fmt: skip
    attrs = since_last_attrs(FULL, LAST, Compared(fallback=why), max_bytes=1000)
    assert (attrs["diff_since_last"], attrs["last_reviewed_sha"]) == (FULL["diff"], "")
    assert attrs["diff_since_last_fallback"] == why
    gone_why = gone(LAST, "GitLab", "merge base: ref not found")
    assert gone_why.startswith(f"force-push: the last reviewed commit {LAST[:12]} is gone")


def test_the_full_diffs_truncation_comes_with_the_fallback() -> None:
    cut = {**FULL, "diff_truncated": "true"}
    assert since_last_attrs(cut, "", None, max_bytes=10)["diff_since_last_truncated"] == "true"


def test_the_new_changes_are_capped_as_the_diff_is() -> None:
    """Whole files first, the others named, a marker line at the end."""
    text = section("small", 10) + section("huge", 5000) + section("tail", 10)
    compared = Compared(RawDiff(text), ("small", "huge", "tail", "unsent"))
    attrs = since_last_attrs(FULL, LAST, compared, max_bytes=200)
    shown = attrs["diff_since_last"]
    assert len(shown.encode()) <= 200 + 200  # the cap, plus the marker line
    assert "a/small" in shown and "a/tail" in shown and "a/huge" not in shown
    assert shown.rstrip("\n").endswith("listed in files_omitted)")
    assert attrs["diff_since_last_truncated"] == "true"
    assert attrs["files_since_last"] == "small\nhuge\ntail\nunsent"


def test_a_diff_read_only_in_part_is_never_shown_as_whole() -> None:
    text = section("a", 5) + section("b", 5)
    compared = Compared(RawDiff(text, complete=False), ("a", "b"))
    attrs = since_last_attrs(FULL, LAST, compared, max_bytes=10_000)
    assert attrs["diff_since_last_truncated"] == "true"
    assert "a/b" not in attrs["diff_since_last"]
