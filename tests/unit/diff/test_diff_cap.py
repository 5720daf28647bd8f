"""Capping a diff at a byte budget, whole files first; the attributes hydration builds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mecha.diff.cap import (
    cap_diff,
    format_size,
    section_file,
    split_sections,
    truncation_marker,
)
from mecha.forges.hydration import RawDiff, attr_int, build_hydration, failed


def _section(name: str, body_lines: int = 3, line: str = "+x") -> str:
    body = "".join(f"{line}{i}\n" for i in range(body_lines))
    return f"diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n@@ -0,0 +1 @@\n{body}"


def _diff(*sections: str) -> str:
    return "".join(sections)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _without_marker(text: str) -> str:
    body, _, marker = text.rstrip("\n").rpartition("\n")
    assert marker.startswith("... (diff truncated at ")
    return body + "\n" if body else ""


def test_a_diff_within_the_cap_is_unchanged() -> None:
    """Nothing is cut, no marker, nothing omitted."""
    diff = _diff(_section("a.py"), _section("b.py"))
    capped = cap_diff(diff, _size(diff))
    assert (capped.text, capped.truncated, capped.omitted) == (diff, False, ())


def test_whole_files_are_kept_in_order_and_the_rest_named() -> None:
    """The cut falls between files; the marker counts and points at files_omitted."""
    sections = [_section(f"f{i}.py") for i in range(5)]
    budget = _size(sections[0]) * 2 + 10
    capped = cap_diff(_diff(*sections), budget)
    assert capped.truncated
    assert capped.omitted == ("f2.py", "f3.py", "f4.py")
    assert capped.text == _diff(*sections[:2]) + (
        f"... (diff truncated at {budget} bytes: 3 of 5 files left out, listed in files_omitted)\n"
    )


def test_an_oversized_file_is_skipped_and_later_ones_still_fit() -> None:
    """A huge generated file does not push out every file after it."""
    small, huge, last = _section("a.py"), _section("lock.json", 500), _section("z.py")
    capped = cap_diff(_diff(small, huge, last), _size(small) + _size(last) + 5)
    assert capped.omitted == ("lock.json",)
    assert _without_marker(capped.text) == small + last


def test_a_single_file_larger_than_the_cap_is_cut_inside_at_a_line_end() -> None:
    """Not even one file fits: the first is cut, and the marker says so."""
    huge = _section("big.py", 1000)
    capped = cap_diff(huge, 2_000)
    shown = _without_marker(capped.text)
    assert capped.truncated and capped.cut_short == "big.py" and capped.omitted == ()
    assert _size(shown) <= 2_000 and shown.endswith("\n") and huge.startswith(shown)
    assert capped.text.endswith("... (diff truncated at 2 KB: big.py cut short)\n")


def test_the_cap_counts_utf8_bytes_and_never_splits_a_character() -> None:
    """Multi-byte text is measured in bytes; a cut inside leaves valid text."""
    huge = _section("ü.txt", 400, line="+ééé")
    capped = cap_diff(huge, 1_001)
    shown = _without_marker(capped.text)
    assert _size(shown) <= 1_001
    assert "\ufffd" not in shown


def test_an_incomplete_read_never_shows_its_last_section_as_whole() -> None:
    """When the read stopped at a limit, the last section may be partial: it is left out."""
    first, second = _section("a.py"), _section("b.py")[:30]
    capped = cap_diff(first + second, 10_000, complete=False)
    assert capped.truncated and capped.omitted == ("b.py",)
    assert _without_marker(capped.text) == first


def test_files_the_text_never_reached_are_listed_from_the_file_list() -> None:
    """Names from the forge's file list that the diff text never reached count as left out."""
    first = _section("a.py")
    capped = cap_diff(first, 10, complete=False, all_files=["a.py", "b.py", "c.py"])
    assert capped.cut_short == "a.py"
    assert capped.omitted == ("b.py", "c.py")
    assert "a.py cut short, 2 of 3 files left out" in capped.text


def test_text_before_the_first_file_is_kept_and_counted() -> None:
    """A preamble (not a file) stays in front and uses budget."""
    preamble, body = "From abc\n\n", _section("a.py")
    capped = cap_diff(preamble + body, _size(preamble) + _size(body))
    assert capped.text == preamble + body
    assert split_sections(preamble + body) == (preamble, [body])


