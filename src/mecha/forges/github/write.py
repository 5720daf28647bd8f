"""Write-back to GitHub's REST API: ``GitHubWriter`` (comments, labels, statuses, suggestions).

* comment: ``POST /repos/{o}/{r}/issues/{n}/comments``. Sticky: the issue's comments are
  listed (``per_page=100``, ``Link: rel="next"``, at most 30 pages) for the newest one
  carrying the worker's marker *and written by our own account*; it is edited
  (``PATCH /repos/{o}/{r}/issues/comments/{id}``) unless its body is already the same. A
  marked comment by anyone else is never touched. Our account is ``GET /user``'s
  ``login`` (a token) or ``GET /app``'s ``slug`` + ``[bot]`` (a GitHub App, asked with its
  JWT); when GitHub will not say (403/404), nothing is edited: a new comment is posted.
* labels: one ``POST .../issues/{n}/labels``; ``DELETE .../labels/{name}`` per removal
  (404 "Label does not exist" is fine).
* status: ``POST /repos/{o}/{r}/statuses/{head_sha}`` (description cut to 140 characters).
* reaction: 👀 on a command's comment or review (``mecha.forges.github.reactions``).
* suggestion: the pull request's patches (``GET .../pulls/{n}/files``) place each hunk
  (``mecha.diff.suggestions``); all placed → one review (``POST .../pulls/{n}/reviews``,
  event COMMENT) with a suggestion block per hunk; otherwise, or when GitHub refuses the
  review (422), one comment with the diff.

With ``uncertain=True`` a comment or review carrying the write's marker by our account is
looked for first, and found means done. Bodies longer than GitHub's 65 536 characters are
cut (the markers kept) with a note. How failures are told apart: ``failure``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from mecha.diff.suggestions import Suggestion, diff_block, place_suggestions, suggestion_block
from mecha.forges.bodies import fitted_body
from mecha.forges.fetch import FetchError, scrub
from mecha.forges.github.auth import API_VERSION, JSON_ACCEPT, GitHubAuth
from mecha.forges.github.limits import MAX_DESCRIPTION, failure, short
from mecha.forges.github.reactions import graphql_url, react, reaction_preview
from mecha.forges.github.rest import GitHubRest
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.writes import Write, worker_marker, write_marker

__all__ = ["GitHubWriter"]

STATES = ("error", "failure", "pending", "success")
_HUNK = re.compile(r"^@@ ", re.MULTILINE)


@dataclass(frozen=True)
class _Target:
    """Where a write goes, as GitHub's paths name it."""

    repo: str
    issue: str
    pull: str
    is_pull: bool


