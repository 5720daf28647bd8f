"""Unified diffs: git's format and the plain ``---``/``+++`` one, as tools and models write them.

``parse_diff`` reads a diff into ``FileDiff`` values and raises ``DiffError`` when the text holds
no diff at all. It forgives what language models tend to write: prose around the diff, no
``diff --git`` line, CRLF line ends, hunk headers without counts (``@@ -3 +3 @@``) or with
counts that disagree with the body (the body wins, but a hunk never runs past the next header),
blank context lines whose leading space was lost, and git's quoted paths (``"a/x\\ty"``,
read and written by ``mecha.diff.paths``).

``changed_paths`` and ``hunk_count`` never raise: they answer ``[]`` and ``0`` for text that is
not a diff. ``commentable_lines`` reads one file's patch as a forge shows it and says which
head-side lines a review comment can be placed on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mecha.diff.paths import quote_path, unquote_path
from mecha.errors import MechaError

_HUNK = re.compile(r"^@@+ *-(\d+)(?:,(\d+))? +\+(\d+)(?:,(\d+))?(?: *@@.*)?$")


class DiffError(MechaError):
    """The text is not a unified diff."""


@dataclass(frozen=True, slots=True)
class Hunk:
    """One ``@@`` block. ``lines`` keep their prefix: ``' '``, ``'+'``, ``'-'``, or ``'\\'``.

    The ``\\ No newline at end of file`` markers stay in ``lines`` (so the hunk can be written
    back as it came) but count for neither side. ``old_len`` and ``new_len`` are counted from
    the body, which is trusted over the header.
    """

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[str, ...]

    def header(self) -> str:
        """``@@ -a,b +c,d @@`` for this hunk."""
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"

    def text(self) -> str:
        """The hunk as diff text, header included, ending in a newline."""
        return "".join(f"{line}\n" for line in (self.header(), *self.lines))


@dataclass(frozen=True, slots=True)
class FileDiff:
    """The changes to one file. A path is ``None`` where the diff says ``/dev/null``."""

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...]
    is_new: bool = False
    is_deleted: bool = False
    is_binary: bool = False

    @property
    def path(self) -> str:
        """The file's name after the change (before it, for a deleted file)."""
        return self.new_path or self.old_path or ""

    @property
    def is_rename(self) -> bool:
        """Both sides are named, and differently."""
        return None not in (self.old_path, self.new_path) and self.old_path != self.new_path

    def header(self) -> str:
        """``--- a/old`` and ``+++ b/new`` lines (``/dev/null`` for an absent side)."""
        old = "/dev/null" if self.old_path is None else quote_path("a/" + self.old_path)
        new = "/dev/null" if self.new_path is None else quote_path("b/" + self.new_path)
        return f"--- {old}\n+++ {new}\n"


@dataclass(frozen=True, slots=True)
class ShownLine:
    """A head-side line a forge shows in a pull request's diff."""

    new_line: int
    old_line: int | None  # None when the pull request added the line
    text: str

    @property
    def added(self) -> bool:
        """The pull request added this line (it has no old-side number)."""
        return self.old_line is None


@dataclass(frozen=True, slots=True)
class ShownHunk:
    """The head-side lines one hunk of a pull request's diff shows, in order, without gaps."""

    lines: tuple[ShownLine, ...]

    @property
    def first(self) -> int:
        """The first head-side line shown."""
        return self.lines[0].new_line

    @property
    def last(self) -> int:
        """The last head-side line shown."""
        return self.lines[-1].new_line

    def covers(self, start: int, end: int) -> bool:
        """Every head-side line from ``start`` to ``end`` is shown by this hunk."""
        return self.first <= start <= end <= self.last

    def line(self, number: int) -> ShownLine | None:
        """The shown line with head-side number ``number``, if this hunk shows it."""
        if not self.first <= number <= self.last:
            return None
        return self.lines[number - self.first]


def changed_paths(diff: str) -> list[str]:
    """Every path the diff touches, old and new names, first-seen order; ``[]`` if not a diff."""
    try:
        files = parse_diff(diff)
    except DiffError:
        return []
    seen: dict[str, None] = {}
    for item in files:
        for path in (item.old_path, item.new_path):
            if path:
                seen.setdefault(path, None)
    return list(seen)


def hunk_count(diff: str) -> int:
    """How many hunks the diff has; 0 if it is not a diff."""
    try:
        return sum(len(item.hunks) for item in parse_diff(diff))
    except DiffError:
        return 0


