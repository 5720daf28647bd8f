"""The policy gate (pure): what a worker's result may write back, and why.

``parse_policy`` reads a worker's ``policy`` mapping into a ``Policy`` of one of three
kinds (upstream §7):

* ``none``: no policy, or an empty one. Every action is allowed, and the verdict says so.
* ``invalid``: some known key has the wrong type (``allow: "yes"``, ``max_length: 0``).
  Every action is denied; the output is kept.
* ``rules``: each section (``comment``, ``labels``, ``status``, ``commit``, ``metadata``)
  restricts its action. An absent section imposes nothing; a present one without ``allow``
  counts as ``allow: false``; one that is not a mapping is ignored.

Which keys a policy knows, and every mistake in one (``policy_problems``), are in
``mecha.policy.schema``.

``apply_policy`` filters a ``TaskResult`` into a ``Verdict``: the actions that may be written,
and a decision text for everything allowed, changed or denied. It never raises and never
fails a task. The optional text switches (``strip_hidden``, ``allowed_domains``,
``neutralize_mentions``, ``neutralize_references``) run in ``mecha.policy.text``; the
commit's paths and hunks are read by ``mecha.diff.unified``.
"""

from __future__ import annotations

import json
import posixpath
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from mecha.diff.unified import changed_paths, hunk_count
from mecha.numbers import whole
from mecha.policy.schema import OPT_IN, SECTIONS, PolicyProblem, normal_domain, policy_problems
from mecha.policy.text import INVISIBLE, TextRules, clean_code, clean_prose, plural, truncate
from mecha.result import STATUS_STATES, CommitSuggestion, Labels, Status, TaskResult

#: ``policy.comment.max_per_hour`` when it is not written (a worker without a policy too)
DEFAULT_MAX_PER_HOUR = 10


class PolicyKind(StrEnum):
    """How a policy mapping was read."""

    NONE = "none"
    INVALID = "invalid"
    RULES = "rules"


@dataclass(frozen=True, slots=True)
class CommentRule:
    """``policy.comment``."""

    allow: bool = True
    max_length: int | None = None
    #: edit the worker's one comment instead of adding another
    sticky: bool = True
    #: comment writes (sticky edits too) on one thread an hour (``mecha.engine.comment_cap``)
    max_per_hour: int = DEFAULT_MAX_PER_HOUR


@dataclass(frozen=True, slots=True)
class LabelRule:
    """``policy.labels``; names compared case-insensitively."""

    allow: bool = True
    allowed: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()
    #: most label changes (adds, then removes) a result may make
    max_changes: int | None = None


@dataclass(frozen=True, slots=True)
class StatusRule:
    """``policy.status``."""

    allow: bool = True
    states: tuple[str, ...] = STATUS_STATES
    #: contexts besides the worker's own ``mecha/<worker>`` a status may go on: exact names
    #: or ``fnmatch`` globs, case-sensitive
    contexts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CommitRule:
    """``policy.commit``: a suggested change, as a unified diff."""

    allow: bool = True
    #: bytes of the diff (UTF-8)
    max_size: int | None = None
    max_hunks: int | None = None
    blocked_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """A worker's policy, read. Build it with ``parse_policy``."""

    kind: PolicyKind
    comment: CommentRule = field(default_factory=CommentRule)
    labels: LabelRule = field(default_factory=LabelRule)
    status: StatusRule = field(default_factory=StatusRule)
    commit: CommitRule = field(default_factory=CommitRule)
    metadata: bool = True
    text: TextRules = field(default_factory=TextRules)
    dry_run: bool = False
    problems: tuple[PolicyProblem, ...] = ()
    #: ``reactions: {allow: true}``: 👀 on a command's comment as its task starts (else none)
    reactions: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What may be written back, and every decision taken on the way."""

    comment: str | None
    sticky: bool
    labels: Labels | None
    status: Status | None
    commit: CommitSuggestion | None
    metadata: Mapping[str, Any]
    output: str
    allowed: tuple[str, ...]
    denied: tuple[str, ...]
    dry_run: bool

    @property
    def outcome(self) -> str:
        """``deny`` if anything was denied, else ``ok`` (the ``policy.applied`` log row)."""
        return "deny" if self.denied else "ok"

    def decision(self) -> dict[str, list[str]]:
        """``{"allowed": [...], "denied": [...]}`` as upstream records it."""
        return {"allowed": list(self.allowed), "denied": list(self.denied)}


def parse_policy(mapping: Mapping[str, Any] | None) -> Policy:
    """A worker's ``policy`` mapping read as a ``Policy``; never raises."""
    if mapping is None or (isinstance(mapping, Mapping) and not mapping):
        return Policy(PolicyKind.NONE)
    problems = tuple(policy_problems(mapping))
    if any(problem.fatal for problem in problems):
        dry_run = isinstance(mapping, Mapping) and mapping.get("dry_run") is True
        return Policy(PolicyKind.INVALID, dry_run=dry_run, problems=problems)
    section = {name: _rules(mapping.get(name)) for name in SECTIONS if name not in OPT_IN}
    comment, labels = section["comment"], section["labels"]
    status, commit = section["status"], section["commit"]
    return Policy(
        PolicyKind.RULES,
        comment=CommentRule(_allow(comment), whole(comment.get("max_length")),
                            comment.get("sticky", True),
                            whole(comment.get("max_per_hour", DEFAULT_MAX_PER_HOUR))),
        labels=LabelRule(_allow(labels), tuple(labels.get("allowed", ())),
                         tuple(labels.get("blocked", ())), whole(labels.get("max"))),
        status=StatusRule(_allow(status),
                          tuple(s.lower() for s in status.get("states", STATUS_STATES)),
                          tuple(status.get("contexts", ()))),
        commit=CommitRule(_allow(commit), whole(commit.get("max_size")), whole(commit.get("max")),
                          tuple(commit.get("blocked_paths", ()))),
        metadata=_allow(section["metadata"]),
        text=_text_rules(mapping),
        dry_run=mapping.get("dry_run", False),
        problems=problems,
        reactions=isinstance(reactions := mapping.get("reactions"), Mapping) and _allow(reactions),
    )  # fmt: skip


