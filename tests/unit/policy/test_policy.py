"""The policy gate: parse_policy, policy_problems and apply_policy (upstream §7 and extensions)."""

from __future__ import annotations

from typing import Any

import pytest

from mecha.policy.gate import Policy, PolicyKind, Verdict, apply_policy, parse_policy
from mecha.policy.schema import policy_problems
from mecha.policy.text import SUFFIX
from mecha.result import Comment, CommitSuggestion, Labels, Status, TaskResult, parse_result

DIFF = "--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-a\n+b\n"
FULL: dict[str, Any] = {
    "output": "reviewed",
    "comment": {"body": "looks good"},
    "labels": {"add": ["bug"], "remove": ["needs-review"]},
    "status": {"state": "success", "description": "fine"},
    "commit": {"message": "fix", "diff": DIFF},
    "metadata": {"model": "m"},
}
EVERYTHING = {
    "comment": {"allow": True},
    "labels": {"allow": True},
    "status": {"allow": True},
    "commit": {"allow": True},
    "metadata": {"allow": True},
}


def verdict(policy: Any, answer: dict[str, Any] | None = None) -> Verdict:
    """The verdict of ``policy`` (a mapping) on a worker's answer (FULL by default)."""
    return apply_policy(
        parse_policy(policy), parse_result(FULL if answer is None else answer), worker="w"
    )


def diff_of(*paths: str, hunks: int = 1) -> str:
    """A unified diff changing each of ``paths`` with ``hunks`` hunks."""
    body = "".join(f"@@ -{n * 10 + 1} +{n * 10 + 1} @@\n-a\n+b\n" for n in range(hunks))
    return "".join(f"--- a/{path}\n+++ b/{path}\n{body}" for path in paths)


def commit_verdict(rule: dict[str, Any], diff: str) -> Verdict:
    return verdict({"commit": {"allow": True, **rule}}, {"commit": {"diff": diff}})


# ------------------------------------------------------------------ no policy, invalid policy


@pytest.mark.parametrize("policy", [None, {}])
def test_no_policy_allows_everything_and_says_so(policy: Any) -> None:
    """None or an empty mapping: every action passes, and the first decision says why."""
    result = verdict(policy)
    assert parse_policy(policy).kind is PolicyKind.NONE
    assert result.allowed[0] == "policy: none set; every action allowed"
    assert result.denied == ()
    assert result.comment == "looks good"
    assert result.labels == Labels(add=("bug",), remove=("needs-review",))
    assert result.status == Status(state="success", description="fine")
    assert result.commit == CommitSuggestion(diff=DIFF, message="fix")
    assert result.metadata == {"model": "m"}
    assert result.outcome == "ok"


def test_an_invalid_state_is_dropped_even_without_a_policy() -> None:
    """A state no forge accepts cannot be written, whatever the policy."""
    result = verdict(None, {"status": {"state": "great"}})
    assert result.status is None
    assert result.denied == ('status: invalid state "great"',)


@pytest.mark.parametrize("allow", ["yes", "true", 1, 0, None, [True]])
def test_an_allow_that_is_not_a_boolean_denies_everything(allow: Any) -> None:
    """Upstream: a present ``allow`` that is not a YAML bool makes the policy DenyAll."""
    result = verdict({"comment": {"allow": allow}, "labels": {"allow": True}})
    assert result.comment is None
    assert result.labels is None
    assert result.status is None
    assert result.commit is None
    assert result.metadata == {}
    assert result.output == "reviewed"
    assert result.denied[1:] == (
        "comment: denied (invalid policy config)",
        "labels: denied (invalid policy config)",
        "status: denied (invalid policy config)",
        "commit: denied (invalid policy config)",
        "metadata: denied (invalid policy config)",
    )


def test_an_invalid_policy_names_its_first_problem() -> None:
    """The first denial says the policy is invalid and quotes what is wrong."""
    result = verdict({"labels": {"allow": True, "allowed": "bug"}, "comment": {"max_length": 0}})
    assert result.denied[0] == (
        "policy: invalid config, every action denied (2 problems: policy.labels.allowed: "
        'expected a list of label names, got a string "bug")'
    )


