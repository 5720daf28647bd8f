"""Writes to GitLab through its REST API: ``GitLabWriter``, the ``Writer`` for GitLab.

The API is ``{base_url}/api/v4``, signed in with ``PRIVATE-TOKEN`` (``gitlab_api``). The
project is the event's numeric ``project_id`` when it had one, else its URL-encoded path;
a ``"pull"`` place is a merge request (``/merge_requests/:iid``), an ``"issue"`` an issue.

* comment: ``POST .../notes {"body"}``. Sticky: our account's (``GET /user``) non-system
  note carrying the worker's marker is edited (``PUT .../notes/:id``) unless it already
  says the same; a marked note by anyone else is never touched. Uncertain and not sticky:
  our note carrying the write's marker means it was made. Without our username nothing is
  looked for or edited: the note is posted, and ``Done.detail`` says why.
* labels: one ``PUT`` of the merge request or issue with ``add_labels``/``remove_labels``,
  comma-separated, so a label holding a comma cannot be sent: refused, naming it.
* status: ``POST /projects/:id/statuses/:sha {"state", "name", "description"}``, failure
  and error → ``failed``. GitLab refuses to re-post the state a running or pending status
  holds ("Cannot transition status via :enqueue from :pending"): that counts as done.
* suggestion: diff threads with ``suggestion:-N+0`` blocks, the rest in a note
  (``gitlab_suggestions``).
* reaction: an award emoji on the note that carried a command
  (``POST .../notes/:note_id/award_emoji {"name": "eyes"}``); GitLab's 404 "Award Emoji
  Name has already been taken" (ours is there) counts as done.
"""

from __future__ import annotations

import re

import httpx

from mecha.diff.suggestions import diff_block
from mecha.diff.unified import hunk_count
from mecha.forges.bodies import note_body
from mecha.forges.gitlab.api import (
    GitLabApi,
    Target,
    author_of,
    noteables,
    project_of,
    target_of,
)
from mecha.forges.gitlab.suggestions import post_suggestion
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.reactions import subject_kind
from mecha.policy.writes import Write, worker_marker, write_marker

#: the longest commit status description GitLab documents
DESCRIPTION_LIMIT = 255
#: the write's status states as GitLab's (upstream's mapping)
STATES = {"success": "success", "pending": "pending", "failure": "failed", "error": "failed"}
_DONE = {"add_labels": "added", "remove_labels": "removed"}
_TRANSITION = re.compile(r"Cannot transition status via :\w+ from :(\w+)")