class GitHubWriter:
    """Makes ``Write``s happen on GitHub (see the module docstring); a ``Writer``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str,
        auth: GitHubAuth,
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        #: our account's login; "" when GitHub would not say; None before asking
        self._login: str | None = None
        self._login_note = ""

    async def write(self, write: Write, *, uncertain: bool = False) -> Done:
        """Make ``write`` happen; WriteFailure (transient or not) if it did not."""
        target = _target(write)
        if isinstance(target, str):
            raise WriteFailure(f"GitHub {write.action}: {target}", transient=False)
        try:
            api = GitHubRest(self.http, self.api_url, await self._headers(write), self.timeout)
            if write.action == "comment":
                return await self._comment(api, target, write, uncertain)
            if write.action == "labels":
                return await self._labels(api, target, write)
            if write.action == "status":
                return await self._status(api, target, write)
            if write.action == "reaction":
                graphql = GitHubRest(self.http, graphql_url(self.api_url), api.headers, api.timeout)
                return await react(api, graphql, target.repo, write)
            return await self._suggestion(api, target, write, uncertain)
        except FetchError as exc:
            raise failure(exc, self.auth.secrets()) from None

    def preview(self, write: Write) -> str:
        """The requests ``write`` would make (no network): ``POST /repos/o/r/issues/7/comments``."""
        target = _target(write)
        if isinstance(target, str):
            return f"nothing: {target}"
        if write.action == "reaction":
            return reaction_preview(target.repo, write)
        previews = {"comment": _comment_preview, "labels": _labels_preview,
                    "status": _status_preview, "suggestion": _suggestion_preview}  # fmt: skip
        return previews[write.action](target, write)

    async def _headers(self, write: Write) -> dict[str, str]:
        try:
            authorization = await self.auth.authorization(
                self.http,
                api_url=self.api_url,
                installation_id=write.place.installation_id,
                timeout=self.timeout,
            )
        except FetchError as exc:
            if exc.status or exc.network:
                raise
            # the App cannot sign in at all (no installation id, a key that cannot sign)
            message = scrub(str(exc), self.auth.secrets())
            raise WriteFailure(f"GitHub {write.action}: {message}", transient=False) from None
        return {
            "Authorization": authorization,
            "Accept": JSON_ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "mecha",
        }

    # ------------------------------------------------------------ our account

    async def identity(self) -> str:
        """Our account's login: the token's user, or the App's bot (``slug[bot]``)."""
        if self._login is None:
            headers = {"Accept": JSON_ACCEPT, "X-GitHub-Api-Version": API_VERSION,
                       "User-Agent": "mecha"}  # fmt: skip
            if not self.auth.is_app:  # an App asks GET /app with its JWT (_ask_login)
                headers["Authorization"] = await self.auth.authorization(
                    self.http, api_url=self.api_url, installation_id="", timeout=self.timeout
                )
            await self._me(GitHubRest(self.http, self.api_url, headers, self.timeout))
        return self._login or ""

    async def _me(self, api: GitHubRest) -> str:
        """Our account's login, "" when GitHub will not say (then nothing is edited)."""
        if self._login is None:
            self._login = await self._ask_login(api)
        return self._login

    async def _ask_login(self, api: GitHubRest) -> str:
        path = "/app" if self.auth.is_app else "/user"
        headers = api.headers
        if self.auth.is_app:
            headers = {**api.headers, "Authorization": f"Bearer {self.auth.app_jwt()}"}
        try:
            data = await api.send("GET", path, headers=headers)
        except FetchError as exc:
            if exc.status not in (403, 404):
                raise
            self._login_note = f"GET {path} answered {exc.status}"
            return ""
        key = "slug" if self.auth.is_app else "login"
        name = data.get(key) if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            self._login_note = f"GET {path} named no {key}"
            return ""
        return f"{name}[bot]" if self.auth.is_app else name

    def _blind(self, looked: bool, what: str) -> str:
        """A note for Done.detail when our account is unknown, so ours cannot be told apart."""
        if not looked or self._login != "":
            return ""
        return f" ({what}: GitHub did not say which account we are, {self._login_note})"

    async def _ours(self, api: GitHubRest, path: str, marker: str) -> dict[str, Any] | None:
        """The newest item at ``path`` whose body has ``marker`` and that our account wrote."""
        me = (await self._me(api)).lower()
        if not me:
            return None
        items = await api.items(path)
        for item in items[::-1]:
            user = item.get("user")
            login = user.get("login") if isinstance(user, dict) else None
            body = item.get("body")
            if isinstance(body, str) and marker in body and str(login).lower() == me:
                return item
        return None

    # ------------------------------------------------------------ comment

    async def _comment(
        self, api: GitHubRest, target: _Target, write: Write, uncertain: bool
    ) -> Done:
        body = fitted_body(write, write.body)
        if write.sticky:
            return await self._sticky(api, target, write, body)
        if uncertain:
            found = await self._ours(api, f"{target.issue}/comments", write_marker(write.key))
            if found is not None:
                return Done(f"comment {found.get('id')} already there", str(found.get("id")))
        return await self._post_comment(
            api, target, body, self._blind(uncertain, "no earlier try looked for")
        )

    async def _sticky(self, api: GitHubRest, target: _Target, write: Write, body: str) -> Done:
        found = await self._ours(api, f"{target.issue}/comments", worker_marker(write.worker))
        if found is None:
            note = self._blind(True, "sticky, but no comment is edited")
            return await self._post_comment(api, target, body, note)
        number = str(found.get("id"))
        if found.get("body") == body:
            return Done(f"comment {number} unchanged", number)
        await api.send("PATCH", f"{target.repo}/issues/comments/{quote(number)}", {"body": body})
        return Done(f"comment {number} edited", number)

    async def _post_comment(self, api: GitHubRest, target: _Target, body: str, note: str) -> Done:
        data = await api.send("POST", f"{target.issue}/comments", {"body": body})
        number = str(data.get("id", "")) if isinstance(data, dict) else ""
        return Done(f"comment {number} created{note}", number)

    # ------------------------------------------------------------ labels and status

    async def _labels(self, api: GitHubRest, target: _Target, write: Write) -> Done:
        parts = []
        if write.add:
            await api.send("POST", f"{target.issue}/labels", {"labels": list(write.add)})
            parts.append(f"added: {', '.join(write.add)}")
        removed, absent = [], []
        for name in write.remove:
            try:
                await api.send("DELETE", f"{target.issue}/labels/{quote(name, safe='')}")
            except FetchError as exc:
                if exc.status != 404 or "Label does not exist" not in str(exc):
                    raise
                absent.append(name)
                continue
            removed.append(name)
        if removed:
            parts.append(f"removed: {', '.join(removed)}")
        if absent:
            parts.append(f"not there to remove: {', '.join(absent)}")
        return Done("labels " + "; ".join(parts) if parts else "no label changes")

    async def _status(self, api: GitHubRest, target: _Target, write: Write) -> Done:
        sha = write.place.head_sha
        if not sha:
            raise WriteFailure(
                f"GitHub status on {write.place.name}: the event has no head commit (head_sha) "
                "to set a status on",
                transient=False,
            )
        if write.state not in STATES:
            raise WriteFailure(
                f"GitHub status on {write.place.name}: state {write.state!r} is not one of "
                f"{', '.join(STATES)}",
                transient=False,
            )
        body = {
            "state": write.state,
            "description": short(write.description, MAX_DESCRIPTION),
            "context": write.context or "mecha",
        }
        data = await api.send("POST", f"{target.repo}/statuses/{quote(sha, safe='')}", body)
        number = str(data.get("id", "")) if isinstance(data, dict) else ""
        return Done(f"status {write.state} set on {sha[:12]} ({_context(write)})", number)

    # ------------------------------------------------------------ suggestion

    async def _suggestion(
        self, api: GitHubRest, target: _Target, write: Write, uncertain: bool
    ) -> Done:
        if uncertain:
            done = await self._already(api, target, write)
            if done is not None:
                return done
        done = await self._suggest(api, target, write)
        return Done(
            done.detail + self._blind(uncertain, "no earlier try looked for"), done.remote_id
        )

    async def _suggest(self, api: GitHubRest, target: _Target, write: Write) -> Done:
        if not target.is_pull:
            return await self._diff_comment(api, target, write, ())
        files = await api.items(f"{target.pull}/files")
        patches = {
            str(f["filename"]): str(f.get("patch") or "") for f in files if f.get("filename")
        }
        placement = place_suggestions(write.diff, patches)
        if not placement.suggestions or placement.unplaced:
            return await self._diff_comment(api, target, write, placement.reasons)
        try:
            return await self._review(api, target, write, placement.suggestions)
        except FetchError as exc:
            if exc.status != 422:
                raise
            refused = scrub(str(exc), self.auth.secrets())
            return await self._diff_comment(api, target, write, (refused,))

    async def _already(self, api: GitHubRest, target: _Target, write: Write) -> Done | None:
        """Our review or comment carrying the write's marker, if an earlier try made one."""
        marker = write_marker(write.key)
        if target.is_pull:
            review = await self._ours(api, f"{target.pull}/reviews", marker)
            if review is not None:
                return Done(f"review {review.get('id')} already there", str(review.get("id")))
        comment = await self._ours(api, f"{target.issue}/comments", marker)
        if comment is not None:
            return Done(f"comment {comment.get('id')} already there", str(comment.get("id")))
        return None

    async def _review(
        self, api: GitHubRest, target: _Target, write: Write, suggestions: tuple[Suggestion, ...]
    ) -> Done:
        body: dict[str, Any] = {
            "event": "COMMENT",
            "body": fitted_body(write, write.body.strip() or "Suggested changes"),
            "comments": [_review_comment(suggestion) for suggestion in suggestions],
        }
        if write.place.head_sha:
            body["commit_id"] = write.place.head_sha
        data = await api.send("POST", f"{target.pull}/reviews", body)
        number = str(data.get("id", "")) if isinstance(data, dict) else ""
        count = len(suggestions)
        return Done(f"review {number} created with {count} suggestion{'s' * (count != 1)}", number)

    async def _diff_comment(
        self, api: GitHubRest, target: _Target, write: Write, reasons: tuple[str, ...]
    ) -> Done:
        text = diff_block(write.body, write.diff)
        if reasons:
            text += "\n\nNot posted as suggestions:\n" + "".join(f"\n- {why}" for why in reasons)
        done = await self._post_comment(api, target, fitted_body(write, text), "")
        why = f" ({'; '.join(reasons)})" if reasons else ""
        return Done(f"{done.detail} with the diff{why}", done.remote_id)


