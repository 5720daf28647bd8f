"""Reading unified diffs: git's format, the plain one, and what language models write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mecha.diff.paths import quote_path, unquote_path
from mecha.diff.unified import (
    DiffError,
    FileDiff,
    Hunk,
    changed_paths,
    commentable_lines,
    hunk_count,
    parse_diff,
)
from mecha.errors import MechaError

GIT_DIFF = """\
diff --git a/src/app.py b/src/app.py
index 3b18e51..a9c2f0d 100644
--- a/src/app.py
+++ b/src/app.py
@@ -10,4 +10,5 @@ def load(path):
     with open(path) as handle:
-        return handle.read()
+        data = handle.read()
+    return data.strip()
{blank}
 def save(path, data):
@@ -40,3 +41,3 @@ def main():
     args = parse()
-    run(args)
+    run(args, verbose=True)
     return 0
diff --git a/README.md b/README.md
index 1111111..2222222 100644
--- a/README.md
+++ b/README.md
@@ -1 +1 @@
-# app
+# App
""".replace("{blank}", " ")  # a blank context line is one space


def test_git_diff_gives_each_file_with_its_hunks() -> None:
    """Paths lose their a/ and b/ prefixes; hunk lines keep their prefixes."""
    app, readme = parse_diff(GIT_DIFF)
    assert (app.old_path, app.new_path, len(app.hunks)) == ("src/app.py", "src/app.py", 2)
    first = app.hunks[0]
    assert (first.old_start, first.old_len, first.new_start, first.new_len) == (10, 4, 10, 5)
    assert first.lines[:3] == (
        "     with open(path) as handle:",
        "-        return handle.read()",
        "+        data = handle.read()",
    )
    assert first.lines[4] == " "  # a blank context line
    assert readme.hunks == (Hunk(1, 1, 1, 1, ("-# app", "+# App")),)


def test_a_hunk_writes_back_as_it_was_read() -> None:
    """Hunk.text() and FileDiff.header() give diff text that reads back the same."""
    app = parse_diff(GIT_DIFF)[0]
    again = parse_diff(app.header() + "".join(hunk.text() for hunk in app.hunks))
    assert again == [app]


def test_rename_with_changes_names_both_paths() -> None:
    """A renamed file has its old and new names; changed_paths lists both."""
    diff = (
        "diff --git a/old/name.py b/new/name.py\n"
        "similarity index 90%\n"
        "rename from old/name.py\n"
        "rename to new/name.py\n"
        "index 1..2 100644\n"
        "--- a/old/name.py\n"
        "+++ b/new/name.py\n"
        "@@ -1,2 +1,2 @@\n"
        " import os\n"
        "-x = 1\n"
        "+x = 2\n"
    )
    (item,) = parse_diff(diff)
    assert (item.old_path, item.new_path, item.is_rename) == ("old/name.py", "new/name.py", True)
    assert changed_paths(diff) == ["old/name.py", "new/name.py"]


def test_pure_rename_has_no_hunks_but_is_a_diff() -> None:
    """git's 100% similarity rename has no hunks and is still read."""
    diff = (
        "diff --git a/a.txt b/docs/a.txt\n"
        "similarity index 100%\n"
        "rename from a.txt\n"
        "rename to docs/a.txt\n"
    )
    assert parse_diff(diff) == [FileDiff("a.txt", "docs/a.txt", ())]
    assert hunk_count(diff) == 0
    assert changed_paths(diff) == ["a.txt", "docs/a.txt"]


def test_quoted_git_paths_are_unescaped() -> None:
    """git quotes names with tabs, quotes and non-ASCII bytes (as octal UTF-8)."""
    diff = (
        'diff --git "a/docs/caf\\303\\251 menu.txt" "b/docs/caf\\303\\251 menu.txt"\n'
        "index 1..2 100644\n"
        '--- "a/docs/caf\\303\\251 menu.txt"\n'
        '+++ "b/docs/caf\\303\\251 menu.txt"\n'
        "@@ -1 +1 @@\n"
        "-tea\n"
        "+coffee\n"
        'diff --git "a/tab\\there" "b/say \\"hi\\""\n'
        "similarity index 100%\n"
        'rename from "tab\\there"\n'
        'rename to "say \\"hi\\""\n'
    )
    assert changed_paths(diff) == ["docs/café menu.txt", "tab\there", 'say "hi"']


def test_unquoted_paths_with_spaces_are_split_where_the_names_agree() -> None:
    """'diff --git a/my file b/my file' with no ---/+++ lines (an empty new file)."""
    diff = "diff --git a/my b/file b/my b/file\nnew file mode 100644\nindex 0000000..e69de29\n"
    (item,) = parse_diff(diff)
    assert (item.old_path, item.new_path, item.is_new) == (None, "my b/file", True)


