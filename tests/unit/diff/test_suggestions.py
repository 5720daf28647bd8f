"""Placing a worker's suggested diff on a pull request's diff as applicable suggestions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecha.diff.suggestions import (
    GITLAB_MAX_ABOVE,
    Placement,
    Suggestion,
    diff_block,
    place_suggestions,
    suggestion_block,
)
from mecha.diff.unified import commentable_lines

# The pull request's patch for src/app.py, as GitHub's GET /pulls/{n}/files gives it.
# Head lines shown: 10-17 (12-14 added) and 42-45 (43 added).
PR_PATCH = """\
@@ -10,6 +10,8 @@ def load(path):
     with open(path) as handle:
         data = handle.read()
-    return data
+    if not data:
+        raise ValueError('empty')
+    return data.strip()
{blank}
 def save(path, data):
     with open(path, 'w') as handle:
@@ -40,3 +42,4 @@ def main():
     args = parse()
+    log(args)
     run(args)
     return 0
""".replace("{blank}", " ")  # a blank context line is one space
PR = {"src/app.py": PR_PATCH, "README.md": "@@ -1 +1 @@\n-# app\n+# App\n"}
HEADER = "--- a/src/app.py\n+++ b/src/app.py\n"


def place(body: str, pr: dict[str, str] | None = None) -> Placement:
    return place_suggestions(HEADER + body, PR if pr is None else pr)


def test_one_changed_added_line_becomes_one_suggestion() -> None:
    """Line 13, which the pull request added, replaced by a new text."""
    result = place(
        "@@ -13 +13 @@\n-        raise ValueError('empty')\n+        raise EmptyFile(path)\n"
    )
    assert result == Placement(
        (Suggestion("src/app.py", 13, 13, "        raise EmptyFile(path)\n", None),), (), ()
    )


def test_context_lines_are_trimmed_to_the_changed_lines() -> None:
    """Three lines of context each side (some outside the PR's diff) still land on line 13."""
    result = place(
        "@@ -10,7 +10,7 @@\n"
        "     with open(path) as handle:\n"
        "         data = handle.read()\n"
        "     if not data:\n"
        "-        raise ValueError('empty')\n"
        "+        raise ValueError(f'{path} is empty')\n"
        "     return data.strip()\n"
        " \n"
        " def save(path, data):\n"
    )
    (suggestion,) = result.suggestions
    assert (suggestion.start_line, suggestion.line) == (13, 13)
    assert suggestion.replacement == "        raise ValueError(f'{path} is empty')\n"


def test_several_lines_become_one_multi_line_suggestion() -> None:
    """Lines 12-14 replaced by two lines; the last line is the anchor."""
    result = place(
        "@@ -12,3 +12,2 @@\n"
        "-    if not data:\n"
        "-        raise ValueError('empty')\n"
        "-    return data.strip()\n"
        "+    require(data)\n"
        "+    return data.strip()\n"
    )
    assert result.suggestions == (
        Suggestion("src/app.py", 12, 14, "    require(data)\n    return data.strip()\n", None),
    )
    assert result.suggestions[0].lines_above == 2


def test_an_unchanged_anchor_carries_its_old_line_number() -> None:
    """Line 44 is unchanged in the PR (old line 41): GitLab needs both numbers."""
    result = place("@@ -44,2 +44,2 @@\n-    run(args)\n-    return 0\n+    return run(args)\n")
    assert result.suggestions == (Suggestion("src/app.py", 44, 45, "    return run(args)\n", 42),)


def test_interior_context_keeps_the_heads_text() -> None:
    """Context between two changes is kept, in the head's own text (trailing spaces and all)."""
    patch = "@@ -1,3 +1,3 @@\n-a\n+b\n keep   \n c\n"
    result = place_suggestions(
        "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-b\n+B\n keep\n-c\n+C\n", {"f": patch}
    )
    assert result.suggestions == (Suggestion("f", 1, 3, "B\nkeep   \nC\n", 3),)


def test_deleting_lines_suggests_an_empty_replacement() -> None:
    """Removing the added log line gives an empty suggestion, which deletes it."""
    result = place("@@ -42,3 +42,2 @@\n     args = parse()\n-    log(args)\n     run(args)\n")
    assert result.suggestions == (Suggestion("src/app.py", 43, 43, "", None),)
    assert suggestion_block(result.suggestions[0].replacement) == "```suggestion\n```"


def test_added_lines_hang_on_the_context_line_before_them() -> None:
    """An insertion after line 44 replaces line 44 by itself plus the new lines."""
    result = place("@@ -44,2 +44,3 @@\n     run(args)\n+    flush()\n     return 0\n")
    assert result.suggestions == (
        Suggestion("src/app.py", 44, 44, "    run(args)\n    flush()\n", 41),
    )


def test_added_lines_hang_on_the_line_after_when_the_one_before_is_not_shown() -> None:
    """Line 41 is outside the PR's diff; line 42 is shown and takes the insertion above it."""
    result = place("@@ -41,2 +41,3 @@\n     parser = build()\n+    setup()\n     args = parse()\n")
    assert result.suggestions == (
        Suggestion("src/app.py", 42, 42, "    setup()\n    args = parse()\n", 40),
    )


def test_added_lines_without_context_are_not_placed() -> None:
    """'@@ -44,0 +45 @@' names no line that can be checked against the head."""
    result = place("@@ -44,0 +45 @@\n+    flush()\n")
    assert result.suggestions == ()
    assert "without context lines" in result.reasons[0]


def test_lines_outside_the_pull_requests_diff_are_not_placed() -> None:
    """Line 30 and lines 20-25 are not shown; the hunks come back as diff text."""
    result = place(
        "@@ -30 +30 @@\n-    pass\n+    return None\n"
        "@@ -20,6 +20,1 @@\n-a\n-b\n-c\n-d\n-e\n-f\n+g\n"
    )
    assert result.suggestions == ()
    assert result.reasons == (
        "src/app.py line 30 is not in the pull request's diff",
        "src/app.py lines 20-25 are not in the pull request's diff",
    )
    assert result.unplaced[0] == HEADER + "@@ -30,1 +30,1 @@\n-    pass\n+    return None\n"


def test_lines_across_two_hunks_of_the_pull_request_are_not_placed() -> None:
    """Lines 17 and 42 are both shown, but in two hunks with unshown lines between."""
    result = place(
        "@@ -17,26 +17,1 @@\n-    with open(path, 'w') as handle:\n"
        + "".join(f"-line {n}\n" for n in range(18, 42))
        + "-    args = parse()\n+    pass\n"
    )
    assert result.reasons == ("src/app.py lines 17-42 are not in the pull request's diff",)


def test_lines_in_two_touching_hunks_are_not_all_in_one_hunk() -> None:
    """GitHub wants start_line and line in the same hunk, even when the hunks touch."""
    patch = "@@ -1,2 +1,2 @@\n-a\n+b\n c\n@@ -3,2 +3,2 @@\n d\n-e\n+f\n"
    result = place_suggestions("--- a/f\n+++ b/f\n@@ -2,2 +2,1 @@\n-c\n-d\n+cd\n", {"f": patch})
    assert result.reasons == ("f lines 2-3 are not all in one hunk of the pull request's diff",)


def test_a_line_that_does_not_match_the_head_is_not_placed() -> None:
    """The suggestion says line 13 is 'foo'; the PR shows otherwise, so it would hit wrong code."""
    result = place("@@ -13 +13 @@\n-foo\n+bar\n")
    assert result.suggestions == ()
    assert result.reasons == ("src/app.py line 13 does not match the pull request's head",)


def test_wrong_context_also_refuses_the_hunk() -> None:
    """A context line that disagrees with the head (line 11) refuses the whole hunk."""
    result = place(
        "@@ -11,3 +11,3 @@\n"
        "         text = handle.read()\n"
        "-    if not data:\n"
        "+    if data is None:\n"
        "         raise ValueError('empty')\n"
    )
    assert result.reasons == ("src/app.py line 11 does not match the pull request's head",)


def test_trailing_whitespace_differences_still_match() -> None:
    """A model that drops trailing spaces (or a blank's lone space) still anchors."""
    result = place(
        "@@ -15,2 +15,2 @@\n\n-def save(path, data):\n+def save(path, data, *, mode='w'):\n"
    )
    assert [s.line for s in result.suggestions] == [16]


@pytest.mark.parametrize(
    ("diff", "reason"),
    [
        ("--- a/src/other.py\n+++ b/src/other.py\n@@ -1 +1 @@\n-a\n+b\n", "not changed by"),
        ("--- /dev/null\n+++ b/src/new.py\n@@ -0,0 +1 @@\n+a\n", "is a new file"),
        ("--- a/src/app.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n", "is deleted"),
        (
            "diff --git a/src/app.py b/src/main.py\n"
            "rename from src/app.py\nrename to src/main.py\n",
            "is renamed to src/main.py",
        ),
        ("diff --git a/README.md b/README.md\nBinary files a/x and b/x differ\n", "binary"),
        ("diff --git a/README.md b/README.md\nold mode 100644\nnew mode 100755\n", "mode"),
    ],
)
def test_files_a_suggestion_cannot_change_are_not_placed(diff: str, reason: str) -> None:
    """Files outside the PR, new, deleted, renamed, binary or mode-only changes."""
    result = place_suggestions(diff, PR)
    assert result.suggestions == ()
    assert len(result.unplaced) == len(result.reasons) == 1
    assert reason in result.reasons[0]


def test_a_patch_the_forge_left_out_places_nothing() -> None:
    """GitHub leaves out the patch of a very large file: no line is shown."""
    result = place("@@ -13 +13 @@\n-x\n+y\n", {"src/app.py": ""})
    assert result.reasons == ("src/app.py line 13 is not in the pull request's diff",)


def test_text_that_is_not_a_diff_comes_back_whole() -> None:
    """A worker's prose instead of a diff is unplaced with the parser's reason."""
    result = place_suggestions("Looks good to me!", PR)
    assert result.unplaced == ("Looks good to me!",)
    assert result.reasons[0].startswith("the suggestion is not a unified diff")


def test_placed_and_unplaced_hunks_are_sorted_apart_in_order() -> None:
    """Two files, three hunks: two placed, one unplaced."""
    diff = (
        HEADER
        + "@@ -13 +13 @@\n-        raise ValueError('empty')\n+        raise EmptyFile()\n"
        + "@@ -30 +30 @@\n-x\n+y\n"
        + "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-# App\n+# The app\n"
    )
    result = place_suggestions(diff, PR)
    assert [(s.path, s.line) for s in result.suggestions] == [("src/app.py", 13), ("README.md", 1)]
    assert len(result.unplaced) == 1


def test_overlapping_hunks_place_only_the_first() -> None:
    """Two suggestions on line 13 could not both be applied."""
    hunk = "@@ -13 +13 @@\n-        raise ValueError('empty')\n+        raise {}()\n"
    result = place(hunk.format("A") + hunk.format("B"))
    assert [s.replacement for s in result.suggestions] == ["        raise A()\n"]
    assert result.reasons == ("src/app.py line 13 overlap another suggestion",)


def test_a_hunk_that_changes_nothing_is_dropped() -> None:
    """Only context: neither a suggestion nor a fallback."""
    assert place("@@ -10,2 +10,2 @@\n     with open(path) as handle:\n x\n") == Placement(
        (), (), ()
    )


def test_suggestion_block_for_github() -> None:
    """A fenced suggestion block with a newline after the replacement."""
    assert suggestion_block("x = 1\ny = 2") == "```suggestion\nx = 1\ny = 2\n```"


def test_suggestion_block_for_gitlab_names_the_lines_above() -> None:
    """GitLab's -N+0: N lines above the commented line are replaced too."""
    assert suggestion_block("a\n", gitlab_above=2) == "```suggestion:-2+0\na\n```"
    assert suggestion_block("a\n", gitlab_above=0) == "```suggestion:-0+0\na\n```"


def test_suggestion_block_refuses_more_lines_than_gitlab_takes() -> None:
    """GitLab takes at most 100 lines above."""
    with pytest.raises(ValueError, match="diff comment instead"):
        suggestion_block("a\n", gitlab_above=GITLAB_MAX_ABOVE + 1)


@pytest.mark.parametrize(
    ("replacement", "fence"),
    [("plain\n", "```"), ("```python\nx\n```\n", "````"), ("a `````b\n", "``````")],
)
def test_the_fence_is_longer_than_any_backtick_run_inside(replacement: str, fence: str) -> None:
    """Markdown code blocks inside the suggestion do not close it early."""
    block = suggestion_block(replacement)
    assert block == f"{fence}suggestion\n{replacement}{fence}"


def test_diff_block_carries_the_message_and_the_diff() -> None:
    """The fallback comment: subject, body, then the diff."""
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b"
    block = diff_block("Fix the loader\n\nIt read the file twice.", diff)
    assert block == (
        f"**Suggested commit:** Fix the loader\n\nIt read the file twice.\n\n```diff\n{diff}\n```"
    )


def test_diff_block_without_a_message_and_with_fences_inside() -> None:
    """No message: 'Suggested change'; a diff of a Markdown file gets a longer fence."""
    diff = "--- a/doc.md\r\n+++ b/doc.md\r\n@@ -1 +1 @@\r\n-```\r\n+````\r\n"
    assert diff_block("  ", diff) == (
        "**Suggested change**\n\n`````diff\n"
        "--- a/doc.md\n+++ b/doc.md\n@@ -1 +1 @@\n-```\n+````\n`````"
    )


# ---------------------------------------------------------------- properties

HEAD = [f"L{n}" for n in range(1, 41)]  # the head file: line n is "Ln"


@st.composite
def pr_patches(draw: st.DrawFn) -> str:
    """A patch showing some head lines of HEAD, each shown line added or unchanged."""
    hunks, old_delta, line = [], 0, 1
    while line <= len(HEAD):
        line += draw(st.integers(1, 8))
        size = draw(st.integers(1, 8))
        shown = list(range(line, min(line + size, len(HEAD) + 1)))
        if not shown:
            break
        body, old_len, added = [], 0, 0
        for number in shown:
            if draw(st.booleans()):
                body.append(f"+L{number}")
                added += 1
            else:
                body.append(f" L{number}")
                old_len += 1
            if draw(st.integers(0, 4)) == 0:
                body.append(f"-gone{number}")
                old_len += 1
        header = f"@@ -{shown[0] - old_delta},{old_len} +{shown[0]},{len(shown)} @@"
        hunks.append("\n".join([header, *body]))
        old_delta += added - (old_len - (len(shown) - added))
        line = shown[-1] + 1
    return "\n".join(hunks) + "\n"


@st.composite
def suggestion_hunks(draw: st.DrawFn) -> tuple[int, list[str]]:
    """A hunk against HEAD: its old start and its lines (sometimes with a wrong context)."""
    start = draw(st.integers(1, len(HEAD)))
    lines = []
    for number in range(start, min(start + draw(st.integers(0, 6)), len(HEAD) + 1)):
        kind = draw(st.sampled_from(" -"))
        text = HEAD[number - 1] if draw(st.integers(0, 9)) else "wrong"
        lines.append(kind + text)
        lines.extend(f"+new{k}" for k in range(draw(st.integers(0, 2))))
    if not lines:
        lines = ["+new"]
    return start, lines


def apply(head: list[str], start: int, end: int, replacement: str) -> list[str]:
    return head[: start - 1] + replacement.splitlines() + head[end:]


@settings(max_examples=300, deadline=None)
@given(pr_patches(), st.lists(suggestion_hunks(), min_size=1, max_size=3))
def test_placed_suggestions_lie_in_one_hunk_and_do_what_the_diff_does(
    patch: str, hunks: list[tuple[int, list[str]]]
) -> None:
    """Never raises; each suggestion sits in one PR hunk and applies like its diff hunk."""
    diff = "--- a/f\n+++ b/f\n" + "".join(
        f"@@ -{start} +{start} @@\n" + "".join(f"{line}\n" for line in lines)
        for start, lines in hunks
    )
    result = place_suggestions(diff, {"f": patch})
    assert len(result.unplaced) == len(result.reasons)
    shown = commentable_lines(patch)
    for suggestion in result.suggestions:
        (hunk,) = [h for h in shown if h.covers(suggestion.start_line, suggestion.line)]
        anchor = hunk.line(suggestion.line)
        assert anchor is not None
        assert anchor.old_line == suggestion.anchor_old_line
    if len(hunks) == 1 and result.suggestions:
        ((start, lines),) = hunks
        old = [line[1:] for line in lines if line[0] in " -"]
        new = [line[1:] for line in lines if line[0] in " +"]
        (suggestion,) = result.suggestions
        if old != HEAD[start - 1 : start - 1 + len(old)]:  # a false claim: only where not shown
            shown_numbers = {line.new_line for h in shown for line in h.lines}
            assert all(start + at not in shown_numbers for at, t in enumerate(old) if t == "wrong")
            return
        expected = HEAD[: start - 1] + new + HEAD[start - 1 + len(old) :]
        got = apply(HEAD, suggestion.start_line, suggestion.line, suggestion.replacement)
        assert got == expected


def test_lone_surrogates_from_json_do_not_break_placement() -> None:
    """JSON may carry '\\ud800'; the path is still written back as diff text."""
    result = place_suggestions("--- a/\ud800\n+++ b/\ud800\n@@ -1 +1 @@\n-a\n+b\n", PR)
    assert result.reasons == ("\ud800 is not changed by the pull request",)
    assert result.unplaced[0].startswith('--- "a/\\355\\240\\200"\n')


@given(st.text(), st.dictionaries(st.sampled_from(["f", "x"]), st.text(), max_size=2))
def test_placement_never_raises_on_any_text(diff: str, pr: dict[str, str]) -> None:
    """Whatever the worker and the forge send, placement answers."""
    result = place_suggestions("--- a/f\n+++ b/f\n" + diff, pr)
    assert len(result.unplaced) == len(result.reasons)
