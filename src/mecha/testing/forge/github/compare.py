"""What GitHub's ``GET /repos/{o}/{r}/compare/{base}...{head}`` answers, for the emulator.

A seeded pull request's own base and head answer with its files (how the emulator always
answered). Any other two commits are compared in the repository's ``CommitGraph``, as
GitHub compares them: the JSON has ``status`` (``ahead``, ``behind``, ``identical`` or
``diverged``), ``ahead_by``, ``behind_by``, ``total_commits``, ``base_commit``,
``merge_base_commit``, ``commits`` (oldest first) and ``files`` (at most 300); the diff media
type answers the unified diff from the merge base to head (406 past 300 files or 20 000
lines). A commit the repository does not have is 404 ``Not Found``; two commits with no
common ancestor are 404 ``No common ancestor between {base} and {head}.``.
"""

from __future__ import annotations

from typing import Any

from mecha.testing.forge.commits import Commit, CommitGraph, Comparison
from mecha.testing.forge.wire import Call, FileChange, fake_sha

#: GitHub lists at most 300 files of a comparison
MAX_COMPARE_FILES = 300


def comparison_json(
    comparison: Comparison, graph: CommitGraph, call: Call, *, repo_path: str, base: str, head: str
) -> dict[str, Any]:
    """The JSON GitHub answers for a comparison (``repo_path``: ``owner/repo``)."""
    api = f"{call.base_url}/repos/{repo_path}/compare/{base}...{head}"
    html = f"https://github.com/{repo_path}/compare/{base}...{head}"
    files = [file_json(change) for change in comparison.files[:MAX_COMPARE_FILES]]
    return {
        "url": api,
        "html_url": html,
        "permalink_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "base_commit": commit_json(graph.commits[base], call, repo_path),
        "merge_base_commit": commit_json(graph.commits[comparison.merge_base], call, repo_path),
        "status": comparison.status,
        "ahead_by": len(comparison.ahead),
        "behind_by": comparison.behind_by,
        "total_commits": len(comparison.ahead),
        "commits": [commit_json(commit, call, repo_path) for commit in comparison.ahead],
        "files": files,
    }


def commit_json(commit: Commit, call: Call, repo_path: str) -> dict[str, Any]:
    """A commit as GitHub lists it in a comparison (the fields a client reads)."""
    return {
        "sha": commit.sha,
        "url": f"{call.base_url}/repos/{repo_path}/commits/{commit.sha}",
        "commit": {"message": commit.message or f"commit {commit.sha[:7]}"},
        "parents": [{"sha": parent} for parent in commit.parents],
    }


def file_json(change: FileChange) -> dict[str, Any]:
    """One changed file as GitHub lists it (pull request files, comparisons)."""
    item: dict[str, Any] = {
        "sha": fake_sha(f"new:{change.filename}"),
        "filename": change.filename,
        "status": change.status,
        "additions": change.additions,
        "deletions": change.deletions,
        "changes": change.additions + change.deletions,
    }
    if change.patch:
        item["patch"] = change.patch
    if change.previous_filename:
        item["previous_filename"] = change.previous_filename
    return item
