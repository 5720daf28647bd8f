"""Incremental review: what a worker's prompt gets besides the full diff (pure).

For a pull/merge request event, a worker whose prompt uses these attributes gets the diff
between the head it last completed a task on for this pull request (``last_reviewed_sha``,
from the store) and the event's head, fetched with the forge's compare API pinned to the
two SHAs and capped as ``diff`` is (``diff_cap``):

* ``diff_since_last``: that diff; the full ``diff`` when it falls back
* ``last_reviewed_sha``: the earlier head; "" when it falls back
* ``diff_since_last_fallback``: why the full diff stands in, "" when it does not
* ``diff_since_last_truncated``: ``true`` or ``false``
* ``files_since_last``: the files of ``diff_since_last``, one per line

It falls back to the full diff when the worker has reviewed nothing of this pull request
yet, after a force-push (the last reviewed commit is no longer an ancestor of the new
head, or is gone), and when the comparison fails. The forge clients fetch (``Compared``);
``since_last_attrs`` decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mecha.diff.cap import cap_diff
from mecha.forges.hydration import RawDiff

#: every attribute incremental review sets
SINCE_LAST_ATTRS = (
    "diff_since_last",
    "last_reviewed_sha",
    "diff_since_last_fallback",
    "diff_since_last_truncated",
    "files_since_last",
)
#: the fallback when the worker completed no task on this pull request yet
NO_REVIEW = "no earlier review of this pull request by this worker"
NO_HEAD = "the event names no head commit to compare with"


@dataclass(frozen=True)
class Compared:
    """What the forge said about ``last...head``: the diff and its files, or why not."""

    diff: RawDiff | None = None
    files: Sequence[str] = ()
    #: why the full diff stands in instead ("" when the comparison is used)
    fallback: str = ""


def short(sha: str) -> str:
    """A SHA as people quote it: its first 12 digits."""
    return sha[:12]


def force_pushed(last: str, head: str, forge: str, said: str) -> str:
    """The fallback after a force-push (``said``: what the forge answered)."""
    return (f"force-push: the last reviewed commit {short(last)} is no longer an ancestor of "
            f"the head {short(head)} ({forge} {said})")  # fmt: skip


def gone(last: str, forge: str, said: str) -> str:
    """The fallback when the last reviewed commit is gone from the repository."""
    return f"force-push: the last reviewed commit {short(last)} is gone ({forge} {said})"


def since_last_attrs(
    full: Mapping[str, Any], last: str, compared: Compared | None, *, max_bytes: int
) -> dict[str, str]:
    """The attributes for a worker that last reviewed ``last`` ("" if never).

    ``full`` holds the event's hydrated attributes (``diff``, ``file_list``,
    ``diff_truncated``); ``compared`` is None when nothing was compared.
    """
    reason = NO_REVIEW if not last else "the comparison was not made"
    if last and compared is not None:
        reason = compared.fallback
    if reason or compared is None or compared.diff is None:
        return {
            "diff_since_last": str(full.get("diff") or ""),
            "last_reviewed_sha": "",
            "diff_since_last_fallback": reason or "the forge sent no diff",
            "diff_since_last_truncated": str(full.get("diff_truncated") or "false"),
            "files_since_last": str(full.get("file_list") or ""),
        }
    names = [name for name in compared.files if name]
    capped = cap_diff(compared.diff.text, max_bytes, complete=compared.diff.complete,
                      all_files=names)  # fmt: skip
    return {
        "diff_since_last": capped.text,
        "last_reviewed_sha": last,
        "diff_since_last_fallback": "",
        "diff_since_last_truncated": "true" if capped.truncated else "false",
        "files_since_last": "\n".join(names),
    }