def _review_comment(suggestion: Suggestion) -> dict[str, Any]:
    comment: dict[str, Any] = {
        "path": suggestion.path,
        "line": suggestion.line,
        "side": "RIGHT",
        "body": suggestion_block(suggestion.replacement),
    }
    if suggestion.start_line < suggestion.line:
        comment.update(start_line=suggestion.start_line, start_side="RIGHT")
    return comment


def _target(write: Write) -> _Target | str:
    """The write's paths on GitHub, or why it cannot go there."""
    place = write.place
    owner, _, name = place.repo.partition("/")
    if place.forge != "github":
        return f"{place.name} is on {place.forge or 'no forge'}, not GitHub"
    if not owner or not name or "/" in name:
        return f"{place.repo!r} is not an owner/name repository"
    if write.action not in ("comment", "labels", "status", "suggestion", "reaction"):
        return f"{write.action!r} is no action GitHub write-back knows"
    if write.action != "status" and place.number <= 0:
        return f"{place.name} has no pull request or issue number to write to"
    repo = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
    is_pull = place.kind == "pull"
    return _Target(repo, f"{repo}/issues/{place.number}", f"{repo}/pulls/{place.number}", is_pull)


def _context(write: Write) -> str:
    return f"context {write.context or 'mecha'}"


def _comment_preview(target: _Target, write: Write) -> str:
    size = len(fitted_body(write, write.body))
    sticky = "; sticky: edits this worker's comment instead" if write.sticky else ""
    return f"POST {target.issue}/comments ({size:,} characters{sticky})"


def _status_preview(target: _Target, write: Write) -> str:
    if not write.place.head_sha:
        return "nothing: the event has no head commit to set a status on"
    description = json.dumps(short(write.description, MAX_DESCRIPTION), ensure_ascii=False)
    sha = quote(write.place.head_sha, safe="")
    return f"POST {target.repo}/statuses/{sha} {write.state} {description} ({_context(write)})"


def _suggestion_preview(target: _Target, write: Write) -> str:
    if target.is_pull:
        count = len(_HUNK.findall(write.diff))
        return f"POST {target.pull}/reviews ({count} suggestion{'s' * (count != 1)})"
    size = len(fitted_body(write, diff_block(write.body, write.diff)))
    return f"POST {target.issue}/comments (the diff, {size:,} characters)"


def _labels_preview(target: _Target, write: Write) -> str:
    parts = []
    if write.add:
        parts.append(
            f"POST {target.issue}/labels {json.dumps(list(write.add), ensure_ascii=False)}"
        )
    parts += [f"DELETE {target.issue}/labels/{quote(name, safe='')}" for name in write.remove]
    return "; ".join(parts) or "nothing: no labels to add or remove"