def test_an_invalid_policy_denies_only_what_the_result_has() -> None:
    """Actions the worker did not ask for are not listed."""
    result = verdict({"comment": {"allow": "yes"}}, {"labels": ["bug"]})
    assert result.denied[1:] == ("labels: denied (invalid policy config)",)
    assert result.outcome == "deny"


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"comment": {"max_length": "10"}}, "policy.comment.max_length: expected a whole number"),
        ({"comment": {"max_length": 0}}, "policy.comment.max_length: expected a whole number"),
        ({"comment": {"max_length": True}}, "policy.comment.max_length: expected a whole number"),
        ({"comment": {"sticky": "no"}}, "policy.comment.sticky: expected true or false, got a s"),
        ({"labels": {"allowed": "bug"}}, "policy.labels.allowed: expected a list of label names"),
        ({"labels": {"blocked": ["ok", 3]}}, "policy.labels.blocked[1]: expected a label name, "),
        ({"labels": {"max": -1}}, "policy.labels.max: expected a whole number above 0, got a "),
        ({"status": {"states": ["success", "great"]}}, "policy.status.states[1]: expected one "),
        ({"status": {"states": "success"}}, "policy.status.states: expected a list of commit s"),
        ({"commit": {"max_size": 1.5}}, "policy.commit.max_size: expected a whole number abov"),
        ({"commit": {"max": None}}, "policy.commit.max: expected a whole number above 0, got null"),
        ({"commit": {"blocked_paths": [""]}}, "policy.commit.blocked_paths[0]: expected a path"),
        ({"dry_run": "yes"}, 'policy.dry_run: expected true or false, got a string "yes"'),
        ({"strip_hidden": 1}, "policy.strip_hidden: expected true or false, got a number 1"),
        ({"allowed_domains": "github.com"}, "policy.allowed_domains: expected a list of domain"),
        ({"allowed_domains": ["https://x.io"]}, "policy.allowed_domains[0]: expected a domain "),
    ],
)
def test_a_wrong_type_for_a_known_key_is_fatal(policy: dict[str, Any], problem: str) -> None:
    """Every known key with a wrong type is a located, fatal problem: the policy denies all."""
    problems = policy_problems(policy)
    assert len(problems) == 1
    assert str(problems[0]).startswith(problem), str(problems[0])
    assert problems[0].fatal
    assert parse_policy(policy).kind is PolicyKind.INVALID


def test_the_example_message_for_a_string_allowlist() -> None:
    """The message names the path, the expected shape and the value given."""
    (problem,) = policy_problems({"labels": {"allowed": "bug"}})
    assert str(problem) == (
        'policy.labels.allowed: expected a list of label names, got a string "bug"'
    )
    assert problem.path == "policy.labels.allowed"


def test_unknown_keys_are_warnings_with_a_suggestion() -> None:
    """Unknown keys are ignored (as upstream) but reported, with the closest known key."""
    policy = {"labls": {"allow": False}, "comment": {"allow": True, "max_lenght": 5}}
    problems = policy_problems(policy)
    assert [p.path for p in problems] == ["policy.labls", "policy.comment.max_lenght"]
    assert not any(p.fatal for p in problems)
    assert "did you mean labels?" in problems[0].message
    assert "known keys are allowed_domains, comment, commit," in problems[0].message
    assert "did you mean max_length?" in problems[1].message
    assert parse_policy(policy).kind is PolicyKind.RULES
    assert verdict(policy).labels is not None


def test_a_section_that_is_not_a_mapping_is_ignored_with_a_warning() -> None:
    """Upstream ignores ``comment: false`` (no restriction); the warning says so plainly."""
    (problem,) = policy_problems({"comment": False})
    assert not problem.fatal
    assert problem.path == "policy.comment"
    assert "not restricted" in problem.message
    result = verdict({"comment": False, "labels": {"allow": False}})
    assert result.comment == "looks good"
    assert result.denied == ("labels: blocked by policy",)


