"""GitLab's repository compare and merge base, for the forge emulator's GitLab half.

* ``GET /projects/:id/repository/compare?from=&to=&straight=``: a seeded merge request's
  own base and head answer with its files (as the emulator always did); any other two
  commits are compared in the project's ``CommitGraph``: ``{"commit", "commits", "diffs",
  "compare_timeout", "compare_same_ref", "web_url"}``, the diffs from the merge base to
  ``to`` (``straight=false``, GitLab's default; the emulator answers ``straight=true`` the
  same way). A ref the project does not have is 404 ``{"message": "404 Ref Not Found"}``.
* ``GET /projects/:id/repository/merge_base?refs[]=a&refs[]=b`` (or ``refs=a,b``): the
  common ancestor as a commit (``{"id", "short_id", "parent_ids", "title", ...}``); 400
  ``Provide at least 2 refs``; 400 ``Could not find ref: x`` (``refs: x, y``) for refs it
  lacks; 404 ``404 Merge Base Not Found`` for unrelated histories. As in
  ``lib/api/repositories.rb``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mecha.testing.forge.commits import (
    Commit,
    CommitGraph,
    UnknownCommit,
    Unrelated,
    changed_files,
)
from mecha.testing.forge.wire import Call, FileChange, Reply, json_reply

#: how one change is shown in a diff list (the emulator's ``change_json``)
ChangeJson = Callable[[FileChange], dict[str, Any]]


def compare_reply(graph: CommitGraph, call: Call, path: str, change_json: ChangeJson) -> Reply:
    """The compare answer for ``from...to`` in ``graph`` (``change_json``: one diff entry)."""
    base, head = call.query.get("from", ""), call.query.get("to", "")
    try:
        comparison = graph.compare(base, head)
    except UnknownCommit:
        return json_reply({"message": "404 Ref Not Found"}, 404)
    except Unrelated:  # git diff with no merge base: everything in ``to``
        commits = [graph.commits[sha] for sha in reversed(graph.history(head))]
        return _answer(call, path, commits, tuple(changed_files(commits)), change_json)
    return _answer(call, path, list(comparison.ahead), comparison.files, change_json)


def merge_base_reply(graph: CommitGraph, call: Call, path: str) -> Reply:
    """The merge base of the ``refs`` asked for, or GitLab's error for them."""
    refs = [ref for value in call.query_list("refs") for ref in value.split(",") if ref]
    if len(refs) < 2:
        return json_reply({"message": "Provide at least 2 refs"}, 400)
    unknown = [ref for ref in refs if not graph.has(ref)]
    if unknown:
        noun = "ref" if len(unknown) == 1 else "refs"
        return json_reply({"message": f"Could not find {noun}: {', '.join(unknown)}"}, 400)
    common = set(graph.history(refs[0]))
    for ref in refs[1:]:
        common &= set(graph.history(ref))
    nearest = next((sha for sha in graph.history(refs[0]) if sha in common), "")
    if not nearest:
        return json_reply({"message": "404 Merge Base Not Found"}, 404)
    return json_reply(commit_json(graph.commits[nearest], call, path))


def commit_json(commit: Commit, call: Call, path: str) -> dict[str, Any]:
    """A commit as GitLab's API shows it (the fields a client reads)."""
    message = commit.message or f"commit {commit.sha[:8]}"
    when = "2026-01-05T10:00:00.000+00:00"
    return {
        "id": commit.sha, "short_id": commit.sha[:8], "created_at": when,
        "parent_ids": list(commit.parents), "title": message.split("\n", 1)[0],
        "message": message, "author_name": "Mona", "author_email": "mona@example.com",
        "authored_date": when, "committer_name": "Mona",
        "committer_email": "mona@example.com", "committed_date": when,
        "web_url": f"{call.base_url}/{path}/-/commit/{commit.sha}",
    }  # fmt: skip


def _answer(
    call: Call,
    path: str,
    commits: list[Commit],
    files: tuple[FileChange, ...],
    change_json: ChangeJson,
) -> Reply:
    base, head = call.query.get("from", ""), call.query.get("to", "")
    shown = [commit_json(commit, call, path) for commit in commits]
    return json_reply(
        {
            "commit": shown[-1] if shown else None,
            "commits": shown,
            "diffs": [change_json(change) for change in files],
            "compare_timeout": False,
            "compare_same_ref": base == head,
            "web_url": f"{call.base_url}/{path}/-/compare/{base}...{head}",
        }
    )