def apply_policy(policy: Policy, result: TaskResult, *, worker: str) -> Verdict:
    """The result filtered by ``policy``: what may be written, and every decision.

    ``worker`` names the worker whose result it is: its status goes on ``mecha/<worker>``
    (``own_context``) unless the policy's ``status.contexts`` allows the one it names.
    """
    decisions = _Decisions(policy)
    if policy.kind is PolicyKind.NONE:
        decisions.allow("policy: none set; every action allowed")
    elif policy.kind is PolicyKind.INVALID:
        fatal = [str(problem) for problem in policy.problems if problem.fatal]
        shown = plural(len(fatal), "problem") + (f": {fatal[0]}" if fatal else "")
        decisions.deny(f"policy: invalid config, every action denied ({shown})")
    if policy.dry_run:
        decisions.allow("policy: dry run; nothing is written")
    return Verdict(
        comment=_comment(policy, result, decisions),
        sticky=policy.comment.sticky,
        labels=_labels(policy.labels, result.labels, decisions),
        status=_status(policy, result.status, decisions, own_context(worker)),
        commit=_commit(policy, result.commit, decisions),
        metadata=_metadata(policy, result.metadata, decisions),
        output=result.output,
        allowed=tuple(decisions.allowed),
        denied=tuple(decisions.denied),
        dry_run=policy.dry_run,
    )


class _Decisions:
    """The decision texts being gathered for one verdict."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.allowed: list[str] = []
        self.denied: list[str] = []

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def deny(self, text: str) -> None:
        self.denied.append(text)

    def permitted(self, name: str, allow: bool, refusal: str = "blocked by policy") -> bool:
        """The action ``name`` may go on; if not, its denial is recorded."""
        if self.policy.kind is PolicyKind.INVALID:
            self.deny(f"{name}: denied (invalid policy config)")
            return False
        if not allow:
            self.deny(f"{name}: {refusal}")
            return False
        return True

    def prose(self, name: str, text: str) -> str:
        """``text`` through the policy's text switches, each change noted."""
        if not text or not self.policy.text.active:
            return text
        text, notes = clean_prose(text, self.policy.text)
        self.allowed.extend(f"{name}: {note}" for note in notes)
        return text


def _comment(policy: Policy, result: TaskResult, decisions: _Decisions) -> str | None:
    if result.comment is not None:
        body = result.comment.body
    elif result.output.strip():
        body = result.output.strip()
        decisions.allow("comment: from the worker's output")
    else:
        return None
    if not decisions.permitted("comment", policy.comment.allow):
        return None
    body = decisions.prose("comment", body)
    cut = False
    if policy.comment.max_length is not None:
        body, cut = truncate(body, policy.comment.max_length, policy.text)
    if not body.strip():
        decisions.deny("comment: nothing left to post after the policy's changes")
        return None
    decisions.allow("comment (truncated)" if cut else "comment")
    return body


def _labels(rule: LabelRule, labels: Labels | None, decisions: _Decisions) -> Labels | None:
    if labels is None or not decisions.permitted("labels", rule.allow):
        return None
    kept: dict[str, list[str]] = {"add": [], "remove": []}
    allowed = {name.casefold() for name in rule.allowed}
    blocked = {_label_key(name) for name in rule.blocked}
    for verb, names in (("add", labels.add), ("remove", labels.remove)):
        for name in names:
            said = f"label {verb} {_quoted(name)}"
            if _label_key(name) in blocked:
                decisions.deny(f"{said}: blocked")
            elif allowed and name.casefold() not in allowed:
                decisions.deny(f"{said}: not in allowlist")
            elif rule.max_changes is not None and sum(map(len, kept.values())) >= rule.max_changes:
                decisions.deny(f"{said}: over max {rule.max_changes}")
            else:
                kept[verb].append(name)
                decisions.allow(said)
    if not kept["add"] and not kept["remove"]:
        return None
    return Labels(add=tuple(kept["add"]), remove=tuple(kept["remove"]))


