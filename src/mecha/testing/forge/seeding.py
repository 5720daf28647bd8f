"""What a test seeds the forge emulator with: pull and merge requests, and pushes to them
(``Seeding``, which ``ForgeEmulator`` is). Each seeds the state under the emulator's lock,
so it may run while the server answers."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from mecha.testing.forge.commits import moved
from mecha.testing.forge.github.emulator import GitHubState, Pull
from mecha.testing.forge.gitlab.emulator import GitLabState, MergeRequest
from mecha.testing.forge.wire import FileChange


class Seeding:
    """The seeding half of ``ForgeEmulator``: it provides the states and the lock."""

    github: GitHubState
    gitlab: GitLabState
    _lock: threading.RLock

    def add_pull(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        base_sha: str,
        head_sha: str,
        files: Iterable[FileChange] = (),
        title: str = "",
    ) -> None:
        """Seed a GitHub pull request (also what compare answers for its two SHAs), its base
        and head commits in the repository's graph."""
        pull = Pull(owner, repo, number, base_sha, head_sha, list(files), title)
        with self._lock:
            self.github.pulls[(owner.lower(), repo.lower(), number)] = pull
            graph = self.github.graph(owner, repo)
            graph.add(base_sha, message="base")
            graph.add(head_sha, (base_sha,), pull.files, title)

    def push_pull(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        head_sha: str,
        files: Iterable[FileChange],
        force: bool = False,
        forget_old: bool = False,
    ) -> None:
        """Move a seeded pull request's head to a new commit that changes ``files``.

        A push adds the commit on top of the head (the pull request's files become the old
        ones updated by these). ``force`` makes it a force-push: the commit starts again
        from the base, ``files`` are all the pull request changes, and the old head is no
        longer an ancestor of the new one. ``forget_old``: the commits only the old head
        reached are gone, as once the forge has collected them.
        """
        with self._lock:
            pull = self.github.pulls[(owner.lower(), repo.lower(), number)]
            graph = self.github.graph(owner, repo)
            pull.files = moved(
                graph, base=pull.base_sha, old_head=pull.head_sha, new_head=head_sha,
                files=list(files), before=pull.files, force=force, forget_old=forget_old,
            )  # fmt: skip
            pull.head_sha = head_sha

    def add_merge_request(
        self,
        project: str,
        iid: int,
        *,
        base_sha: str,
        head_sha: str,
        files: Iterable[FileChange] = (),
        project_id: int | None = None,
        title: str = "",
    ) -> int:
        """Seed a GitLab merge request in the project at path ``project``; its project id.
        Its base and head commits go into the project's graph."""
        with self._lock:
            found = self.gitlab.project(project, project_id)
            found.merge_requests[iid] = MergeRequest(iid, base_sha, head_sha, list(files), title)
            found.commits.add(base_sha, message="base")
            found.commits.add(head_sha, (base_sha,), list(files), title)
            return found.id

    def push_merge_request(
        self,
        project: str,
        iid: int,
        *,
        head_sha: str,
        files: Iterable[FileChange],
        force: bool = False,
        forget_old: bool = False,
    ) -> None:
        """Move a seeded merge request's head to a new commit: as ``push_pull`` does."""
        with self._lock:
            found = self.gitlab.project(project)
            request = found.merge_requests[iid]
            request.files = moved(
                found.commits, base=request.base_sha, old_head=request.head_sha,
                new_head=head_sha, files=list(files), before=request.files, force=force,
                forget_old=forget_old,
            )  # fmt: skip
            request.head_sha = head_sha
