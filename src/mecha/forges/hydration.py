"""What hydration adds to a pull/merge request event: ``Hydration`` and how it is put together.

The forge clients fetch a diff and a file list; ``build_hydration`` caps the diff and turns
both into the text attributes a prompt can use:

* ``diff``: the unified diff, cut at the byte cap with a marker line (see ``diff_cap``)
* ``file_list``: changed files, one per line
* ``diff_truncated``: ``true`` or ``false``
* ``files_omitted``: files left out of ``diff``, one per line
* ``diff_error``: what failed, "" when nothing did

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mecha.diff.cap import cap_diff

#: every attribute hydration sets
HYDRATED_ATTRS = ("diff", "file_list", "diff_truncated", "files_omitted", "diff_error")


@dataclass(frozen=True)
class Hydration:
    """Attributes to merge into an event, and what went wrong getting them ("" if nothing)."""

    attrs: dict[str, str]
    error: str = ""


@dataclass(frozen=True)
class RawDiff:
    """A diff as fetched; ``complete`` is False when the read stopped at its byte limit."""

    text: str
    complete: bool = True


@dataclass
class DiffBuilder:
    """A diff put together file by file, up to ``limit`` bytes; every file's name kept."""

    limit: int
    sections: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    size: int = 0

    def add(self, name: str, section: Callable[[], str]) -> None:
        """Note file ``name``; keep its ``section()`` while under the limit."""
        self.files.append(name)
        if self.size <= self.limit:
            text = section()
            self.sections.append(text)
            self.size += len(text.encode("utf-8"))

    def diff(self) -> RawDiff:
        """The text so far; not ``complete`` once the limit was passed."""
        return RawDiff("".join(self.sections), complete=self.size <= self.limit)


def build_hydration(
    diff: RawDiff | None,
    files: Sequence[str] | None,
    errors: Sequence[str] = (),
    *,
    max_bytes: int,
) -> Hydration:
    """The attributes for a fetched diff and file list (None: not fetched) and the errors."""
    error = "; ".join(message for message in errors if message)
    names = [name for name in files or () if name]
    attrs = {
        "diff": "",
        "file_list": "\n".join(names),
        "diff_truncated": "false",
        "files_omitted": "",
        "diff_error": error,
    }
    if diff is not None:
        capped = cap_diff(diff.text, max_bytes, complete=diff.complete, all_files=names)
        attrs["diff"] = capped.text
        attrs["diff_truncated"] = "true" if capped.truncated else "false"
        attrs["files_omitted"] = "\n".join(capped.omitted)
    return Hydration(attrs, error)


def failed(error: str) -> Hydration:
    """Nothing fetched: empty attributes and ``error``."""
    return build_hydration(None, None, [error], max_bytes=0)


def attr_int(value: Any) -> int:
    """An attribute as a positive whole number (``7`` or ``"7"``), else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    text = str(value or "")
    return int(text) if text.isdigit() else 0
