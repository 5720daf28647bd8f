"""Commit suggestions placed on a pull request's diff, as review comments a person can apply.

A worker may answer with a unified diff against the pull request's head. ``place_suggestions``
turns each hunk of it into a ``Suggestion``: the head-side lines it replaces and the text that
replaces them, which a forge shows as a ```` ```suggestion ```` block (GitHub) or a
```` ```suggestion:-N+0 ```` block (GitLab). Forges take such comments only on lines the pull
request's diff shows, and GitHub wants a multi-line comment's first and last line in one hunk;
hunks that cannot be placed so come back as diff text with the reason, for a plain comment
built with ``diff_block``.

Each hunk is trimmed to its changed lines first (leading and trailing context dropped), so a
fix with three lines of context still lands when only the changed lines are shown. A hunk
that only adds lines hangs on the context line next to them. Every line the hunk claims the
head has is checked against the head text the pull request's diff shows: a wrong line number
would otherwise replace the wrong code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mecha.diff.unified import (
    DiffError,
    FileDiff,
    Hunk,
    ShownHunk,
    ShownLine,
    commentable_lines,
    parse_diff,
)

#: GitLab takes at most this many lines above (and below) the commented line in a suggestion
GITLAB_MAX_ABOVE = 100


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Replace head lines ``start_line``..``line`` of ``path`` with ``replacement``.

    ``replacement`` is whole lines, each ending in a newline; ``""`` deletes the lines.
    ``anchor_old_line`` is the old-side number of ``line`` when the pull request's diff shows
    it as unchanged, None when the pull request added it (GitLab positions need both numbers
    for an unchanged line).
    """

    path: str
    start_line: int
    line: int
    replacement: str
    anchor_old_line: int | None

    @property
    def lines_above(self) -> int:
        """How many lines the suggestion covers above ``line`` (GitLab's ``-N``)."""
        return self.line - self.start_line


@dataclass(frozen=True, slots=True)
class Placement:
    """The suggestions that could be placed, and the hunks that could not with the reasons."""

    suggestions: tuple[Suggestion, ...]
    unplaced: tuple[str, ...]  # diff text, file header included, one entry per hunk
    reasons: tuple[str, ...]  # one per unplaced entry, same order


@dataclass(frozen=True, slots=True)
class _Row:
    kind: str  # ' ', '+' or '-'
    head: int | None  # head-side line number; None for an added line
    text: str


def place_suggestions(diff: str, pr_files: Mapping[str, str]) -> Placement:
    """Place each hunk of ``diff`` on the pull request's diff; never raises.

    ``pr_files`` maps each head path to that file's patch in the pull request (hunks text
    beginning with ``@@``, as the forges give it).
    """
    try:
        files = parse_diff(diff)
    except DiffError as error:
        return Placement((), (diff,), (f"the suggestion is not a unified diff: {error.message}",))
    placed: list[Suggestion] = []
    unplaced: list[str] = []
    reasons: list[str] = []
    for item in files:
        refusal = _refuse_file(item, pr_files)
        if refusal:
            texts = _hunk_texts(item)
            unplaced.extend(texts)
            reasons.extend([refusal] * len(texts))
            continue
        shown = commentable_lines(pr_files[item.path])
        for hunk in item.hunks:
            result = _place_hunk(item.path, hunk, shown)
            if isinstance(result, Suggestion) and _overlaps(result, placed):
                where = _where(item.path, result.start_line, result.line)
                result = f"{where} overlap another suggestion"
            if isinstance(result, Suggestion):
                placed.append(result)
            elif result:
                unplaced.append(item.header() + hunk.text())
                reasons.append(result)
    return Placement(tuple(placed), tuple(unplaced), tuple(reasons))


def _refuse_file(item: FileDiff, pr_files: Mapping[str, str]) -> str:
    """Why no hunk of this file can be a suggestion, or ``""``."""
    refusals = (
        (item.is_binary, f"{item.path} is a binary file; a suggestion can only change text"),
        (item.is_new, f"{item.path} is a new file; a suggestion can only change lines that exist"),
        (item.is_deleted, f"{item.path} is deleted; a suggestion cannot delete a file"),
        (item.is_rename, f"{item.old_path} is renamed to {item.new_path}; a suggestion cannot"),
        (item.path not in pr_files, f"{item.path} is not changed by the pull request"),
        (not item.hunks, f"{item.path} changes only the file's mode"),
    )
    return next((reason for refused, reason in refusals if refused), "")


def _hunk_texts(item: FileDiff) -> list[str]:
    return [item.header() + hunk.text() for hunk in item.hunks] or [item.header()]


def _overlaps(new: Suggestion, placed: list[Suggestion]) -> bool:
    return any(
        old.path == new.path and old.start_line <= new.line and new.start_line <= old.line
        for old in placed
    )