def test_a_policy_that_is_not_a_mapping_is_invalid() -> None:
    """A list where a mapping belongs is a fatal problem at ``policy``."""
    assert str(policy_problems(["comment"])[0]).startswith("policy: expected a mapping")
    assert parse_policy(["comment"]).kind is PolicyKind.INVALID  # type: ignore[arg-type]


def test_a_valid_policy_has_no_problems() -> None:
    """Every key used correctly: nothing to report."""
    policy = {
        "comment": {"allow": True, "max_length": 100, "sticky": False},
        "labels": {"allow": True, "allowed": ["bug"], "blocked": ["x"], "max": 2},
        "status": {"allow": True, "states": ["Success", "failure"]},
        "commit": {"allow": True, "max_size": 10, "max": 2, "blocked_paths": [".github/"]},
        "metadata": {"allow": False},
        "dry_run": True,
        "neutralize_mentions": True,
        "neutralize_references": False,
        "strip_hidden": True,
        "allowed_domains": ["github.com", "*.example.org"],
    }
    assert policy_problems(policy) == []
    parsed = parse_policy(policy)
    assert parsed.status.states == ("success", "failure")
    assert parsed.text.allowed_domains == ("github.com", "example.org")
    assert parsed.comment.sticky is False
    assert parsed.dry_run


# ------------------------------------------------------------------ sections and allow


@pytest.mark.parametrize(
    ("section", "field", "reason"),
    [
        ("comment", "comment", "comment: blocked by policy"),
        ("labels", "labels", "labels: blocked by policy"),
        ("status", "status", "status: blocked by policy"),
        ("commit", "commit", "commit: blocked by policy"),
    ],
)
def test_a_section_with_allow_false_drops_its_action(section: str, field: str, reason: str) -> None:
    """``allow: false`` drops the action with upstream's reason; the rest pass."""
    result = verdict({**EVERYTHING, section: {"allow": False}})
    assert getattr(result, field) is None
    assert result.denied == (reason,)


def test_a_present_section_without_allow_denies() -> None:
    """A section present with ``allow`` omitted counts as ``allow: false``."""
    result = verdict({"comment": {"max_length": 50}})
    assert result.comment is None
    assert result.denied == ("comment: blocked by policy",)


def test_an_absent_section_imposes_nothing() -> None:
    """Only the sections present restrict; the others pass untouched."""
    result = verdict({"labels": {"allow": False}})
    assert result.comment == "looks good"
    assert result.status is not None
    assert result.commit is not None
    assert result.metadata == {"model": "m"}
    assert result.denied == ("labels: blocked by policy",)


def test_metadata_allow_false_strips_it() -> None:
    """Upstream's wording: redacted by policy."""
    result = verdict({"metadata": {"allow": False}})
    assert result.metadata == {}
    assert result.denied == ("metadata: redacted by policy",)


def test_output_is_never_filtered() -> None:
    """Even with everything denied, the output is kept as it came."""
    result = verdict({name: {"allow": False} for name in EVERYTHING})
    assert result.output == "reviewed"
    assert len(result.denied) == 5


def test_allowed_actions_are_recorded_one_decision_each() -> None:
    """Each action that passes is named in ``allowed``."""
    assert verdict(EVERYTHING).allowed == (
        "comment",
        'label add "bug"',
        'label remove "needs-review"',
        "status: success",
        "commit",
        "metadata",
    )


def test_the_decision_is_recorded_as_upstream_writes_it() -> None:
    """``{"allowed": [...], "denied": [...]}`` and outcome deny when anything was denied."""
    result = verdict({**EVERYTHING, "metadata": {"allow": False}})
    assert result.decision()["denied"] == ["metadata: redacted by policy"]
    assert result.decision()["allowed"][0] == "comment"
    assert result.outcome == "deny"


def test_apply_policy_accepts_a_hand_built_policy() -> None:
    """A Policy value built directly is applied like a parsed one."""
    result = apply_policy(
        Policy(PolicyKind.RULES), TaskResult(comment=Comment(body="x")), worker="w"
    )
    assert result.comment == "x"
    assert result.denied == ()