def own_context(worker: str) -> str:
    """The status context a worker's results go on unless they name another."""
    return f"mecha/{worker}"


def _status(
    policy: Policy, status: Status | None, decisions: _Decisions, own: str
) -> Status | None:
    if status is None or not decisions.permitted("status", policy.status.allow):
        return None
    state = status.state.lower()
    if state not in STATUS_STATES:
        decisions.deny(f"status: invalid state {_quoted(state)}")
        return None
    if state not in policy.status.states:
        decisions.deny(f"status: state {_quoted(state)} not allowed")
        return None
    refusal = _context_refusal(policy.status.contexts, status.context, own)
    if refusal:
        decisions.deny(f"status context {_quoted(status.context)}: {refusal}")
        return None
    description = decisions.prose("status description", status.description)
    decisions.allow(f"status: {state}")
    return Status(state=state, description=description, context=status.context)


def _context_refusal(contexts: tuple[str, ...], context: str, own: str) -> str:
    """Why a status may not go on ``context`` ("": the worker's own), "" if it may."""
    if not context or context == own:
        return ""
    if any(fnmatchcase(context, pattern) for pattern in contexts):
        return ""
    if contexts:
        return "not in contexts"
    unless = "unless status.contexts lists others"
    return f"not in contexts (a worker's statuses go on {_quoted(own)} {unless})"


def _commit(
    policy: Policy, commit: CommitSuggestion | None, decisions: _Decisions
) -> CommitSuggestion | None:
    if commit is None or not decisions.permitted("commit", policy.commit.allow):
        return None
    diff, notes = clean_code(commit.diff, policy.text)
    reason = _commit_refusal(policy.commit, commit.diff, diff)
    if reason:
        decisions.deny(f"commit: {reason}")
        return None
    decisions.allowed.extend(f"commit diff: {note}" for note in notes)
    message = decisions.prose("commit message", commit.message)
    decisions.allow("commit")
    return CommitSuggestion(diff=diff, message=message)


def _commit_refusal(rule: CommitRule, original: str, diff: str) -> str:
    """Why the commit may not go, "" if it may."""
    size = len(diff.encode("utf-8", errors="surrogatepass"))
    if rule.max_size is not None and size > rule.max_size:
        return f"diff {size} bytes exceeds max_size {rule.max_size}"
    if rule.max_hunks is not None and (hunks := hunk_count(diff)) > rule.max_hunks:
        return f"{hunks} hunks exceeds max {rule.max_hunks}"
    if not rule.blocked_paths:
        return ""
    paths = dict.fromkeys(_normal_path(p) for p in (*changed_paths(original), *changed_paths(diff)))
    if not paths:
        return "cannot tell which files the diff changes, and blocked_paths is set"
    for path in paths:
        if any(_path_blocked(path, pattern) for pattern in rule.blocked_paths):
            return f"touches blocked path {_quoted(path)}"
    return ""


def _metadata(
    policy: Policy, metadata: Mapping[str, Any], decisions: _Decisions
) -> Mapping[str, Any]:
    if not metadata or not decisions.permitted("metadata", policy.metadata, "redacted by policy"):
        return {}
    decisions.allow("metadata")
    return metadata


def _normal_path(path: str) -> str:
    """A repository path as git would resolve it: no ``.``/``..`` tricks, no leading ``/``."""
    return posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")


def _path_blocked(path: str, pattern: str) -> bool:
    """``pattern`` ending in "/" is a directory; else a glob on the path or its basename."""
    if pattern.endswith("/"):
        folder = _normal_path(pattern)
        parts = path.split("/")[:-1]
        return any(fnmatchcase("/".join(parts[: n + 1]), folder) for n in range(len(parts)))
    pattern = _normal_path(pattern)
    globs = (pattern, pattern[3:]) if pattern.startswith("**/") else (pattern,)
    base = path.rsplit("/", 1)[-1]
    return any(fnmatchcase(path, glob) or fnmatchcase(base, glob) for glob in globs)


def _label_key(name: str) -> str:
    """A label name as the blocklist compares it: no invisible characters, NFKC, casefolded."""
    return unicodedata.normalize("NFKC", INVISIBLE.sub("", name)).casefold().strip()


def _text_rules(mapping: Mapping[str, Any]) -> TextRules:
    return TextRules(
        neutralize_mentions=mapping.get("neutralize_mentions", False),
        neutralize_references=mapping.get("neutralize_references", False),
        strip_hidden=mapping.get("strip_hidden", False),
        allowed_domains=tuple(normal_domain(d) for d in mapping.get("allowed_domains", ())),
    )


def _rules(value: Any) -> Mapping[str, Any]:
    """A section's keys; an absent or non-mapping section allows everything."""
    return value if isinstance(value, Mapping) else {"allow": True}


def _allow(section: Mapping[str, Any]) -> bool:
    return section.get("allow", False) is True


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