def test_new_and_deleted_files_have_an_absent_side() -> None:
    """/dev/null is no path: a new file has no old path, a deleted one no new path."""
    diff = (
        "diff --git a/new.py b/new.py\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/new.py\n"
        "@@ -0,0 +1,2 @@\n"
        "+a = 1\n"
        "+b = 2\n"
        "diff --git a/gone.py b/gone.py\n"
        "deleted file mode 100644\n"
        "--- a/gone.py\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-x = 1\n"
    )
    new, gone = parse_diff(diff)
    assert (new.old_path, new.new_path, new.is_new, new.is_deleted) == (None, "new.py", True, False)
    assert (gone.old_path, gone.new_path, gone.is_deleted) == ("gone.py", None, True)
    assert new.hunks[0].new_len == 2
    assert changed_paths(diff) == ["new.py", "gone.py"]


def test_binary_files_are_marked_and_have_no_hunks() -> None:
    """'Binary files ... differ' is a change without hunks."""
    diff = (
        "diff --git a/logo.png b/logo.png\n"
        "index 1..2 100644\n"
        "Binary files a/logo.png and b/logo.png differ\n"
    )
    assert parse_diff(diff) == [FileDiff("logo.png", "logo.png", (), is_binary=True)]


def test_no_newline_markers_stay_in_lines_but_count_for_no_side() -> None:
    """'\\ No newline at end of file' follows its line and is not a line of the file."""
    diff = "--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n"
    (hunk,) = parse_diff(diff)[0].hunks
    assert hunk.lines == (" a", "-b", "\\ No newline at end of file", "+c")
    assert (hunk.old_len, hunk.new_len) == (2, 2)


def test_crlf_line_ends_read_like_lf() -> None:
    """A diff pasted with Windows line ends gives the same files."""
    assert parse_diff(GIT_DIFF.replace("\n", "\r\n")) == parse_diff(GIT_DIFF)


def test_missing_counts_mean_one_line() -> None:
    """'@@ -3 +3 @@' is a hunk of one line on each side."""
    diff = "--- a/x\n+++ b/x\n@@ -3 +3 @@\n-old\n+new\n"
    assert parse_diff(diff)[0].hunks == (Hunk(3, 1, 3, 1, ("-old", "+new")),)


def test_plain_diff_without_git_header_and_with_timestamps() -> None:
    """GNU diff -u output: no prefixes to strip, timestamps after a tab."""
    diff = (
        "--- config.ini\t2024-05-01 10:00:00.000000000 +0200\n"
        "+++ config.ini\t2024-05-02 11:00:00.000000000 +0200\n"
        "@@ -1,2 +1,2 @@\n"
        " [main]\n"
        "-debug = true\n"
        "+debug = false\n"
    )
    assert changed_paths(diff) == ["config.ini"]


def test_prose_and_fences_around_a_diff_are_ignored() -> None:
    """A model's answer with words before and after the fenced diff."""
    answer = (
        "Here is the fix:\n\n```diff\n"
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -2,3 +2,3 @@\n x = 1\n-y = 2\n+y = 3\n z = 4\n"
        "```\n\nThis changes y.\n- it also keeps z\n"
    )
    (item,) = parse_diff(answer)
    assert item.hunks[0].lines == (" x = 1", "-y = 2", "+y = 3", " z = 4")


def test_counts_smaller_than_the_body_trust_the_body() -> None:
    """A header that says 1 line above 3 body lines gets all 3."""
    diff = "--- a/x\n+++ b/x\n@@ -5,1 +5,1 @@\n a\n-b\n+c\n d\n"
    (hunk,) = parse_diff(diff)[0].hunks
    assert (hunk.old_len, hunk.new_len, len(hunk.lines)) == (3, 3, 4)


def test_counts_larger_than_the_body_stop_at_the_next_header() -> None:
    """A header promising 10 lines does not swallow the next hunk or file."""
    diff = (
        "--- a/x\n+++ b/x\n@@ -1,10 +1,10 @@\n-a\n+b\n@@ -20,2 +20,2 @@\n-c\n+d\n"
        "--- a/y\n+++ b/y\n@@ -1 +1 @@\n-e\n+f\n"
    )
    first, second = parse_diff(diff)
    assert [h.lines for h in first.hunks] == [("-a", "+b"), ("-c", "+d")]
    assert (second.path, second.hunks[0].lines) == ("y", ("-e", "+f"))


def test_a_blank_context_line_that_lost_its_space_is_context() -> None:
    """Editors and models strip the lone space of a blank context line."""
    diff = "--- a/x\n+++ b/x\n@@ -1,4 +1,4 @@\n a\n\n-b\n+c\n d\n"
    (hunk,) = parse_diff(diff)[0].hunks
    assert hunk.lines == (" a", " ", "-b", "+c", " d")


def test_removed_and_added_lines_that_look_like_file_headers_stay_in_the_hunk() -> None:
    """'--- x' then '+++ y' inside a hunk whose counts want more lines are body lines."""
    diff = "--- a/notes.md\n+++ b/notes.md\n@@ -1,2 +1,2 @@\n--- x\n+++ y\n same\n"
    (item,) = parse_diff(diff)
    assert item.hunks[0].lines == ("--- x", "+++ y", " same")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no unified diff"),
        ("I could not find anything to change.", "no unified diff"),
        ("--- a/x\n+++ b/x\n", "no unified diff"),
        ("@@ -1 +1 @@\n-a\n+b\n", "does not say which file"),
        ("--- a/x\n+++ b/x\n@@ fix the bug @@\n-a\n+b\n", "without line numbers"),
    ],
)
def test_text_without_hunks_is_a_diff_error(text: str, says: str) -> None:
    """DiffError is a MechaError with a message and a hint."""
    with pytest.raises(DiffError, match=says) as caught:
        parse_diff(text)
    assert isinstance(caught.value, MechaError)
    assert caught.value.hint