# ------------------------------------------------------------------ comment


def test_a_long_comment_is_cut_to_max_length_with_the_suffix() -> None:
    """The total, suffix included, is exactly the limit; the decision says truncated."""
    result = verdict(
        {"comment": {"allow": True, "max_length": 40}}, {"comment": {"body": "x" * 100}}
    )
    assert result.comment == "x" * (40 - len(SUFFIX)) + SUFFIX
    assert result.comment is not None and len(result.comment) == 40
    assert result.allowed == ("comment (truncated)",)


def test_a_comment_at_the_limit_is_kept_whole() -> None:
    """Exactly max_length characters is not too long."""
    result = verdict({"comment": {"allow": True, "max_length": 5}}, {"comment": {"body": "abcde"}})
    assert result.comment == "abcde"
    assert result.allowed == ("comment",)


@pytest.mark.parametrize("limit", [1, 10, len(SUFFIX)])
def test_a_limit_not_above_the_suffix_hard_cuts(limit: int) -> None:
    """No room for the suffix: the body is cut to the limit without it."""
    result = verdict(
        {"comment": {"allow": True, "max_length": limit}}, {"comment": {"body": "y" * 100}}
    )
    assert result.comment == "y" * limit


def test_max_length_counts_characters_not_bytes() -> None:
    """Multi-byte characters count once each (upstream counts runes)."""
    body = "é" * 30 + "日本" * 5
    result = verdict({"comment": {"allow": True, "max_length": 40}}, {"comment": {"body": body}})
    assert result.comment == body
    short = verdict({"comment": {"allow": True, "max_length": 39}}, {"comment": {"body": body}})
    assert short.comment == body[: 39 - len(SUFFIX)] + SUFFIX


def test_sticky_is_carried_to_the_verdict() -> None:
    """``sticky`` defaults to true and is only carried through."""
    assert verdict(EVERYTHING).sticky is True
    assert verdict({"comment": {"allow": True, "sticky": False}}).sticky is False


def test_the_output_becomes_the_comment_when_there_is_none() -> None:
    """A result with output but no comment: the output is the comment candidate."""
    result = verdict(EVERYTHING, {"output": "  the review  \n"})
    assert result.comment == "the review"
    assert result.allowed == ("comment: from the worker's output", "comment")
    assert result.output == "  the review  \n"


def test_the_output_fallback_obeys_the_comment_rules() -> None:
    """A denied comment section drops the fallback with the usual reason; limits apply."""
    denied = verdict({"comment": {"allow": False}}, {"output": "text"})
    assert denied.comment is None
    assert denied.denied == ("comment: blocked by policy",)
    cut = verdict({"comment": {"allow": True, "max_length": 3}}, {"output": "abcdef"})
    assert cut.comment == "abc"


def test_blank_output_is_no_comment() -> None:
    """Whitespace-only output is not posted."""
    result = verdict(EVERYTHING, {"output": " \n "})
    assert result.comment is None
    assert result.allowed == ()


def test_a_comment_emptied_by_sanitising_is_dropped() -> None:
    """A body that was only hidden text is not posted empty."""
    result = verdict({"strip_hidden": True}, {"comment": {"body": "<!-- all hidden -->"}})
    assert result.comment is None
    assert result.denied == ("comment: nothing left to post after the policy's changes",)


def test_sanitising_runs_before_truncation() -> None:
    """The sanitised body is cut, so the final length never exceeds max_length."""
    policy = {"comment": {"allow": True, "max_length": 60}, "neutralize_mentions": True}
    body = " ".join(["@someone"] * 20)
    result = verdict(policy, {"comment": {"body": body}})
    assert result.comment is not None
    assert len(result.comment) <= 60
    assert result.comment.endswith(SUFFIX)
    assert result.allowed == ("comment: 20 mentions neutralized", "comment (truncated)")


def test_a_cut_never_leaves_half_a_neutralized_mention() -> None:
    """Cutting inside `` `@user` `` would expose ``@us``: the cut backs off a word."""
    body = "hello `@someone` " + "z" * 50
    limit = len("hello `@some") + len(SUFFIX)
    policy = {"comment": {"allow": True, "max_length": limit}, "neutralize_mentions": True}
    result = verdict(policy, {"comment": {"body": body}})
    assert result.comment == "hello" + SUFFIX


