"""How the GitLab emulator reads and judges a request, as GitLab's API does (pure helpers).

* ``read_params``: the query's parameters and the body's, JSON or a form, nested the way Grape
  nests ``position[new_line]=3`` and ``labels[]=a``
* ``checked_position``: a diff thread's ``position`` against a merge request's
  ``diff_refs`` and diff (an added line takes ``new_line``, a removed one ``old_line``, an
  unchanged one both), or GitLab's 400 ``Note {:line_code=>[...]}``
* ``status_refusal``: GitLab's commit status state machine refusing to re-post the state a
  live status holds (``Cannot transition status via :enqueue from :pending ...``)
* ``bad_param`` (``{"error": "body is missing"}``) and ``gitlab_message`` (``{"message": "404
  Not found"}``); ``page_headers``, ``request_token``, ``user_json``, ``timestamp``
"""

from __future__ import annotations

import json
import re
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from mecha.testing.forge.wire import Call, Page, Reply, json_reply, link_header

if TYPE_CHECKING:
    from mecha.testing.forge.gitlab.emulator import MergeRequest

#: the longest note GitLab keeps
NOTE_LIMIT = 1_000_000
#: commit status states GitLab takes
STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
_EVENTS = {"pending": "enqueue", "running": "run", "success": "succeed", "failed": "drop",
           "canceled": "cancel", "skipped": "skip"}  # fmt: skip
#: (held, asked) pairs the state machine refuses
_REFUSED = {("pending", "pending"), ("running", "pending"), ("running", "running"),
            ("running", "skipped")}  # fmt: skip
_LINE_CODE = '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}'
_REFS = ("base_sha", "start_sha", "head_sha")
_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def request_token(call: Call) -> str:
    """The token a request carries: ``PRIVATE-TOKEN`` or ``Authorization: Bearer``."""
    token = call.headers.get("private-token", "")
    scheme, _, bearer = call.headers.get("authorization", "").partition(" ")
    return token or (bearer if scheme.lower() == "bearer" else "")


def page_headers(call: Call, page: Page) -> dict[str, str]:
    """GitLab's pagination headers (``X-Page``, ``X-Next-Page``, ``Link``...)."""
    after = page.page + 1 if page.page < page.pages else ""
    before = page.page - 1 if page.page > 1 else ""
    headers = {
        "X-Page": str(page.page),
        "X-Per-Page": str(page.per_page),
        "X-Next-Page": str(after),
        "X-Prev-Page": str(before),
        "X-Total": str(page.total),
        "X-Total-Pages": str(page.pages),
    }
    links = link_header(call, page, always=True)
    if links:
        headers["Link"] = links
    return headers


def checked_position(request: MergeRequest, position: Any) -> dict[str, Any] | Reply:
    """``position`` as GitLab keeps it, or GitLab's 400 for it."""
    kept = _position_fields(position)
    if isinstance(kept, Reply):
        return kept
    refs = (request.base_sha, request.base_sha, request.head_sha)
    paths = (kept["old_path"], kept["new_path"])
    change = next((c for c in request.files if (c.old_name, c.filename) == paths), None)
    if (
        tuple(kept[key] for key in _REFS) != refs
        or change is None
        or (kept["old_line"], kept["new_line"]) not in diff_lines(change.patch)
    ):
        return gitlab_message(400, _LINE_CODE)
    return kept


def _position_fields(position: Any) -> dict[str, Any] | Reply:
    if not isinstance(position, dict):
        return bad_param("position is invalid")
    for key in (*_REFS, "position_type"):
        if key not in position:
            return bad_param(f"position[{key}] is missing")
    if position["position_type"] not in ("text", "image", "file"):
        return bad_param("position[position_type] does not have a valid value")
    kept = {key: position.get(key) for key in (*_REFS, "position_type", "old_path", "new_path")}
    for key in ("old_line", "new_line"):
        value = position.get(key)
        if value is not None and not str(value).isdigit():
            return bad_param(f"position[{key}] is invalid")
        kept[key] = None if value is None else int(value)
    return kept | {"line_range": None}


