"""Comment bodies as each forge takes them: ``fitted_body`` (GitHub), ``note_body`` (GitLab).

Pure text, no I/O: the forge clients send these bodies, and the engine's write-back
records them first (``comment_body``), so the ledger keeps what reaches the forge.

* A GitHub comment or review body holds at most 65 536 characters (``MAX_COMMENT``):
  ``fitted_body`` cuts the text (never the hidden markers), closes a code block the cut
  left open, and says so.
* A GitLab note holds at most 1 000 000 (``NOTE_LIMIT``): ``note_body`` cuts the text and
  says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mecha.policy.writes import Write, marked_body

#: GitHub's limit on a comment (or review) body, in characters
MAX_COMMENT = 65536
#: the longest note GitLab keeps, in characters
NOTE_LIMIT = 1_000_000
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_CUT = "\n\n… (cut here: a GitLab note holds at most 1,000,000 characters)"


def fitted_body(write: Write, text: str, *, limit: int = MAX_COMMENT) -> str:
    """``text`` with the write's markers, cut with a note when it is longer than ``limit``."""
    body = marked_body(write, text)
    if len(body) <= limit:
        return body
    note = f"\n\n… (cut: the text has {len(text):,} characters, more than GitHub takes)"
    room = limit - (len(marked_body(write, "x" + note)) - 1)
    kept = _closed(text[: max(0, room)])
    if len(kept) > room:
        kept = _closed(text[: max(0, room - (len(kept) - room))])
    body = marked_body(write, kept + note)
    if len(body) > limit:  # a fence opened only by the second cut: cut without closing it
        body = marked_body(write, text[: max(0, room)] + note)
    return body


def note_body(write: Write, text: str) -> str:
    """``text`` with the write's hidden markers, cut to fit in one note."""
    body = marked_body(write, text)
    if len(body) <= NOTE_LIMIT:
        return body
    room = NOTE_LIMIT - len(marked_body(write, "")) - len(_CUT)
    return marked_body(write, text[:room] + _CUT)


#: each forge whose client cuts a comment's body, and how
_FITS: dict[str, Callable[[Write, str], str]] = {"github": fitted_body, "gitlab": note_body}


def comment_body(write: Write) -> str | None:
    """The body ``write``'s forge client sends for it, markers and all; None for a forge
    whose client sends the text as it is (generic)."""
    fit = _FITS.get(write.place.forge)
    return fit(write, write.body) if fit is not None else None


def _closed(text: str) -> str:
    """``text``, with a fenced code block it leaves open closed."""
    fence = ""
    for line in text.split("\n"):
        found = _FENCE.match(line)
        if not found:
            continue
        mark = found[1]
        if not fence:
            fence = mark
        elif set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
            fence = ""
    return f"{text}\n{fence}" if fence else text