# ------------------------------------------------------------------ labels


def test_a_blocked_label_is_dropped_case_insensitively() -> None:
    """``blocked: [WontFix]`` drops ``wontfix`` from add and ``WONTFIX`` from remove."""
    policy = {"labels": {"allow": True, "blocked": ["WontFix"]}}
    result = verdict(policy, {"labels": {"add": ["wontfix", "bug"], "remove": ["WONTFIX"]}})
    assert result.labels == Labels(add=("bug",))
    assert result.denied == ('label add "wontfix": blocked', 'label remove "WONTFIX": blocked')


def test_a_label_outside_the_allowlist_is_dropped_case_insensitively() -> None:
    """With an allowlist, only its names pass, in any case."""
    policy = {"labels": {"allow": True, "allowed": ["Bug", "ui"]}}
    result = verdict(policy, {"labels": {"add": ["BUG", "security"], "remove": ["UI"]}})
    assert result.labels == Labels(add=("BUG",), remove=("UI",))
    assert result.denied == ('label add "security": not in allowlist',)


def test_an_empty_allowlist_allows_every_label() -> None:
    """``allowed: []`` is no allowlist."""
    result = verdict({"labels": {"allow": True, "allowed": []}}, {"labels": ["anything"]})
    assert result.labels == Labels(add=("anything",))


def test_a_lookalike_of_a_blocked_label_is_blocked() -> None:
    """Invisible characters and full-width letters do not slip past the blocklist."""
    policy = {"labels": {"allow": True, "blocked": ["wontfix"]}}
    result = verdict(policy, {"labels": ["wont\u200bfix", "ｗｏｎｔｆｉｘ"]})
    assert result.labels is None
    assert len(result.denied) == 2


def test_labels_with_nothing_left_are_dropped_whole() -> None:
    """If no label survives, there is no labels action at all."""
    policy = {"labels": {"allow": True, "allowed": ["ok"]}}
    result = verdict(policy, {"labels": {"add": ["a"], "remove": ["b"]}})
    assert result.labels is None
    assert result.denied == (
        'label add "a": not in allowlist',
        'label remove "b": not in allowlist',
    )


def test_labels_over_max_are_dropped_adds_first() -> None:
    """``max`` counts adds, then removes, in order; filtered labels do not count."""
    policy = {"labels": {"allow": True, "max": 3, "blocked": ["x"]}}
    answer = {"labels": {"add": ["a", "x", "b"], "remove": ["c", "d"]}}
    result = verdict(policy, answer)
    assert result.labels == Labels(add=("a", "b"), remove=("c",))
    assert result.denied == ('label add "x": blocked', 'label remove "d": over max 3')


def test_a_quote_in_a_label_name_is_escaped_in_the_decision() -> None:
    """Decision texts quote label names so they cannot be confused."""
    result = verdict({"labels": {"allow": True, "blocked": ['a"b']}}, {"labels": ['a"b']})
    assert result.denied == ('label add "a\\"b": blocked',)


# ------------------------------------------------------------------ status


def test_a_state_outside_the_four_is_invalid() -> None:
    """Upstream's reason for a state no forge knows."""
    result = verdict({"status": {"allow": True}}, {"status": {"state": "Done"}})
    assert result.status is None
    assert result.denied == ('status: invalid state "done"',)


def test_a_state_outside_the_whitelist_is_not_allowed() -> None:
    """``states`` narrows the four; a state outside it is dropped."""
    policy = {"status": {"allow": True, "states": ["pending", "FAILURE"]}}
    assert verdict(policy, {"status": {"state": "failure"}}).status == Status(state="failure")
    result = verdict(policy, {"status": {"state": "success"}})
    assert result.status is None
    assert result.denied == ('status: state "success" not allowed',)


