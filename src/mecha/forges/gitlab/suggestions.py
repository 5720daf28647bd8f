"""A suggested commit on a GitLab merge request or issue: ``post_suggestion``.

On a merge request, each hunk ``place_suggestions`` can place on the merge request's diff
(``GET .../diffs``) becomes one diff thread (``POST .../discussions``) holding a
``suggestion:-N+0`` block, positioned on the merge request's ``diff_refs`` at the hunk's
last line (``new_line``, and ``old_line`` too when that line is unchanged); the first
thread also holds the commit message. The hunks that cannot be placed go in one note as a
diff (``diff_block``). When GitLab refuses a thread (400: the diff moved on), the note holds
the whole diff instead, so nothing is lost. On an issue, or a merge request without
``diff_refs``, the note is all there is.

Every thread and the note carry the write's marker and a part marker, ``<!-- mecha:part=2-
1a2b3c4d5e6f -->`` (the suggestion's index and a digest of it) or ``<!-- mecha:part=note
-->``. An uncertain retry lists the threads first and skips each part our own account
already made.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mecha.diff.suggestions import Suggestion, diff_block, place_suggestions, suggestion_block
from mecha.forges.bodies import note_body
from mecha.forges.gitlab.api import GitLabApi, Target, author_of, target_of
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.writes import Write, write_marker

#: changes per page of merge request diffs (GitLab before 17.11 fails above 30)
DIFF_PER_PAGE = 30
_PART = re.compile(r"<!-- mecha:part=([\w-]+) -->")


@dataclass(frozen=True, slots=True)
class _Refs:
    base_sha: str
    start_sha: str
    head_sha: str


async def post_suggestion(api: GitLabApi, write: Write, *, uncertain: bool) -> Done:
    """Make the suggestion ``write`` holds (see the module docstring)."""
    return await _Suggester(api, target_of(write), write).run(uncertain)


@dataclass(frozen=True, slots=True)
class _Suggester:
    api: GitLabApi
    target: Target
    write: Write

    async def run(self, uncertain: bool) -> Done:
        found, why = await self._made_before() if uncertain else ({}, "")
        refs = await self._refs() if self.write.place.kind == "pull" else None
        if refs is None:
            note = found.get("note") or await self._note(self.write.diff)
            return self._done([], note, (), why)
        changes = await self._changes()
        shown = {new: hunks for new, (_, hunks) in changes.items()}
        placement = place_suggestions(self.write.diff, shown)
        threads: list[str] = []
        for index, suggestion in enumerate(placement.suggestions):
            part = _part(index, suggestion)
            old_path = changes.get(suggestion.path, (suggestion.path, ""))[0]
            made = found.get(part) or await self._thread(suggestion, part, refs, old_path)
            threads += [made] if made else []
        refused = len(placement.suggestions) - len(threads)
        rest = self.write.diff if refused else "".join(_line_ended(t) for t in placement.unplaced)
        note = found.get("note") or (await self._note(rest) if rest else "")
        reasons = placement.reasons + ((f"GitLab refused {refused} thread(s)",) if refused else ())
        return self._done(threads, note, reasons, why)

    async def _thread(self, suggestion: Suggestion, part: str, refs: _Refs, old_path: str) -> str:
        """One suggestion as a diff thread: its id, or "" when it cannot be one."""
        try:
            block = suggestion_block(suggestion.replacement, gitlab_above=suggestion.lines_above)
        except ValueError:
            return ""
        first, message = part.startswith("0-"), self.write.body.strip()
        text = f"{_subject(message)}\n\n{block}" if first and message else block
        position: dict[str, str | int] = {
            "position_type": "text", "base_sha": refs.base_sha, "start_sha": refs.start_sha,
            "head_sha": refs.head_sha, "old_path": old_path, "new_path": suggestion.path,
            "new_line": suggestion.line,
        }  # fmt: skip
        if suggestion.anchor_old_line is not None:
            position["old_line"] = suggestion.anchor_old_line
        body = {"body": _part_body(self.write, text, part), "position": position}
        where = f"{self.target.name} {suggestion.path}:{suggestion.line}"
        try:
            made = await self.api.json(
                "POST",
                f"{self.target.path}/discussions",
                f"GitLab POST thread on {where}",
                body=body,
            )
        except WriteFailure as failure:
            if failure.status == 400:
                return ""
            raise
        return str(made.get("id", "")) if isinstance(made, dict) else ""

    async def _note(self, diff: str) -> str:
        """A note holding the suggested commit as a diff: its id."""
        body = {"body": _part_body(self.write, diff_block(self.write.body, diff), "note")}
        what = f"GitLab POST suggestion note on {self.target.name}"
        made = await self.api.json("POST", f"{self.target.path}/notes", what, body=body)
        return str(made.get("id", "")) if isinstance(made, dict) else ""

    async def _made_before(self) -> tuple[dict[str, str], str]:
        """What an earlier try made (part -> thread or note id), or why that is unknown."""
        user, why = await self.api.whoami()
        if not user:
            return {}, why
        found: dict[str, str] = {}
        mark = write_marker(self.write.key)
        what = f"GitLab threads of {self.target.name}"
        async for thread in self.api.pages(f"{self.target.path}/discussions", what, {}):
            notes = thread.get("notes") if isinstance(thread, dict) else None
            first = notes[0] if isinstance(notes, list) and notes else {}
            body = str(first.get("body") or "") if isinstance(first, dict) else ""
            if author_of(first) != user.casefold() or mark not in body:
                continue
            for part in _PART.findall(body):
                found[part] = str(first.get("id") if part == "note" else thread.get("id"))
        return found, ""

    async def _refs(self) -> _Refs | None:
        what = f"GitLab GET {self.target.name}"
        data = await self.api.json("GET", self.target.path, what)
        refs = data.get("diff_refs") if isinstance(data, dict) else None
        if not isinstance(refs, dict):
            return None
        found = _Refs(*(str(refs.get(k) or "") for k in ("base_sha", "start_sha", "head_sha")))
        return found if all((found.base_sha, found.start_sha, found.head_sha)) else None

    async def _changes(self) -> dict[str, tuple[str, str]]:
        """The merge request's changes: new path -> (old path, its hunks)."""
        found: dict[str, tuple[str, str]] = {}
        what = f"GitLab diffs of {self.target.name}"
        async for change in self.api.pages(f"{self.target.path}/diffs", what, {}, DIFF_PER_PAGE):
            if isinstance(change, dict) and change.get("new_path"):
                new = str(change["new_path"])
                found[new] = (str(change.get("old_path") or new), str(change.get("diff") or ""))
        return found

    def _done(self, threads: list[str], note: str, reasons: tuple[str, ...], why: str) -> Done:
        said = [f"{len(threads)} suggestion thread(s) on {self.target.name}"]
        if note:
            said.append(f"the diff in note {note}")
        if reasons:
            said.append("not placed: " + "; ".join(reasons))
        if why:
            said.append(f"earlier tries not looked for: our GitLab username is unknown ({why})")
        return Done(", ".join(said), ",".join([*threads, *([note] if note else [])]))


def _part(index: int, suggestion: Suggestion) -> str:
    """Which suggestion a thread holds: its index in the placement and a digest of it."""
    seen = f"{suggestion.path}\x1f{suggestion.start_line}\x1f{suggestion.line}\x1f"
    digest = hashlib.sha256((seen + suggestion.replacement).encode("utf-8")).hexdigest()
    return f"{index}-{digest[:12]}"


def _part_body(write: Write, text: str, part: str) -> str:
    """A thread's or note's body: the text, the write's marker, and which part it holds."""
    return f"{note_body(write, text)}\n<!-- mecha:part={part} -->"


def _subject(message: str) -> str:
    subject, _, rest = message.partition("\n")
    head = f"**Suggested commit:** {subject.strip()}"
    return f"{head}\n\n{rest.strip()}" if rest.strip() else head


def _line_ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
