"""A repository's commits as the forge emulator keeps them: ``CommitGraph``, and what a
comparison of two commits finds (``Comparison``), as both forges compute it.

Each commit names its parents and the files it changed (a ``FileChange`` holds the file's
whole patch as a test seeds it). ``compare(base, head)`` is git's three-dot comparison:
the commits ``head`` has that ``base`` has not (``ahead``), how many ``base`` has that
``head`` has not (``behind``), the newest common ancestor (``merge_base``), and the files
changed from that ancestor to ``head``: every changed file once, as the last commit that
touched it left it (the emulator does not merge hunks). A pull request pushed to grows a
chain; a force-push starts a new chain from the base, so the old head is no longer an
ancestor of the new one (``diverged``); ``forget`` drops commits, as a forge does once
nothing refers to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mecha.testing.forge.wire import FileChange


@dataclass
class Commit:
    """One commit: its parents (oldest history last) and the files it changed."""

    sha: str
    parents: tuple[str, ...] = ()
    files: list[FileChange] = field(default_factory=list)
    message: str = ""


class UnknownCommit(LookupError):
    """A SHA the repository does not have (never pushed, or forgotten)."""

    def __init__(self, sha: str) -> None:
        super().__init__(sha)
        self.sha = sha


class Unrelated(LookupError):
    """Two commits with no common ancestor."""


@dataclass(frozen=True)
class Comparison:
    """``base...head``: what git and both forges report for it."""

    #: ``identical``, ``ahead`` (base is an ancestor of head), ``behind`` (head is an
    #: ancestor of base) or ``diverged`` (each has commits the other has not)
    status: str
    #: the commits head has and base has not, oldest first
    ahead: tuple[Commit, ...]
    behind_by: int
    merge_base: str
    #: the files changed from the merge base to head
    files: tuple[FileChange, ...]


class CommitGraph:
    """The commits of one repository."""

    def __init__(self) -> None:
        self.commits: dict[str, Commit] = {}

    def add(
        self,
        sha: str,
        parents: Sequence[str] = (),
        files: Iterable[FileChange] = (),
        message: str = "",
    ) -> None:
        """Record a commit (a SHA seen before is left as it is: commits never change)."""
        if sha not in self.commits:
            self.commits[sha] = Commit(sha, tuple(parents), list(files), message)

    def forget(self, shas: Iterable[str]) -> None:
        """Drop these commits: the forge has collected them."""
        for sha in shas:
            self.commits.pop(sha, None)

    def has(self, sha: str) -> bool:
        """Whether the repository has this commit."""
        return sha in self.commits

    def history(self, sha: str) -> list[str]:
        """``sha`` and every ancestor still known, nearest first; UnknownCommit if unknown."""
        if sha not in self.commits:
            raise UnknownCommit(sha)
        seen: dict[str, None] = {}
        queue = [sha]
        while queue:
            current = queue.pop(0)
            if current in seen or current not in self.commits:
                continue
            seen[current] = None
            queue.extend(self.commits[current].parents)
        return list(seen)

    def compare(self, base: str, head: str) -> Comparison:
        """``base...head``; UnknownCommit or Unrelated when git could not compare them."""
        theirs, ours = self.history(base), self.history(head)
        in_base, in_head = set(theirs), set(ours)
        merge_base = next((sha for sha in ours if sha in in_base), "")
        if not merge_base:
            raise Unrelated(f"{base}...{head}")
        ahead = tuple(self.commits[sha] for sha in reversed(ours) if sha not in in_base)
        behind = sum(1 for sha in theirs if sha not in in_head)
        if not ahead and not behind:
            status = "identical"
        elif not behind:
            status = "ahead"
        elif not ahead:
            status = "behind"
        else:
            status = "diverged"
        return Comparison(status, ahead, behind, merge_base, tuple(changed_files(ahead)))

    def only_reached_by(self, tip: str, *others: str) -> list[str]:
        """The commits ``tip`` reaches and none of ``others`` does (what a force-push of the
        branch at ``tip`` leaves behind)."""
        kept = {sha for other in others if other in self.commits for sha in self.history(other)}
        return [sha for sha in self.history(tip) if sha not in kept] if tip in self.commits else []


def changed_files(commits: Iterable[Commit]) -> list[FileChange]:
    """Each file the commits (oldest first) changed, once, as the last of them left it, in
    the order they were first changed."""
    files: dict[str, FileChange] = {}
    for commit in commits:
        for change in commit.files:
            files[change.filename] = change
    return list(files.values())


def moved(
    graph: CommitGraph,
    *,
    base: str,
    old_head: str,
    new_head: str,
    files: list[FileChange],
    before: list[FileChange],
    force: bool,
    forget_old: bool,
) -> list[FileChange]:
    """Record a push of ``new_head`` changing ``files`` onto a pull request at ``old_head``
    (onto ``base`` when ``force``); the pull request's files after it."""
    graph.add(new_head, (base if force else old_head,), files, f"push {new_head[:7]}")
    if forget_old:
        graph.forget(graph.only_reached_by(old_head, new_head, base))
    return files if force else changed_files([Commit("", (), before), Commit("", (), files)])