def test_a_status_denied_by_allow_false_is_not_also_invalid() -> None:
    """The allow check comes first and gives the only reason."""
    result = verdict({"status": {"allow": False}}, {"status": {"state": "great"}})
    assert result.denied == ("status: blocked by policy",)


def test_status_state_check_works_on_a_hand_built_result() -> None:
    """States are compared lowercased even if the result was not parsed."""
    result = apply_policy(
        parse_policy(None), TaskResult(status=Status(state="PENDING")), worker="w"
    )
    assert result.status == Status(state="pending")


REQUIRED = {"status": {"state": "success", "context": "ci/required-check"}, "output": "hi"}


@pytest.mark.parametrize(
    "policy", [None, {}, {"status": {"allow": True, "states": ["success", "failure"]}}]
)
def test_a_status_on_a_foreign_context_is_denied_by_default(policy: Any) -> None:
    """A prompt-injected result cannot satisfy (or block) a required check; the rest goes."""
    result = verdict(policy, REQUIRED)
    assert result.status is None
    assert result.denied == (
        'status context "ci/required-check": not in contexts (a worker\'s statuses go on '
        '"mecha/w" unless status.contexts lists others)',
    )
    assert result.comment == "hi"


def test_a_status_without_a_context_or_on_its_own_goes_through() -> None:
    """No context: the write plan puts it on mecha/<worker>; naming that one is the same."""
    policy = {"status": {"allow": True}}
    assert verdict(policy, {"status": {"state": "success"}}).status == Status(state="success")
    own = verdict(policy, {"status": {"state": "success", "context": "mecha/w"}})
    assert own.status == Status(state="success", context="mecha/w")
    other = verdict(policy, {"status": {"state": "success", "context": "mecha/other"}})
    assert other.status is None


@pytest.mark.parametrize(
    ("contexts", "context", "allowed"),
    [
        (["ci/lint"], "ci/lint", True),
        (["ci/lint"], "ci/lint2", False),
        (["ci/*"], "ci/required-check", True),
        (["ci/*"], "CI/required-check", False),
        (["review/?"], "review/1", True),
        (["review/?"], "ci/required-check", False),
    ],
)
def test_contexts_allow_exact_names_and_globs(
    contexts: list[str], context: str, allowed: bool
) -> None:
    """Case-sensitive fnmatch; anything else is denied with the reason."""
    policy = {"status": {"allow": True, "contexts": contexts}}
    result = verdict(policy, {"status": {"state": "failure", "context": context}})
    if allowed:
        assert result.status == Status(state="failure", context=context)
        assert result.denied == ()
    else:
        assert result.status is None
        assert result.denied == (f'status context "{context}": not in contexts',)


@pytest.mark.parametrize(
    ("contexts", "problem"),
    [
        ("ci/*", "policy.status.contexts: expected a list of status context names or patterns"),
        (["ci/*", ""], "policy.status.contexts[1]: expected a status context name or pattern"),
        ([3], "policy.status.contexts[0]: expected a status context name or pattern"),
    ],
)
def test_a_malformed_contexts_is_a_located_fatal_problem(contexts: Any, problem: str) -> None:
    """Like the other keys: located, and the policy denies everything."""
    [found] = policy_problems({"status": {"allow": True, "contexts": contexts}})
    assert str(found).startswith(problem)
    assert found.fatal
    assert found.keys[:3] == ("policy", "status", "contexts")
    assert verdict({"status": {"allow": True, "contexts": contexts}}).status is None


# ------------------------------------------------------------------ commit


def test_a_diff_over_max_size_drops_the_whole_commit() -> None:
    """Bytes of the UTF-8 diff; upstream's reason names both numbers."""
    diff = diff_of("é.txt")
    size = len(diff.encode())
    assert size > len(diff)
    result = commit_verdict({"max_size": size - 1}, diff)
    assert result.commit is None
    assert result.denied == (f"commit: diff {size} bytes exceeds max_size {size - 1}",)
    assert commit_verdict({"max_size": size}, diff).commit is not None