class GitLabWriter:
    """Makes writes happen on one GitLab instance (see the module docstring)."""

    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, token: str, timeout: float = 30.0
    ) -> None:
        self.api = GitLabApi(http, base_url=base_url, token=token, timeout=timeout)

    async def write(self, write: Write, *, uncertain: bool = False) -> Done:
        """Make ``write`` happen (see the module docstring); WriteFailure if it did not."""
        if write.action == "comment":
            return await self._comment(write, uncertain)
        if write.action == "labels":
            return await self._labels(write)
        if write.action == "status":
            return await self._status(write)
        if write.action == "suggestion":
            return await post_suggestion(self.api, write, uncertain=uncertain)
        if write.action == "reaction":
            return await self._award(write)
        raise WriteFailure(f"GitLab: no such write action {write.action!r}", transient=False)

    def preview(self, write: Write) -> str:
        """The requests ``write`` would make: ``POST /projects/12/merge_requests/5/notes ...``."""
        place = write.place
        project = project_of(place) or "(no project)"
        if write.action == "status":
            sha = place.head_sha or "(no head commit)"
            state = STATES.get(write.state, write.state)
            said = f' "{_description(write)}"' if write.description else ""
            return f"POST /projects/{project}/statuses/{sha} {state}{said} (name {_name(write)})"
        base = f"/projects/{project}/{noteables(place)}/{place.number}"
        if write.action == "reaction":
            note_id = subject_kind(write.subject)[1]
            return f"POST {base}/notes/{note_id}/award_emoji name={write.body}"
        if write.action == "labels":
            fields = _label_fields(write, check=False)
            said = " ".join(f"{key}={value}" for key, value in fields.items())
            return f"PUT {base} {said or '(no labels to change)'}"
        if write.action == "suggestion" and place.kind == "pull":
            return (
                f"POST {base}/discussions for each of the {hunk_count(write.diff)} hunk(s) "
                f"placed on the diff as a suggestion; POST {base}/notes with any that cannot be"
            )
        text = write.body if write.action == "comment" else diff_block(write.body, write.diff)
        said = f"POST {base}/notes ({len(note_body(write, text)):,} characters)"
        if write.action == "comment" and write.sticky:
            said += f", or PUT {base}/notes/:note_id if this worker's note is there"
        return said

    # --- comments ---------------------------------------------------------------------------

    async def identity(self) -> str:
        """The token's username."""
        user, _ = await self.api.whoami()
        return user

    async def _comment(self, write: Write, uncertain: bool) -> Done:
        target = target_of(write)
        body = note_body(write, write.body)
        if not write.sticky and not uncertain:
            return await self._post_note(target, body)
        user, why = await self.api.whoami()
        if not user:
            unknown = f"; no earlier note looked for: our GitLab username is unknown ({why})"
            return await self._post_note(target, body, unknown)
        mark = worker_marker(write.worker) if write.sticky else write_marker(write.key)
        found = await self._our_note(target, user, mark)
        if found is None:
            return await self._post_note(target, body)
        note_id = str(found.get("id", ""))
        if not write.sticky:
            return Done(f"note {note_id} on {target.name} was made before", note_id)
        if found.get("body") == body:
            return Done(f"note {note_id} on {target.name} already says this", note_id)
        what = f"GitLab PUT note {note_id} on {target.name}"
        await self.api.json("PUT", f"{target.path}/notes/{note_id}", what, body={"body": body})
        return Done(f"note {note_id} on {target.name} edited", note_id)

    async def _post_note(self, target: Target, body: str, why: str = "") -> Done:
        what = f"GitLab POST note on {target.name}"
        made = await self.api.json("POST", f"{target.path}/notes", what, body={"body": body})
        note_id = str(made.get("id", "")) if isinstance(made, dict) else ""
        return Done(f"note {note_id} on {target.name} created{why}", note_id)

    async def _our_note(self, target: Target, user: str, mark: str) -> dict[str, object] | None:
        """Our oldest non-system note on ``target`` whose body holds ``mark``."""
        order = {"sort": "asc", "order_by": "created_at"}
        what = f"GitLab notes of {target.name}"
        async for note in self.api.pages(f"{target.path}/notes", what, order):
            if (
                isinstance(note, dict)
                and not note.get("system")
                and author_of(note) == user.casefold()
                and mark in str(note.get("body") or "")
            ):
                return note
        return None

    async def _award(self, write: Write) -> Done:
        """The reaction as an award emoji on the note; one we gave before counts as done."""
        target = target_of(write)
        kind, note_id = subject_kind(write.subject)
        if kind != "note" or not note_id.isdigit():
            raise WriteFailure(f"GitLab: no note to award an emoji to ({write.subject!r})",
                               transient=False)  # fmt: skip
        said = f"award emoji {write.body} on note {note_id} of {target.name}"
        path = f"{target.path}/notes/{note_id}/award_emoji"
        try:
            made = await self.api.json("POST", path, f"GitLab {said}", body={"name": write.body})
        except WriteFailure as failure:
            if failure.status == 404 and "has already been taken" in failure.message:
                return Done(f"{said} was given before")
            raise
        award_id = str(made.get("id", "")) if isinstance(made, dict) else ""
        return Done(said, award_id)

    # --- labels and statuses ----------------------------------------------------------------

    async def _labels(self, write: Write) -> Done:
        target = target_of(write)
        fields = _label_fields(write, check=True)
        if not fields:
            return Done(f"labels on {target.name}: nothing to change")
        what = f"GitLab PUT labels of {target.name}"
        data = await self.api.json("PUT", target.path, what, body=fields)
        done = [f"{_DONE[key]} {value}" for key, value in fields.items()]
        now = data.get("labels") if isinstance(data, dict) else None
        after = f" (now: {', '.join(map(str, now)) or 'none'})" if isinstance(now, list) else ""
        return Done(f"labels on {target.name}: {'; '.join(done)}{after}")

    async def _status(self, write: Write) -> Done:
        place, state = write.place, STATES.get(write.state)
        if not place.head_sha:
            raise WriteFailure(
                "GitLab: a commit status needs the head commit; the event names none",
                transient=False,
            )
        if state is None or not project_of(place):
            why = f"no state {write.state!r}" if state is None else "the event names no project"
            raise WriteFailure(f"GitLab: cannot set a commit status: {why}", transient=False)
        sha, name = place.head_sha, _name(write)
        body = {"state": state, "name": name}
        if write.description:
            body["description"] = _description(write)
        path = f"/projects/{project_of(place)}/statuses/{sha}"
        what = f"GitLab POST status {name} {state} on {place.repo}@{sha[:12]}"
        try:
            made = await self.api.json("POST", path, what, body=body)
        except WriteFailure as failure:
            held = _TRANSITION.search(failure.message)
            if failure.status == 400 and held and held[1] == state:
                return Done(f"status {name} on {sha[:12]} was {state} already")
            raise
        status_id = str(made.get("id", "")) if isinstance(made, dict) else ""
        return Done(f"status {name} on {sha[:12]} set to {state}", status_id)


def _label_fields(write: Write, *, check: bool) -> dict[str, str]:
    """``add_labels`` and ``remove_labels`` as GitLab takes them: comma-separated."""
    fields: dict[str, str] = {}
    for key, labels in (("add_labels", write.add), ("remove_labels", write.remove)):
        names = [name.strip() for name in labels if name.strip()]
        commas = [name for name in names if "," in name]
        if commas and check:
            raise WriteFailure(
                "GitLab takes labels as a comma-separated list, so these cannot be sent: "
                + ", ".join(repr(name) for name in commas),
                transient=False,
            )
        if names:
            fields[key] = ",".join(names)
    return fields


def _name(write: Write) -> str:
    return write.context or "mecha"


def _description(write: Write) -> str:
    text = " ".join(write.description.split())
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"
