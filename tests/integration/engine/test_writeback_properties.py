"""Property: for random results and random policies, nothing outside the policy reaches GitHub.

Each example runs the real write path (policy → plan → GitHubWriter) against the forge
emulator over HTTP, on a pull request of its own, and checks what the emulator received
against the policy as written (not against the verdict): lengths and counts within their
limits, no blocked label or path, no status on a context the policy does not allow (the
worker's own mecha/w or status.contexts), nothing of a section that is not allowed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mecha.diff.unified import changed_paths
from mecha.event import Event, EventState
from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.write import GitHubWriter
from mecha.forges.writer import WriteFailure
from mecha.policy.gate import apply_policy, parse_policy
from mecha.policy.plan import plan_writes
from mecha.result import Comment, CommitSuggestion, Labels, Status, TaskResult
from mecha.testing.forge.api import FileChange, ForgeEmulator, Recorded

TOKEN = "ghp_property_token"
LABELS = ["bug", "Bug", "docs", "security", "wip", "needs-tests"]
PATHS = ["src/app.py", ".github/workflows/ci.yml", "docs/readme.md", "Makefile"]
STATES = ["success", "failure", "pending", "error", "approved"]
#: "" goes on the worker's own mecha/w; the others only if the policy's contexts allow them
CONTEXTS = ["", "mecha/w", "mecha/other", "ci/required-check", "ci/lint", "deploy"]
PATCH = "@@ -1,3 +1,3 @@\n a = 1\n-b = 2\n+b = 3\n c = 4"
_NUMBERS = itertools.count(1)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_HIDDEN = re.compile("[\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069\x1b]")


@pytest.fixture(scope="module")
def forge() -> Iterator[ForgeEmulator]:
    with ForgeEmulator(github_token=TOKEN) as emulator:
        yield emulator


def diff_for(path: str) -> str:
    return f"--- a/{path}\n+++ b/{path}\n@@ -2 +2 @@\n-b = 2\n+b = 5\n"


_PIECES = [*"ab @#<!->\u200b\u202e\x1b[m\n", "fixes #3", "http://evil.io/x", "@alice", "<!-- x -->"]
texts = st.lists(st.sampled_from(_PIECES), max_size=60).map("".join)
results = st.builds(
    TaskResult,
    output=texts,
    comment=st.none() | st.builds(Comment, body=texts.filter(lambda t: t.strip() != "")),
    labels=st.none() | st.builds(
        Labels, add=st.lists(st.sampled_from(LABELS), max_size=5).map(tuple),
        remove=st.lists(st.sampled_from(LABELS), max_size=3).map(tuple),
    ),
    status=st.none() | st.builds(
        Status, state=st.sampled_from(STATES), description=texts,
        context=st.sampled_from(CONTEXTS),
    ),
    commit=st.none() | st.builds(
        CommitSuggestion, diff=st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True)
        .map(lambda paths: "".join(diff_for(p) for p in paths)), message=texts,
    ),
)  # fmt: skip
allow = st.sampled_from([True, False, None, "yes"])  # None: left out; "yes": malformed


def section(**extra: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any] | None]:
    base = st.fixed_dictionaries({}, optional={"allow": allow, **extra})
    return st.none() | base.map(lambda d: {k: v for k, v in d.items() if v is not None})


policies = st.fixed_dictionaries(
    {},
    optional={
        "comment": section(max_length=st.integers(1, 200)),
        "labels": section(
            allowed=st.lists(st.sampled_from(LABELS), max_size=3),
            blocked=st.lists(st.sampled_from(LABELS), max_size=2), max=st.integers(1, 3),
        ),
        "status": section(
            states=st.lists(st.sampled_from(STATES[:4]), min_size=1, max_size=3),
            contexts=st.sampled_from([["ci/lint"], ["ci/*"], ["deploy", "mecha/*"]]),
        ),
        "commit": section(
            max_size=st.integers(10, 200),
            blocked_paths=st.sampled_from([[".github/"], ["Makefile"]]),
        ),
        "neutralize_mentions": st.booleans(), "strip_hidden": st.booleans(),
    },
).map(lambda d: {k: v for k, v in d.items() if v is not None})  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(result=results, policy=policies)
def test_no_write_outside_the_policy_reaches_github(
    forge: ForgeEmulator, result: TaskResult, policy: dict[str, Any]
) -> None:
    number = next(_NUMBERS)
    head = f"{number:040x}"
    forge.add_pull("octo", "app", number, base_sha="b" * 40, head_sha=head,
                   files=[FileChange(p, PATCH) for p in PATHS])  # fmt: skip
    event = Event(
        id=f"e{number}", source="github", type="pull_request.opened", delivery_id="",
        actor="", subject="", state=EventState.MATCHED,
        attrs={"repo_owner": "octo", "repo_name": "app", "number": number, "head_sha": head},
    )  # fmt: skip
    before = len(forge.requests)
    verdict = apply_policy(parse_policy(policy), result, worker="w")
    planned = plan_writes(verdict, event=event, worker="w")
    asyncio.run(_write_all(forge, planned.writes))
    sent = [r for r in forge.requests[before:] if r.method != "GET"]
    _check(policy, sent, head)


async def _write_all(forge: ForgeEmulator, writes: Any) -> None:
    async with httpx.AsyncClient() as http:
        writer = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(TOKEN))
        for write in writes:
            try:
                await writer.write(write)
            except WriteFailure as failure:  # a refusal by the forge writes nothing
                assert failure.status in (404, 422), failure.message


def _rule(policy: dict[str, Any], name: str) -> tuple[bool, dict[str, Any]]:
    """(may anything of this section pass, its rules) as the policy is written."""
    malformed = any(
        isinstance(v, dict) and "allow" in v and not isinstance(v["allow"], bool)
        for v in policy.values()
    )
    rules = policy.get(name)
    if malformed:
        return False, {}
    if rules is None:
        return True, {}
    return rules.get("allow") is True, rules


def _check(policy: dict[str, Any], sent: list[Recorded], head: str) -> None:
    comments = [r for r in sent if r.path.endswith("/comments") or "/issues/comments/" in r.path]
    reviews = [r for r in sent if r.path.endswith("/reviews")]
    labels = [r for r in sent if "/labels" in r.path]
    statuses = [r for r in sent if "/statuses/" in r.path]
    suggestion_comments = [c for c in comments if "Suggested" in _body(c).get("body", "")]
    plain_comments = [c for c in comments if c not in suggestion_comments]
    _check_comments(policy, plain_comments)
    _check_labels(policy, labels)
    ok, rules = _rule(policy, "status")
    for request in statuses:
        assert ok and request.path.endswith(head)
        assert _body(request)["state"] in rules.get("states", STATES[:4])
        context = _body(request)["context"]
        assert context == "mecha/w" or any(
            fnmatchcase(context, pattern) for pattern in rules.get("contexts", [])
        ), context
    ok, rules = _rule(policy, "commit")
    for request in reviews + suggestion_comments:
        assert ok, request
    for request in reviews:
        for comment in _body(request)["comments"]:
            assert not _blocked(comment["path"], rules.get("blocked_paths", []))
    if reviews or suggestion_comments:
        assert "max_size" not in rules or rules["max_size"] >= 1


def _check_comments(policy: dict[str, Any], comments: list[Recorded]) -> None:
    ok, rules = _rule(policy, "comment")
    for request in comments:
        assert ok, request
        text = _body(request)["body"].split("\n\n<!-- mecha:")[0]
        if "max_length" in rules:
            assert len(text) <= rules["max_length"]
        if policy.get("strip_hidden"):
            assert not _HIDDEN.search(text) and "<!--" not in text
        if policy.get("neutralize_mentions"):
            # outside code spans (where a policy puts neutralised mentions) no @name is
            # left: "@@alice" becomes "@`@alice`", a lone "@" and a code span
            prose = _CODE_SPAN.sub(" ", text)
            assert not re.search(r"(?<![`\w])@[A-Za-z0-9]", prose), text


def _check_labels(policy: dict[str, Any], requests: list[Recorded]) -> None:
    ok, rules = _rule(policy, "labels")
    changed: list[str] = []
    for request in requests:
        assert ok, request
        names = _body(request).get("labels") if request.method == "POST" else None
        changed += names if names is not None else [request.path.rsplit("/", 1)[-1]]
    blocked = {b.lower() for b in rules.get("blocked", [])}
    allowed = {a.lower() for a in rules.get("allowed", [])}
    for name in changed:
        assert name.lower() not in blocked
        assert not allowed or name.lower() in allowed
    assert len(changed) <= rules.get("max", len(changed))


def _blocked(path: str, patterns: list[str]) -> bool:
    return any(path.startswith(p) if p.endswith("/") else path == p for p in patterns)


def _body(request: Recorded) -> dict[str, Any]:
    data = json.loads(request.body) if request.body else {}
    return data if isinstance(data, dict) else {}


def test_the_properties_see_blocked_paths() -> None:
    """The path check above reads the same paths the policy does."""
    assert changed_paths(diff_for(".github/workflows/ci.yml")) == [".github/workflows/ci.yml"]
    assert _blocked(".github/workflows/ci.yml", [".github/"])
