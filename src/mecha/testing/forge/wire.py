"""Pieces the forge API emulator's GitHub and GitLab halves share.

``FileChange`` is one changed file as tests seed it; ``Call`` is a request as a route sees
it and ``Reply`` what it answers; ``paginate`` and ``link_header`` do ``page``/``per_page``
and RFC 8288 ``Link`` headers the way both forges do; ``git_section`` writes one file's
``diff --git`` section the way ``git diff`` (and GitHub's diff media type) does.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")


@dataclass(frozen=True)
class FileChange:
    """One changed file of a pull/merge request; ``patch`` is its hunks (``@@ ...``)."""

    filename: str
    patch: str = ""
    #: added, removed, modified or renamed (GitHub's words)
    status: str = "modified"
    additions: int = 0
    deletions: int = 0
    #: the old name of a renamed file
    previous_filename: str = ""

    @property
    def old_name(self) -> str:
        """The file's name before the change."""
        return self.previous_filename or self.filename


@dataclass(frozen=True)
class Call:
    """A request as a route sees it."""

    method: str
    #: the path after the forge's prefix, still percent-encoded, without the query
    path: str
    query: dict[str, str]
    #: lowercase names
    headers: dict[str, str]
    body: bytes
    #: where the forge's API is served, e.g. http://127.0.0.1:PORT/github (for Link URLs)
    base_url: str
    #: every query parameter in order, repeated names too (``refs[]=a&refs[]=b``)
    pairs: tuple[tuple[str, str], ...] = ()

    def query_list(self, name: str) -> list[str]:
        """Every value of a repeated parameter, ``name[]`` or ``name`` (Rails reads both)."""
        return [value for key, value in self.pairs if key in (name, f"{name}[]")]


@dataclass
class Reply:
    """What a route answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """Where a paginated answer stands."""

    page: int
    per_page: int
    pages: int
    total: int


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """``data`` as a JSON answer."""
    body = json.dumps(data).encode("utf-8")
    kind = {"Content-Type": "application/json; charset=utf-8"}
    return Reply(status, body, {**kind, **(headers or {})})


def text_reply(text: str, content_type: str, status: int = 200) -> Reply:
    """``text`` as UTF-8 of ``content_type``."""
    return Reply(status, text.encode("utf-8"), {"Content-Type": f"{content_type}; charset=utf-8"})


def paginate(items: Sequence[T], call: Call, *, default: int, maximum: int) -> tuple[list[T], Page]:
    """The items on the page ``call`` asks for (``page``, ``per_page``), and where it stands."""
    per_page = _positive(call.query.get("per_page"), default)
    per_page = min(per_page, maximum)
    page = _positive(call.query.get("page"), 1)
    start = (page - 1) * per_page
    pages = max(1, math.ceil(len(items) / per_page))
    return list(items[start : start + per_page]), Page(page, per_page, pages, len(items))


def link_header(call: Call, page: Page, *, always: bool = False) -> str:
    """RFC 8288 links to the next, last, first and prev pages, like both forges send."""
    if page.pages <= 1 and not always:
        return ""
    rels = []
    if page.page > 1:
        rels += [("prev", page.page - 1), ("first", 1)]
    if page.page < page.pages:
        rels += [("next", page.page + 1), ("last", page.pages)]
    elif always:
        rels.append(("last", page.pages))
    links = []
    for rel, number in rels:
        query = {**call.query, "per_page": str(page.per_page), "page": str(number)}
        links.append(f'<{call.base_url}{call.path}?{urlencode(query)}>; rel="{rel}"')
    return ", ".join(links)


def git_section(change: FileChange) -> str:
    """One file's section of a unified diff, as ``git diff`` writes it."""
    old, new = change.old_name, change.filename
    lines = [f"diff --git a/{old} b/{new}"]
    old_blob, new_blob = fake_sha(f"old:{old}")[:7], fake_sha(f"new:{new}")[:7]
    if change.status == "added":
        lines += ["new file mode 100644", f"index 0000000..{new_blob}"]
    elif change.status == "removed":
        lines += ["deleted file mode 100644", f"index {old_blob}..0000000"]
    else:
        if change.status == "renamed":
            lines += ["similarity index 90%", f"rename from {old}", f"rename to {new}"]
        lines.append(f"index {old_blob}..{new_blob} 100644")
    if change.patch:
        lines.append("--- /dev/null" if change.status == "added" else f"--- a/{old}")
        lines.append("+++ /dev/null" if change.status == "removed" else f"+++ b/{new}")
        lines.append(change.patch.removesuffix("\n"))
    return "\n".join(lines) + "\n"


def fake_sha(seed: str) -> str:
    """A stable 40-hex id for ``seed``, for blobs and commits nobody made."""
    return hashlib.sha1(seed.encode("utf-8"), usedforsecurity=False).hexdigest()


def _positive(value: str | None, default: int) -> int:
    if value is None or not value.isdigit() or int(value) < 1:
        return default
    return int(value)
