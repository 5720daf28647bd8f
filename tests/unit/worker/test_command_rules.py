"""``command:`` rules and ``trust:`` in a worker file: defaults, and the mistakes named."""

from __future__ import annotations

from mecha.worker.parser import parse_worker
from mecha.worker.spec import WorkerSpec
from mecha.yaml_doc import load_yaml
from tests.unit.worker.test_worker import MANAGED, only


def spec(text: str) -> WorkerSpec:
    return parse_worker(load_yaml(text, file="w.yml"), environ={}).spec


def test_a_command_rule_takes_new_comments_by_default() -> None:
    github = spec(MANAGED + "events:\n  - {source: github, command: /review, prompt: p}\n")
    assert github.events[0].on == [
        "issue_comment.created", "pull_request_review_comment.created",
        "pull_request_review.submitted",
    ]  # fmt: skip
    gitlab = spec(MANAGED + "events:\n  - {source: gitlab, command: /review, prompt: p}\n")
    assert gitlab.events[0].on == ["note"]
    narrowed = spec(
        MANAGED + "events:\n  - {source: github, command: /fix, on: [issue_comment.created], "
        "prompt: p}\n"
    )
    assert narrowed.events[0].on == ["issue_comment.created"]


def test_trust_defaults_and_as_written() -> None:
    default = spec(MANAGED).trust
    assert (default.min, default.forks, default.bots) == ("member", True, [])
    written = spec(
        MANAGED + "trust:\n  min: contributor\n  forks: false\n  bots: ['renovate[bot]']\n"
    )
    assert (written.trust.min, written.trust.forks, written.trust.bots) == (
        "contributor", False, ["renovate[bot]"]
    )  # fmt: skip


def test_a_command_is_a_slash_and_a_word() -> None:
    found = only(MANAGED + "events:\n  - {source: github, command: review, prompt: p}\n")
    assert '"review" is not a command' in found and "command: /review" in found


def test_a_command_needs_a_forge() -> None:
    found = only(MANAGED + "events:\n  - {source: alerts, on: [x], command: /go, prompt: p}\n")
    assert "command: is for source: github or gitlab rules" in found


def test_trust_min_is_one_of_four() -> None:
    found = only(MANAGED + "trust:\n  min: everybody\n")
    assert found.startswith("w.yml:5:8: trust.min") and "member" in found


def test_a_gitlab_note_waits_for_its_authors_access_level_only_for_a_command_rule() -> None:
    from mecha.worker.matching import Candidate, needs_access

    def worker(rules: str, trust: str = "") -> Candidate:
        found = spec(MANAGED + "events:\n" + rules + trust)
        return Candidate(name="w", rules=found.events, trust=found.trust)

    command = worker("  - {source: gitlab, command: /review, prompt: p}\n")
    anyone = worker("  - {source: gitlab, command: /review, prompt: p}\n",
                    "trust:\n  min: anyone\n")  # fmt: skip
    plain = worker("  - {source: gitlab, on: [note], prompt: p}\n")
    note = {"source": "gitlab", "comment": "/review now", "action": "create"}

    def needs(candidate: Candidate, **attrs: object) -> bool:
        return needs_access([candidate], source="gitlab", type="note", data={**note, **attrs})

    assert needs(command)
    assert not needs(command, comment="LGTM")  # not the command: no trust question
    assert not needs(command, action="update")  # an edited note runs nothing
    assert not needs(command, author_access_level=30)  # asked already
    assert not needs(command, author_access_error="502")  # failed already: refused
    assert not needs(anyone) and not needs(plain)
    assert not needs_access([command], source="github", type="issue_comment.created", data=note)