def commentable_lines(patch: str) -> tuple[ShownHunk, ...]:
    """The head-side lines each hunk of one file's patch shows; never raises.

    ``patch`` is the hunks of one file as GitHub's ``GET /pulls/{n}/files`` gives them in
    ``patch`` or GitLab gives them in a merge request's ``diff``; file headers are skipped.
    Removed lines are on the old side only and are not listed, but they advance its count.
    """
    lines = _split(patch)
    shown: list[ShownHunk] = []
    index = 0
    while index < len(lines):
        match = _HUNK.match(lines[index])
        if match is None:
            index += 1
            continue
        hunk, index = _read_hunk(lines, index, match)
        head = _shown(hunk)
        if head:
            shown.append(ShownHunk(head))
    return tuple(shown)


def _shown(hunk: Hunk) -> tuple[ShownLine, ...]:
    old, new = hunk.old_start, hunk.new_start
    out: list[ShownLine] = []
    for line in hunk.lines:
        kind, text = line[:1], line[1:]
        if kind == " ":
            out.append(ShownLine(new, old, text))
            old, new = old + 1, new + 1
        elif kind == "+":
            out.append(ShownLine(new, None, text))
            new += 1
        elif kind == "-":
            old += 1
    return tuple(out)


def parse_diff(text: str) -> list[FileDiff]:
    """The files ``text`` changes; ``DiffError`` if it holds no diff."""
    lines = _split(text)
    files: list[_File] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _HUNK.match(line)
        if line.startswith("diff --git "):
            files.append(_File.from_git_line(line))
        elif _is_file_header(lines, index):
            _plain_header(files, line, lines[index + 1])
            index += 1
        elif match is not None:
            if not files:
                raise DiffError(
                    f"the hunk at line {index + 1} does not say which file it changes",
                    hint="start each file's changes with '--- a/<path>' and '+++ b/<path>' lines",
                )
            hunk, index = _read_hunk(lines, index, match)
            files[-1].add(hunk)
            continue
        elif line.startswith("@@"):
            raise DiffError(
                f"line {index + 1} starts a hunk without line numbers: {line[:60]!r}",
                hint="write hunk headers as '@@ -<old start>,<count> +<new start>,<count> @@'",
            )
        elif files:
            files[-1].extended_header(line)
        index += 1
    result = [item.build() for item in files if item.worth_keeping()]
    if not result:
        raise DiffError(
            "the text holds no unified diff: no file has a hunk",
            hint="give a unified diff ('git diff' output) with '---', '+++' and '@@' lines",
        )
    return result