def _place_hunk(path: str, hunk: Hunk, shown: tuple[ShownHunk, ...]) -> Suggestion | str:
    """The suggestion for one hunk, or why there is none (``""``: the hunk changes nothing)."""
    rows = _rows(hunk)
    changed = [at for at, row in enumerate(rows) if row.kind != " "]
    if not changed:
        return ""
    if hunk.old_len == 0:
        return (
            f"{path}: the lines added after line {hunk.old_start} come without context lines, "
            "so where they go cannot be checked against the pull request's head"
        )
    by_number = {line.new_line: line for part in shown for line in part.lines}
    for row in rows:
        seen = by_number.get(row.head) if row.head is not None else None
        if seen is not None and seen.text.rstrip() != row.text.rstrip():
            return f"{path} line {row.head} does not match the pull request's head"
    core = rows[changed[0] : changed[-1] + 1]
    if all(row.kind == "+" for row in core):
        return _place_insertion(path, rows, changed, shown)
    return _replace(path, core, shown, by_number)


def _rows(hunk: Hunk) -> list[_Row]:
    rows: list[_Row] = []
    head = hunk.old_start
    for line in hunk.lines:
        kind, text = line[:1], line[1:]
        if kind == "+":
            rows.append(_Row(kind, None, text))
        elif kind in (" ", "-"):
            rows.append(_Row(kind, head, text))
            head += 1
    return rows


def _replace(
    path: str,
    core: list[_Row],
    shown: tuple[ShownHunk, ...],
    by_number: Mapping[int, ShownLine],
) -> Suggestion | str:
    """Replace the head lines ``core`` covers by its new side."""
    numbers = [row.head for row in core if row.head is not None]
    start, end = numbers[0], numbers[-1]
    hunk = next((part for part in shown if part.covers(start, end)), None)
    if hunk is None:
        return _outside(path, start, end, by_number)
    text = "".join(
        f"{by_number[row.head].text if row.head is not None and row.kind == ' ' else row.text}\n"
        for row in core
        if row.kind != "-"
    )
    anchor = by_number[end]
    return Suggestion(path, start, end, text, anchor.old_line)


def _place_insertion(
    path: str, rows: list[_Row], changed: list[int], shown: tuple[ShownHunk, ...]
) -> Suggestion | str:
    """Hang added lines on the context line before them, or else the one after them."""
    added = "".join(f"{rows[at].text}\n" for at in changed)
    first, last = changed[0], changed[-1]
    before = rows[first - 1] if first > 0 else None
    after = rows[last + 1] if last + 1 < len(rows) else None
    for neighbour, is_before in ((before, True), (after, False)):
        if neighbour is None or neighbour.head is None:
            continue
        line = next((p.line(neighbour.head) for p in shown if p.line(neighbour.head)), None)
        if line is not None:
            kept = f"{line.text}\n"
            text = kept + added if is_before else added + kept
            return Suggestion(path, line.new_line, line.new_line, text, line.old_line)
    numbers = [row.head for row in (before, after) if row is not None and row.head is not None]
    if not numbers:
        return f"{path}: the added lines have no context line to hang on"
    return _outside(path, min(numbers), max(numbers), {})


def _outside(path: str, start: int, end: int, by_number: Mapping[int, ShownLine]) -> str:
    where = _where(path, start, end)
    if all(number in by_number for number in range(start, end + 1)):
        return f"{where} are not all in one hunk of the pull request's diff"
    verb = "is" if start == end else "are"
    return f"{where} {verb} not in the pull request's diff"


def _where(path: str, start: int, end: int) -> str:
    return f"{path} line {start}" if start == end else f"{path} lines {start}-{end}"


def suggestion_block(replacement: str, *, gitlab_above: int | None = None) -> str:
    """A suggestion block: GitHub's ```` ```suggestion ````, or GitLab's ``suggestion:-N+0``.

    ``gitlab_above`` is how many lines above the commented line the suggestion replaces too
    (``Suggestion.lines_above``); GitLab takes at most ``GITLAB_MAX_ABOVE``. The fence is longer
    than any run of backticks in ``replacement``.
    """
    if gitlab_above is not None and not 0 <= gitlab_above <= GITLAB_MAX_ABOVE:
        raise ValueError(
            f"a GitLab suggestion reaches 0 to {GITLAB_MAX_ABOVE} lines above its line, "
            f"not {gitlab_above}; post it as a diff comment instead"
        )
    body = _lines(replacement)
    fence = _fence(body)
    info = "suggestion" if gitlab_above is None else f"suggestion:-{gitlab_above}+0"
    return f"{fence}{info}\n{body}{fence}"


def diff_block(message: str, diff: str) -> str:
    """A plain comment carrying a suggested commit: its message, then the diff in a block."""
    subject, _, rest = message.strip().replace("\r\n", "\n").partition("\n")
    head = f"**Suggested commit:** {subject.strip()}" if subject.strip() else "**Suggested change**"
    if rest.strip():
        head += f"\n\n{rest.strip()}"
    body = _lines(diff)
    fence = _fence(body)
    return f"{head}\n\n{fence}diff\n{body}{fence}"


def _lines(text: str) -> str:
    text = text.replace("\r\n", "\n")
    return text if not text or text.endswith("\n") else text + "\n"


def _fence(body: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)