def diff_lines(patch: str) -> set[tuple[int | None, int | None]]:
    """Each line of a file's hunks as ``(old_line, new_line)``; None on the side it is not on."""
    found: set[tuple[int | None, int | None]] = set()
    old = new = 0
    for line in patch.splitlines():
        header = _HUNK.match(line)
        if header:
            old, new = int(header[1]), int(header[2])
        elif line.startswith("+"):
            found.add((None, new))
            new += 1
        elif line.startswith("-"):
            found.add((old, None))
            old += 1
        elif not line.startswith("\\"):
            found.add((old, new))
            old, new = old + 1, new + 1
    return found


def note_refused(body: str) -> Reply | None:
    """GitLab's 400 for a blank note or one over ``NOTE_LIMIT`` characters, or None."""
    if not body.strip():
        return gitlab_message(400, '400 Bad request - Note {:note=>["can\'t be blank"]}')
    if len(body) > NOTE_LIMIT:
        too_long = f"is too long (maximum is {NOTE_LIMIT} characters)"
        return gitlab_message(400, f'400 Bad request - Note {{:note=>["{too_long}"]}}')
    return None


def read_params(call: Call) -> dict[str, Any] | Reply:
    """The query's parameters and the body's (JSON or a form), nested like Grape nests them."""
    pairs = list(call.query.items())
    kind = call.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json" and call.body:
        try:
            data = json.loads(call.body)
        except ValueError:
            return gitlab_message(400, "400 Bad request - the body is not JSON")
        if not isinstance(data, dict):
            return gitlab_message(400, "400 Bad request - the body is not a JSON object")
        return _nest(pairs) | data
    if call.body:
        pairs += parse_qsl(call.body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return _nest(pairs)


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``position[new_line]=3`` → ``{"position": {"new_line": "3"}}``; ``a[]=x`` → a list."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        names = re.findall(r"[^\[\]]+|\[\]", key)
        if names[-1:] == ["[]"] and len(names) > 1:
            *path, last = names[:-1]
            where = _descend(result, path)
            held = where.get(last)
            where[last] = [*(held if isinstance(held, list) else []), value]
        elif names:
            _descend(result, names[:-1])[names[-1]] = value
    return result


def _descend(where: dict[str, Any], path: list[str]) -> dict[str, Any]:
    for name in path:
        inner = where.get(name)
        if not isinstance(inner, dict):
            inner = where[name] = {}
        where = inner
    return where


def label_list(value: Any) -> list[str]:
    """Labels as Grape reads them: comma-separated strings, or lists of them."""
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


def user_json(username: str, base_url: str) -> dict[str, Any]:
    """A user as GitLab shows one (``author``, ``GET /user``)."""
    return {
        "id": zlib.crc32(username.encode("utf-8")) % 1_000_000, "username": username,
        "name": username, "state": "active", "locked": False, "avatar_url": None,
        "web_url": f"{base_url}/{username}",
    }  # fmt: skip


def timestamp() -> str:
    """Now, as GitLab writes times: ``2026-01-02T03:04:05.678Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bad_param(text: str) -> Reply:
    """A parameter error as Grape words it: ``{"error": "body is missing"}``."""
    return json_reply({"error": text}, 400)


def gitlab_message(status: int, text: str) -> Reply:
    """Any other error as GitLab words it: ``{"message": "404 Not found"}``."""
    return json_reply({"message": text}, status)


def status_refusal(held: str, asked: str) -> str:
    """GitLab's message refusing to move a live status from ``held`` to ``asked``, or ""."""
    if (held, asked) not in _REFUSED:
        return ""
    event = _EVENTS[asked]
    return (
        f"Cannot transition status via :{event} from :{held} "
        f'(Reason(s): Status cannot transition via "{event}")'
    )