def test_text_that_is_no_git_diff_is_cut_as_text() -> None:
    """Without any diff --git header, the text itself is cut to the cap."""
    capped = cap_diff("line\n" * 1000, 100)
    assert _size(_without_marker(capped.text)) <= 100


def test_section_file_reads_the_new_name() -> None:
    """Renames, spaces and git's C-quoted names give the new path."""
    assert section_file("diff --git a/old.py b/new.py\n") == "new.py"
    assert section_file("diff --git a/my file b/my file\n") == "my file"
    assert section_file("diff --git a/a b/c b/a b/c\n") == "a b/c"
    quoted = 'diff --git "a/\\303\\251t\\303\\251.txt" "b/\\303\\251t\\303\\251.txt"\n'
    assert section_file(quoted) == "été.txt"
    assert section_file('diff --git "a/tab\\there" "b/tab\\there"\n') == "tab\there"


def test_sizes_and_the_marker_read_as_people_write_them() -> None:
    """500 KB, 1.5 MB, 900 bytes; the marker names counts."""
    assert [format_size(n) for n in (500_000, 1_500_000, 2_000_000, 900)] == [
        "500 KB",
        "1.5 MB",
        "2 MB",
        "900 bytes",
    ]
    assert truncation_marker(500_000, 3, 40) == (
        "... (diff truncated at 500 KB: 3 of 40 files left out, listed in files_omitted)"
    )


def test_build_hydration_sets_every_attribute() -> None:
    """diff, file_list, diff_truncated, files_omitted and diff_error, all text."""
    sections = [_section(f"f{i}.py") for i in range(3)]
    names = ["f0.py", "f1.py", "f2.py"]
    hydration = build_hydration(RawDiff(_diff(*sections)), names, max_bytes=_size(sections[0]))
    assert hydration.error == ""
    assert hydration.attrs["file_list"] == "f0.py\nf1.py\nf2.py"
    assert hydration.attrs["diff_truncated"] == "true"
    assert hydration.attrs["files_omitted"] == "f1.py\nf2.py"
    assert hydration.attrs["diff_error"] == ""
    assert hydration.attrs["diff"].startswith(sections[0])


def test_a_failed_hydration_has_empty_values_and_the_error() -> None:
    """Nothing fetched: every value empty, the error in diff_error too."""
    hydration = failed("GitHub compare answered 404: Not Found")
    assert hydration.error == "GitHub compare answered 404: Not Found"
    assert hydration.attrs == {
        "diff": "",
        "file_list": "",
        "diff_truncated": "false",
        "files_omitted": "",
        "diff_error": "GitHub compare answered 404: Not Found",
    }


def test_errors_are_joined_and_a_diff_still_kept() -> None:
    """A failed file list does not lose the diff."""
    hydration = build_hydration(RawDiff("x\n"), None, ["", "files answered 500: boom"], max_bytes=9)
    assert hydration.error == "files answered 500: boom"
    assert hydration.attrs["diff"] == "x\n"


def test_attr_int_reads_numbers_and_digit_text_only() -> None:
    """7 and "7" are 7; anything else (True, "x", -1, None) is 0."""
    assert [attr_int(v) for v in (7, "7", True, "x", -1, None)] == [7, 7, 0, 0, 0, 0]


_NAMES = st.text(alphabet="abcxyz_./é", min_size=1, max_size=8).filter(
    lambda name: " b/" not in name and not name.startswith('"')
)


@given(
    files=st.lists(st.tuples(_NAMES, st.integers(0, 60)), min_size=1, max_size=8),
    max_bytes=st.integers(1, 3_000),
    complete=st.booleans(),
)
def test_every_file_is_shown_omitted_or_cut_and_the_cap_holds(
    files: list[tuple[str, int]], max_bytes: int, complete: bool
) -> None:
    """Property: the kept text fits the cap, and no file goes unaccounted for."""
    sections = [_section(name, lines) for name, lines in files]
    capped = cap_diff(_diff(*sections), max_bytes, complete=complete)
    if not capped.truncated:
        assert capped.text == _diff(*sections)
        return
    shown = _without_marker(capped.text)
    assert _size(shown) <= max_bytes
    # a file is cut inside only when no whole one fits: then it is all that is shown
    kept = [section_file(part) for part in split_sections(shown)[1]]
    if capped.cut_short:
        kept = [capped.cut_short]
    assert sorted(kept + list(capped.omitted)) == sorted(name for name, _ in files)
