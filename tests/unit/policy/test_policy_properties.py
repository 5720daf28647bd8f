"""Properties of the policy gate for random results and random valid (and invalid) policies."""

from __future__ import annotations

import posixpath
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mecha.diff.unified import changed_paths
from mecha.policy.gate import Verdict, apply_policy, parse_policy
from mecha.policy.schema import policy_problems
from mecha.policy.text import INVISIBLE, TextRules, clean_prose, neutralize_mentions, truncate
from mecha.result import (
    STATUS_STATES,
    Comment,
    CommitSuggestion,
    Labels,
    Status,
    TaskResult,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PROSE_TOKENS = [
    *"aZ0 .-_*|#!/:é",
    "\n",
    "\n\n",
    "@",
    "@bob",
    "@org/team",
    "a@b.com",
    "`",
    "``",
    "```\n",
    "~~~\n",
    "\\",
    "#12",
    "fixes ",
    "Closes ",
    "GH-4",
    "&#64;",
    "&commat;",
    "<!--",
    "-->",
    "<",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\U000e0041",
    "\x1b[31m",
    "\x1b]8;;",
    "\x1b",
    "\x07",
    "\r",
    "https://",
    "http://",
    "www.",
    "github.com",
    "evil.example",
    "😀",
]
prose = st.lists(st.sampled_from(PROSE_TOKENS) | st.text(max_size=2), max_size=40).map("".join)
LABEL_NAMES = ["bug", "Bug", "BUG", "ui", "wontfix", "WontFix", "needs review", "é"]
label = st.sampled_from(LABEL_NAMES)
PATHS = [
    "src/app.py",
    ".github/workflows/ci.yml",
    "./.github/x.yml",
    "src/../.github/y.yml",
    "keys/server.pem",
    "README.md",
    "docs/a.md",
    "secrets/db.yml",
    "x/./secrets/../secrets/k",
]
PATTERNS = [".github/", "*.pem", "secrets/", "README.md", "**/*.yml"]


def diff_of(paths: list[str], hunks: int) -> str:
    body = "".join(f"@@ -{n * 10 + 1} +{n * 10 + 1} @@\n-a\n+b\u200b\n" for n in range(hunks))
    return "".join(f"--- a/{path}\n+++ b/{path}\n{body}" for path in paths)


diffs = st.builds(diff_of, st.lists(st.sampled_from(PATHS), max_size=3), st.integers(1, 5)) | prose
results = st.builds(
    TaskResult,
    output=prose,
    comment=st.none() | st.builds(Comment, body=prose),
    labels=st.none()
    | st.builds(
        Labels,
        add=st.lists(label, max_size=5).map(tuple),
        remove=st.lists(label, max_size=5).map(tuple),
    ),
    status=st.none()
    | st.builds(
        Status,
        state=st.sampled_from([*STATUS_STATES, "great", "SUCCESS"]),
        description=prose,
    ),
    commit=st.none() | st.builds(CommitSuggestion, diff=diffs, message=prose),
    metadata=st.dictionaries(st.sampled_from(["model", "exit_code"]), st.integers(), max_size=2),
)


def section(**keys: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={"allow": st.booleans(), **keys})


policies = st.fixed_dictionaries(
    {},
    optional={
        "comment": section(max_length=st.integers(1, 120), sticky=st.booleans()),
        "labels": section(
            allowed=st.lists(label, max_size=3),
            blocked=st.lists(label, max_size=3),
            max=st.integers(1, 4),
        ),
        "status": section(states=st.lists(st.sampled_from(STATUS_STATES), max_size=4)),
        "commit": section(
            max_size=st.integers(1, 400),
            max=st.integers(1, 4),
            blocked_paths=st.lists(st.sampled_from(PATTERNS), max_size=3),
        ),
        "metadata": section(),
        "dry_run": st.booleans(),
        "neutralize_mentions": st.booleans(),
        "neutralize_references": st.booleans(),
        "strip_hidden": st.booleans(),
        "allowed_domains": st.lists(st.sampled_from(["github.com", "example.org"]), max_size=2),
    },
)
garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["allow", "max", "max_length", "allowed", "comment", "labels", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
garbage_policies = st.dictionaries(
    st.sampled_from(["comment", "labels", "status", "commit", "metadata", "strip_hidden", "x"]),
    garbage,
    max_size=5,
)


def allowed(policy: dict[str, Any], name: str) -> bool:
    """What the policy says about section ``name``: absent allows, present needs allow true."""
    return name not in policy or policy[name].get("allow") is True


def blocked(path: str, pattern: str) -> bool:
    """The documented matching, written out independently of the module under test."""
    path = posixpath.normpath("/" + path).lstrip("/")
    if pattern.endswith("/"):
        return path.startswith(pattern)
    globs = [pattern, pattern.removeprefix("**/")]
    return any(fnmatchcase(path, g) or fnmatchcase(path.rsplit("/", 1)[-1], g) for g in globs)


def prose_of(verdict: Verdict) -> list[str]:
    texts = [verdict.comment or ""]
    texts.append(verdict.status.description if verdict.status else "")
    texts.append(verdict.commit.message if verdict.commit else "")
    return texts


@FAST
@given(policy=policies, result=results)
def test_limits_hold_for_any_result(policy: dict[str, Any], result: TaskResult) -> None:
    """Length, label, size, hunk, path and state limits are never exceeded."""
    assert policy_problems(policy) == []
    verdict = apply_policy(parse_policy(policy), result, worker="w")
    comment, labels, commit = (
        policy.get("comment", {}),
        policy.get("labels", {}),
        policy.get("commit", {}),
    )
    if verdict.comment is not None and "max_length" in comment:
        assert len(verdict.comment) <= comment["max_length"]
    if verdict.labels is not None:
        names = [*verdict.labels.add, *verdict.labels.remove]
        assert names
        assert len(names) <= labels.get("max", len(names))
        assert not {n.casefold() for n in names} & {b.casefold() for b in labels.get("blocked", [])}
        if labels.get("allowed"):
            assert {n.casefold() for n in names} <= {a.casefold() for a in labels["allowed"]}
    if verdict.commit is not None:
        assert len(verdict.commit.diff.encode()) <= commit.get("max_size", 10**9)
        for path in changed_paths(verdict.commit.diff) + changed_paths(result.commit.diff):  # type: ignore[union-attr]
            assert not any(blocked(path, p) for p in commit.get("blocked_paths", [])), path
    if verdict.status is not None:
        assert verdict.status.state in policy.get("status", {}).get("states", STATUS_STATES)
    assert verdict.output == result.output


@FAST
@given(policy=policies, result=results)
def test_allow_false_lets_nothing_of_its_kind_through(
    policy: dict[str, Any], result: TaskResult
) -> None:
    """A present section without ``allow: true`` passes nothing of its kind."""
    verdict = apply_policy(parse_policy(policy), result, worker="w")
    if not allowed(policy, "comment"):
        assert verdict.comment is None
    if not allowed(policy, "labels"):
        assert verdict.labels is None
    if not allowed(policy, "status"):
        assert verdict.status is None
    if not allowed(policy, "commit"):
        assert verdict.commit is None
    if not allowed(policy, "metadata"):
        assert verdict.metadata == {}
    assert verdict.dry_run is policy.get("dry_run", False)


@FAST
@given(policy=policies, result=results)
def test_strip_hidden_leaves_nothing_hidden(policy: dict[str, Any], result: TaskResult) -> None:
    """No invisible characters, escapes or HTML comments in any prose, nor hidden characters
    or escapes in the diff."""
    policy = {**policy, "strip_hidden": True}
    verdict = apply_policy(parse_policy(policy), result, worker="w")
    for text in prose_of(verdict):
        assert not INVISIBLE.search(text)
        assert "\x1b" not in text
        assert "\x9b" not in text
        assert "<!--" not in text
    if verdict.commit is not None:
        assert not INVISIBLE.search(verdict.commit.diff)
        assert "\x1b" not in verdict.commit.diff


@FAST
@given(policy=policies, result=results)
def test_neutralized_mentions_leave_no_bare_at_name(
    policy: dict[str, Any], result: TaskResult
) -> None:
    """Every ``@name`` left in prose sits in a code span the sanitiser made or found."""
    policy = {**policy, "neutralize_mentions": True}
    verdict = apply_policy(parse_policy(policy), result, worker="w")
    for text in prose_of(verdict):
        assert neutralize_mentions(text) == (text, 0)


@FAST
@given(text=prose, switches=st.lists(st.booleans(), min_size=3, max_size=3))
def test_clean_prose_is_idempotent(text: str, switches: list[bool]) -> None:
    """A second pass changes nothing: the truncation back-off relies on it."""
    mentions, references, hidden = switches
    rules = TextRules(mentions, references, hidden, ("github.com",))
    once, _ = clean_prose(text, rules)
    assert clean_prose(once, rules) == (once, ())


@settings(max_examples=100, deadline=None)
@given(policy=garbage_policies, result=results)
def test_any_policy_mapping_is_applied_without_raising(
    policy: dict[str, Any], result: TaskResult
) -> None:
    """Whatever the YAML held, the gate answers; a fatal problem denies every action."""
    problems = policy_problems(policy)
    verdict = apply_policy(parse_policy(policy), result, worker="w")
    if any(problem.fatal for problem in problems):
        assert (verdict.comment, verdict.labels, verdict.status, verdict.commit) == (None,) * 4
        assert verdict.metadata == {}
        assert verdict.denied[0].startswith("policy: invalid config")


# ------------------------------------------------------------------ rendered-markdown oracle

MARKDOWN_TOKENS = [t for t in PROSE_TOKENS if not re.search(r"[<:/]|www", t)]
markdown = st.lists(
    st.sampled_from(MARKDOWN_TOKENS)
    | st.sampled_from(["    ", "   ", "- ", "> ", "1. ", "|", "\t", "@a-", "````\n", "[", "](x)"])
    | st.sampled_from(["![", "  \n", "&#96;", "\\`", "***", "---\n"]),
    max_size=40,
).map("".join)
PING = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9]")


def pings(text: str) -> list[str]:
    """Mentions a forge would notify, read off the rendered text outside code and links."""
    import markdown_it  # a dev dependency

    found: list[str] = []
    for token in markdown_it.MarkdownIt("commonmark").enable("table").parse(text):
        if token.type != "inline":
            continue
        run, depth = "", 0
        for child in token.children or []:
            depth += {"link_open": 1, "link_close": -1}.get(child.type, 0)
            if child.type == "text" and depth == 0:
                run += child.content
            elif child.type in ("softbreak", "hardbreak"):
                run += "\n"
            else:
                found += PING.findall(run)
                run = ""
        found += PING.findall(run)
    return found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("hi @bob", ["@b"]),
        ("_@em_ &#64;x", ["@e", "@x"]),
        ("`@bob` [@link](u) a@b.com", []),
        ("```\n@fenced\n```", []),
    ],
)
def test_the_oracle_sees_what_a_forge_would_ping(text: str, found: list[str]) -> None:
    """The rendered-markdown check can fail: it finds mentions outside code and links."""
    assert pings(text) == found


@settings(max_examples=300, deadline=None)
@given(text=markdown, limit=st.integers(1, 80))
def test_a_renderer_sees_no_mention_after_neutralizing(text: str, limit: int) -> None:
    """Rendered as CommonMark (with tables), the neutralized text pings nobody, nor does any
    cut of it to a length.

    Raw HTML and bare URLs are left out of the alphabet: mentions inside an HTML block are a
    documented limit, and a bare URL is a link on GitHub (no ping) but text to this renderer.
    """
    neutral, _ = neutralize_mentions(text)
    assert pings(neutral) == [], neutral
    cut, _ = truncate(neutral, limit, TextRules(neutralize_mentions=True))
    assert len(cut) <= limit
    assert pings(cut) == [], cut