def test_a_diff_with_too_many_hunks_is_dropped() -> None:
    """``max`` is the most hunks a suggestion may have."""
    result = commit_verdict({"max": 10}, diff_of("a.py", hunks=12))
    assert result.commit is None
    assert result.denied == ("commit: 12 hunks exceeds max 10",)
    assert commit_verdict({"max": 12}, diff_of("a.py", hunks=12)).commit is not None


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        (".github/", ".github/workflows/ci.yml"),
        (".github/workflows/", ".github/workflows/ci.yml"),
        ("/.github/", ".github/workflows/ci.yml"),
        ("*.pem", "deploy/keys/server.pem"),
        ("**/*.pem", "server.pem"),
        ("secrets/*", "secrets/prod/db.yml"),
        ("Makefile", "tools/Makefile"),
        ("src/*/config.py", "src/app/config.py"),
        ("*/workflows/", ".github/workflows/ci.yml"),
    ],
)
def test_a_diff_touching_a_blocked_path_is_dropped(pattern: str, path: str) -> None:
    """Folders (ending in /) block everything under them; globs match path or basename."""
    result = commit_verdict({"blocked_paths": [pattern]}, diff_of("README.md", path))
    assert result.commit is None
    assert result.denied == (f'commit: touches blocked path "{path}"',)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        (".github/", "docs/.github/notes.md"),
        (".github/", ".githubx/file"),
        ("*.pem", "server.pem.txt"),
        (".GitHub/", ".github/workflows/ci.yml"),
        ("secrets/", "src/secrets.py"),
    ],
)
def test_paths_outside_the_blocked_ones_pass(pattern: str, path: str) -> None:
    """Folder entries are anchored at the root, and matching is case-sensitive."""
    assert commit_verdict({"blocked_paths": [pattern]}, diff_of(path)).commit is not None


@pytest.mark.parametrize(
    "sneaky",
    [
        "./.github/workflows/ci.yml",
        "src/../.github/workflows/ci.yml",
        "x/./../.github//workflows/ci.yml",
        "../.github/workflows/ci.yml",
        "/.github/workflows/ci.yml",
        ".github\\workflows\\ci.yml",
    ],
)
def test_path_tricks_do_not_sneak_past_the_blocklist(sneaky: str) -> None:
    """Paths are normalised before matching: ``.``, ``..``, doubled and back slashes."""
    diff = f"--- {sneaky}\n+++ {sneaky}\n@@ -1 +1 @@\n-a\n+b\n"
    result = commit_verdict({"blocked_paths": [".github/"]}, diff)
    assert result.commit is None
    assert result.denied == ('commit: touches blocked path ".github/workflows/ci.yml"',)


def test_a_rename_out_of_a_blocked_folder_is_dropped() -> None:
    """Old names count as much as new ones."""
    diff = (
        "diff --git a/.github/workflows/ci.yml b/ci.yml\n"
        "similarity index 100%\nrename from .github/workflows/ci.yml\nrename to ci.yml\n"
    )
    result = commit_verdict({"blocked_paths": [".github/"]}, diff)
    assert result.denied == ('commit: touches blocked path ".github/workflows/ci.yml"',)


def test_a_path_hidden_by_invisible_characters_is_caught() -> None:
    """With strip_hidden, the cleaned diff's paths are checked as well as the raw ones."""
    diff = diff_of(".git\u200bhub/workflows/ci.yml")
    policy = {"commit": {"allow": True, "blocked_paths": [".github/"]}, "strip_hidden": True}
    result = verdict(policy, {"commit": {"diff": diff}})
    assert result.commit is None
    assert result.denied == ('commit: touches blocked path ".github/workflows/ci.yml"',)


def test_a_diff_without_paths_is_dropped_when_paths_are_blocked() -> None:
    """If the paths cannot be told, a blocklist cannot be checked: the commit goes."""
    result = commit_verdict({"blocked_paths": ["secrets/"]}, "just some text, not a diff")
    assert result.commit is None
    assert result.denied == (
        "commit: cannot tell which files the diff changes, and blocked_paths is set",
    )
    assert commit_verdict({}, "just some text, not a diff").commit is not None


