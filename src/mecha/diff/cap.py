"""Cutting a unified diff down to a byte budget, whole files first: ``cap_diff``.

A diff is a run of sections, one per file, each starting with ``diff --git a/.. b/..``.
``cap_diff`` keeps the sections that fit in ``max_bytes`` (UTF-8), in order, skipping any
that would not fit, so that a huge generated file does not push out every file after it.
The files left out are named, and a visible marker line at the end says what happened. When
not even one whole section fits, the first one is cut inside, at a line end. Pure: text in,
text out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: how each file's section starts
DIFF_HEADER = "diff --git "
_SECTION = re.compile(r"^diff --git ", re.MULTILINE)


@dataclass(frozen=True)
class CappedDiff:
    """A diff after capping: the text to show and what was left out of it."""

    text: str
    truncated: bool = False
    #: files wholly left out, in diff order (then any the diff text never reached)
    omitted: tuple[str, ...] = ()
    #: a file shown only in part, "" if none
    cut_short: str = ""


def cap_diff(
    diff: str, max_bytes: int, *, complete: bool = True, all_files: Sequence[str] = ()
) -> CappedDiff:
    """``diff`` cut to at most ``max_bytes`` UTF-8 bytes plus a marker line when cut.

    ``complete`` is False when the text itself was cut short on the way (a read limit): its
    last section is then never shown as if whole. ``all_files``, when known (from the forge's
    file list), names files the text never reached, so they are listed as left out too.
    """
    if complete and len(diff.encode("utf-8")) <= max_bytes:
        return CappedDiff(diff)
    preamble, sections = split_sections(diff)
    preamble = cut_inside(preamble, max_bytes)
    budget = max_bytes - len(preamble.encode("utf-8"))
    kept, omitted = _fit(sections if complete else sections[:-1], budget)
    if not complete and sections:
        omitted.append(section_file(sections[-1]))
    cut_short = ""
    if not kept and sections and budget > 0:
        kept.append(cut_inside(sections[0], budget))
        cut_short = omitted.pop(0)
    seen = {section_file(section) for section in sections}
    omitted += [name for name in all_files if name and name not in seen]
    total = max(len(sections), len(seen | set(all_files)))
    marker = truncation_marker(max_bytes, len(omitted), total, cut_short)
    return CappedDiff(_joined(preamble + "".join(kept), marker), True, tuple(omitted), cut_short)


def file_section(
    old: str, new: str, hunks: str, *, status: str = "modified", note: str = ""
) -> str:
    """One file's ``diff --git`` section, built from its hunks (``@@ ...``) as git writes it.

    ``status`` is added, removed, renamed or modified; ``note`` is a line said in place of
    hunks the forge did not send (e.g. a binary or too large file).
    """
    lines = [f"{DIFF_HEADER}a/{old} b/{new}"]
    if status == "added":
        lines.append("new file mode 100644")
    elif status == "removed":
        lines.append("deleted file mode 100644")
    elif status == "renamed":
        lines += [f"rename from {old}", f"rename to {new}"]
    if hunks and not hunks.startswith("--- "):
        lines.append("--- /dev/null" if status == "added" else f"--- a/{old}")
        lines.append("+++ /dev/null" if status == "removed" else f"+++ b/{new}")
    elif not hunks and note:
        lines.append(note)
    text = "\n".join([*lines, hunks]) if hunks else "\n".join(lines)
    return text if text.endswith("\n") else text + "\n"


def split_sections(diff: str) -> tuple[str, list[str]]:
    """Text before the first ``diff --git`` line, and one text per file section."""
    starts = [match.start() for match in _SECTION.finditer(diff)]
    if not starts:
        return diff, []
    ends = [*starts[1:], len(diff)]
    return diff[: starts[0]], [diff[start:end] for start, end in zip(starts, ends, strict=True)]


def section_file(section: str) -> str:
    """The file a section is about: the ``b/`` path of its header (the new name)."""
    header = section.split("\n", 1)[0].removeprefix(DIFF_HEADER).rstrip("\r")
    if header.startswith('"'):
        return _quoted_new_path(header)
    rest = header.removeprefix("a/")
    half = (len(rest) - 3) // 2
    if rest[half : half + 3] == " b/" and rest[:half] == rest[half + 3 :]:
        return rest[:half]
    _, sep, new = header.rpartition(" b/")
    return new if sep else header


def cut_inside(section: str, max_bytes: int) -> str:
    """At most ``max_bytes`` UTF-8 bytes of ``section``, ending with a line end.

    The cut falls at the last line end that fits; with none, inside the line, leaving a byte
    for the line end the marker line needs.
    """
    raw = section.encode("utf-8")
    if len(raw) <= max_bytes:
        return section
    head = raw[:max_bytes].decode("utf-8", errors="ignore")
    end = head.rfind("\n")
    if end >= 0:
        return head[: end + 1]
    return raw[: max_bytes - 1].decode("utf-8", errors="ignore")


def truncation_marker(max_bytes: int, omitted: int, total: int, cut_short: str = "") -> str:
    """The line that says a diff was cut, e.g. ``... (diff truncated at 500 KB: ...)``."""
    parts = [f"{cut_short} cut short"] if cut_short else []
    if omitted or not cut_short:
        parts.append(f"{omitted} of {total} files left out, listed in files_omitted")
    return f"... (diff truncated at {format_size(max_bytes)}: {', '.join(parts)})"


def format_size(size: int) -> str:
    """Bytes as people write them: ``500 KB``, ``2 MB``, ``1.5 MB``, ``900 bytes``."""
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _fit(sections: Sequence[str], budget: int) -> tuple[list[str], list[str]]:
    """The sections that fit in ``budget`` bytes, in order, and the names of the others."""
    kept: list[str] = []
    omitted: list[str] = []
    for section in sections:
        size = len(section.encode("utf-8"))
        if size <= budget:
            kept.append(section)
            budget -= size
        else:
            omitted.append(section_file(section))
    return kept, omitted


def _joined(shown: str, marker: str) -> str:
    if shown and not shown.endswith("\n"):
        shown += "\n"
    return f"{shown}{marker}\n"


def _quoted_new_path(header: str) -> str:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', header)
    path = parts[-1] if parts else header.strip('"')
    return _unescape(path).removeprefix("b/")


_ESCAPES = {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\", "a": b"\a", "b": b"\b"}
_ESCAPES.update({"f": b"\f", "r": b"\r", "v": b"\v"})


def _unescape(quoted: str) -> str:
    """Git's C-style quoting undone: ``\\303\\251`` (octal UTF-8 bytes) becomes ``é``."""
    out = bytearray()
    pos = 0
    while pos < len(quoted):
        char = quoted[pos]
        octal = re.match(r"[0-3][0-7]{2}", quoted[pos + 1 : pos + 4])
        if char == "\\" and octal:
            out.append(int(octal.group(), 8))
            pos += 4
        elif char == "\\" and quoted[pos + 1 : pos + 2] in _ESCAPES:
            out += _ESCAPES[quoted[pos + 1]]
            pos += 2
        else:
            out += char.encode("utf-8")
            pos += 1
    return out.decode("utf-8", errors="replace")