@pytest.mark.parametrize(
    "text", ["", "@@", "@@ -1 +1 @@", "diff --git", "--- \n+++ ", "\x00\xff", '"', "---"]
)
def test_changed_paths_and_hunk_count_never_raise(text: str) -> None:
    """Garbage gives no paths and no hunks."""
    assert changed_paths(text) == []
    assert hunk_count(text) == 0


def test_hunk_count_counts_every_file() -> None:
    """Two hunks in one file plus one in another."""
    assert hunk_count(GIT_DIFF) == 3


DIFFISH = st.lists(
    st.sampled_from(
        [
            "diff --git a/x b/y",
            'diff --git "a/\\303 x" b/y',
            "--- a/x",
            "+++ b/x",
            "--- /dev/null",
            "+++ /dev/null",
            "@@ -1,2 +1,2 @@",
            "@@ -0,0 +1 @@",
            "@@",
            " ctx",
            "-old",
            "+new",
            "",
            "\\ No newline at end of file",
            "rename from z",
            "new file mode 100644",
            "Binary files a/x and b/x differ",
            "prose",
        ]
    )
).map("\n".join)


@given(st.one_of(st.text(), DIFFISH))
def test_parsing_raises_nothing_but_diff_error(text: str) -> None:
    """Any text parses or raises DiffError; the helpers never raise."""
    try:
        files = parse_diff(text)
    except DiffError:
        files = []
    assert hunk_count(text) == sum(len(item.hunks) for item in files)
    assert None not in changed_paths(text)
    assert "/dev/null" not in changed_paths(text)
    commentable_lines(text)


@given(st.text(min_size=1))
def test_quoting_a_path_reads_back(path: str) -> None:
    """quote_path and unquote_path are inverse (for text that is valid UTF-8)."""
    path = path.encode("utf-8", "replace").decode("utf-8", "replace")
    quoted = quote_path(path)
    assert unquote_path(quoted) == (path, len(quoted)) if quoted.startswith('"') else quoted == path


GITHUB_PATCH = """\
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
\\ No newline at end of file""".replace("{blank}", " ")  # a blank context line is one space


def test_commentable_lines_lists_the_head_lines_each_hunk_shows() -> None:
    """Added lines have no old number; unchanged ones have both; removed ones are not shown."""
    first, second = commentable_lines(GITHUB_PATCH)
    assert (first.first, first.last, second.first, second.last) == (10, 17, 42, 45)
    assert [(s.new_line, s.old_line) for s in first.lines] == [
        (10, 10),
        (11, 11),
        (12, None),
        (13, None),
        (14, None),
        (15, 13),
        (16, 14),
        (17, 15),
    ]
    added, unchanged = second.line(43), second.line(44)
    assert added is not None
    assert added.added
    assert unchanged is not None
    assert (unchanged.added, unchanged.old_line, unchanged.text) == (False, 41, "    run(args)")
    assert second.line(46) is None
    assert first.covers(12, 17)
    assert not first.covers(17, 18)


def test_commentable_lines_of_a_new_file_are_all_added() -> None:
    """GitLab's diff for a new file: every line is added, numbered from 1."""
    (hunk,) = commentable_lines("@@ -0,0 +1,3 @@\n+a\n+b\n+c\n")
    assert [(s.new_line, s.added) for s in hunk.lines] == [(1, True), (2, True), (3, True)]


def test_commentable_lines_skips_file_headers_and_garbage() -> None:
    """A patch with headers reads like one without; garbage shows nothing."""
    with_headers = "diff --git a/x b/x\n--- a/x\n+++ b/x\n" + GITHUB_PATCH
    assert commentable_lines(with_headers) == commentable_lines(GITHUB_PATCH)
    assert commentable_lines("Binary file") == ()
    assert commentable_lines("@@ -1,2 +1,0 @@\n-a\n-b\n") == ()


@pytest.mark.parametrize(
    ("old", "new", "paths"),
    [
        ("a/src/x.py", "src/x.py", ["src/x.py"]),
        ("src/x.py", "b/src/x.py", ["src/x.py"]),
        ("a/x.py", "a/x.py", ["a/x.py"]),  # a folder named 'a' in a diff without prefixes
    ],
)
def test_a_prefix_on_one_side_only_is_dropped_when_the_names_then_agree(
    old: str, new: str, paths: list[str]
) -> None:
    """Models write '--- a/x' over '+++ x'; a real folder named 'a' is kept."""
    assert changed_paths(f"--- {old}\n+++ {new}\n@@ -1 +1 @@\n-a\n+b\n") == paths