def _split(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _is_file_header(lines: list[str], index: int) -> bool:
    return (
        lines[index].startswith("--- ")
        and index + 1 < len(lines)
        and lines[index + 1].startswith("+++ ")
    )


def _plain_header(files: list[_File], old_line: str, new_line: str) -> None:
    old, new = _header_path(old_line[4:]), _header_path(new_line[4:])
    current = files[-1] if files else None
    if current is None or not current.awaits_names():
        current = _File()
        files.append(current)
    current.set_names(old, new)


def _header_path(raw: str) -> str | None:
    if raw.startswith('"'):
        path, _ = unquote_path(raw)
    else:
        path = raw.split("\t", 1)[0].rstrip()
    return None if path == "/dev/null" else path


@dataclass(slots=True)
class _File:
    """A file being read; ``build`` turns it into a FileDiff."""

    old: str | None = None
    new: str | None = None
    git: bool = False
    named: bool = False  # the ---/+++ lines (or rename lines) have been read
    hunks: list[Hunk] = field(default_factory=list)
    is_new: bool = False
    is_deleted: bool = False
    is_binary: bool = False
    metadata: bool = False  # a git extended header (mode, rename, copy) was read

    @classmethod
    def from_git_line(cls, line: str) -> _File:
        old, new = _git_line_paths(line[len("diff --git ") :])
        item = cls(git=True)
        item.old, item.new = _strip_prefixes(old, new)
        return item

    def awaits_names(self) -> bool:
        return self.git and not self.named and not self.hunks

    def set_names(self, old: str | None, new: str | None) -> None:
        old, new = _strip_prefixes(old, new)
        self.is_new = self.is_new or old is None
        self.is_deleted = self.is_deleted or new is None
        self.old = self.old if old is None else old
        self.new = self.new if new is None else new
        self.named = True

    def add(self, hunk: Hunk) -> None:
        if hunk.lines:
            self.hunks.append(hunk)

    def extended_header(self, line: str) -> None:
        if self.hunks or self.named:
            return
        if line.startswith(("Binary files ", "GIT binary patch")):
            self.is_binary = True
        elif line.startswith("new file mode"):
            self.is_new = self.metadata = True
        elif line.startswith("deleted file mode"):
            self.is_deleted = self.metadata = True
        elif line.startswith(("rename from ", "copy from ")):
            self.old = unquote_path(line.split(" ", 2)[2])[0]
            self.metadata = True
        elif line.startswith(("rename to ", "copy to ")):
            self.new = unquote_path(line.split(" ", 2)[2])[0]
            self.metadata = True
        elif line.startswith(("old mode", "new mode")):
            self.metadata = True

    def worth_keeping(self) -> bool:
        return bool(self.hunks) or self.is_binary or self.metadata

    def build(self) -> FileDiff:
        old, new = (None if self.is_new else self.old), (None if self.is_deleted else self.new)
        return FileDiff(old, new, tuple(self.hunks), self.is_new, self.is_deleted, self.is_binary)


def _git_line_paths(rest: str) -> tuple[str, str]:
    """The two paths of a ``diff --git`` line (prefixes still on)."""
    if rest.startswith('"'):
        old, used = unquote_path(rest)
        return old, unquote_path(rest[used:].lstrip())[0]
    if ' "' in rest:
        old, new = rest.split(' "', 1)
        return old, unquote_path('"' + new)[0]
    spaces = [at for at, char in enumerate(rest) if char == " "]
    for at in spaces:  # the usual case: the same name twice, 'a/x y b/x y'
        old, new = rest[:at], rest[at + 1 :]
        if old[2:] == new[2:] and old.startswith("a/") and new.startswith("b/"):
            return old, new
    at = rest.find(" b/")
    if at < 0:
        at = spaces[len(spaces) // 2] if spaces else len(rest)
    return rest[:at], rest[at + 1 :]


def _strip_prefixes(old: str | None, new: str | None) -> tuple[str | None, str | None]:
    """Drop git's ``a/`` and ``b/`` when every named side has its own, or one side has it and
    dropping it makes both names the same (a model's ``--- a/x`` over ``+++ x``)."""
    if (old is None or old.startswith("a/")) and (new is None or new.startswith("b/")):
        return (old and old[2:]), (new and new[2:])
    if old is not None and new is not None and old != new:
        if old.startswith("a/") and old[2:] == new:
            return new, new
        if new.startswith("b/") and new[2:] == old:
            return old, old
    return old, new


def _read_hunk(lines: list[str], start: int, match: re.Match[str]) -> tuple[Hunk, int]:
    """The hunk whose header is ``lines[start]``, and the index of the first line after it."""
    old_start, new_start = int(match.group(1)), int(match.group(3))
    old_left = int(match.group(2) or 1)
    new_left = int(match.group(4) or 1)
    body: list[str] = []
    index = start + 1
    while index < len(lines):
        line = _body_line(lines, index, expecting=old_left > 0 and new_left > 0)
        if line is None:
            break
        body.append(line)
        old_left -= line[:1] in " -"
        new_left -= line[:1] in " +"
        index += 1
    old_len = sum(line[:1] in " -" for line in body)
    new_len = sum(line[:1] in " +" for line in body)
    return Hunk(old_start, old_len, new_start, new_len, tuple(body)), index


def _body_line(lines: list[str], index: int, *, expecting: bool) -> str | None:
    """``lines[index]`` as a hunk body line, or None if the hunk ended before it.

    ``expecting`` says the header's counts still want lines of both sides: then a
    ``---``/``+++`` pair is a removed and an added line (unless a hunk header follows it),
    and an empty line is blank context.
    """
    line = lines[index]
    if line.startswith(("diff --git ", "@@")):
        return None
    follows = index + 2 < len(lines) and _HUNK.match(lines[index + 2]) is not None
    if _is_file_header(lines, index) and (not expecting or follows):
        return None
    if line[:1] in (" ", "+", "-", "\\"):  # "\\ No newline at end of file" included
        return line
    if line == "" and (expecting or _continues(lines, index)):
        return " "
    return None


def _continues(lines: list[str], index: int) -> bool:
    """After empty line ``index``, the hunk's body goes on (a model dropped a blank's space)."""
    for line in lines[index + 1 :]:
        if line:
            return line[:1] in (" ", "+", "-") and not line.startswith(("--- ", "+++ "))
    return False