def test_the_diff_keeps_html_comments_but_loses_invisible_characters() -> None:
    """Only strip_hidden applies to code, and without HTML-comment stripping."""
    diff = diff_of("page.html").replace("+b", "+<!-- keep -->\u200b\x1b[31m")
    policy = {"commit": {"allow": True}, "strip_hidden": True, "neutralize_mentions": True}
    result = verdict(policy, {"commit": {"diff": diff, "message": "ping @bob"}})
    assert result.commit is not None
    assert "+<!-- keep -->\n" in result.commit.diff
    assert result.commit.message == "ping `@bob`"
    assert result.allowed == (
        "commit diff: hidden text removed (1 invisible character, 1 escape sequence)",
        "commit message: 1 mention neutralized",
        "commit",
    )


# ------------------------------------------------------------------ top-level switches


def test_dry_run_is_carried_and_recorded() -> None:
    """The engine decides and records everything but writes nothing."""
    result = verdict({"dry_run": True})
    assert result.dry_run
    assert result.allowed[0] == "policy: dry run; nothing is written"
    assert result.comment == "looks good"
    assert not verdict({"comment": {"allow": True}}).dry_run


def test_switches_are_off_by_default() -> None:
    """A policy without the switches leaves text as the worker wrote it."""
    body = "@bob fixes #1 <!-- x --> https://evil.example/\u200b"
    assert verdict({"comment": {"allow": True}}, {"comment": {"body": body}}).comment == body


def test_each_text_change_is_recorded_per_field() -> None:
    """Comment, status description and commit message each get their own notes."""
    policy = {
        "neutralize_mentions": True,
        "neutralize_references": True,
        "strip_hidden": True,
        "allowed_domains": ["github.com"],
    }
    answer = {
        "comment": {
            "body": "@a @b fixes #1 <!-- x -->\u200b\u200c\u200d see https://evil.example/"
        },
        "status": {"state": "success", "description": "closes #2"},
    }
    result = verdict(policy, answer)
    assert result.comment == "`@a` `@b` `fixes #1`  see (redacted)"
    assert result.status == Status(state="success", description="`closes #2`")
    assert result.allowed == (
        "comment: hidden text removed (1 HTML comment, 3 invisible characters)",
        "comment: 1 link redacted (evil.example)",
        "comment: 2 mentions neutralized",
        "comment: 1 closing reference neutralized",
        "comment",
        "status description: 1 closing reference neutralized",
        "status: success",
    )


def test_a_hand_built_result_without_metadata_records_nothing_for_it() -> None:
    """Empty metadata is not an action: no decision either way."""
    policy = {"metadata": {"allow": False}}
    result = apply_policy(parse_policy(policy), TaskResult(labels=Labels(add=("a",))), worker="w")
    assert result.metadata == {}
    assert result.denied == ()


# ---------------------------------------------------------------- whole-valued floats


def test_a_whole_valued_float_is_a_whole_number_as_upstream_read_it() -> None:
    """``max_length: 500.0`` was 500 to the Go program; here too, so the policy holds."""
    policy = parse_policy(
        {"comment": {"allow": True, "max_length": 20.0, "max_per_hour": 3.0},
         "labels": {"allow": True, "max": 1.0}, "commit": {"allow": True, "max_size": 10.0}}
    )  # fmt: skip
    assert policy.kind is PolicyKind.RULES
    assert (policy.comment.max_length, policy.comment.max_per_hour) == (20, 3)
    assert type(policy.comment.max_length) is int
    assert (policy.labels.max_changes, policy.commit.max_size) == (1, 10)
    verdict = apply_policy(policy, parse_result({"comment": {"body": "y" * 100}}), worker="w")
    assert verdict.comment is not None
    assert len(verdict.comment) <= 20


@pytest.mark.parametrize("value", [500.5, 0.0, -2.0, "500"])
def test_a_fraction_or_no_count_is_still_refused_at_its_place(value: object) -> None:
    [problem] = policy_problems({"comment": {"allow": True, "max_length": value}})
    assert problem.path == "policy.comment.max_length" and problem.fatal
    assert problem.message.startswith("expected a whole number above 0, got")
