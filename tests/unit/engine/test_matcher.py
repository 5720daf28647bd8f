"""engine.matcher, the one place matching happens (pure): decisions, taken, plan, render."""

from __future__ import annotations

from dataclasses import replace

from mecha.engine import matcher
from mecha.engine.registry import LoadedWorker
from mecha.event import Event, EventState, template_data
from mecha.forges.hydration import Hydration
from mecha.store import EventOutcome
from mecha.task import NewTask
from mecha.worker.matching import Decision, Outcome
from tests.unit.engine.fakes import broken, definition, event, loaded


def planned(
    ev: Event, workers: list[LoadedWorker], hydrated: Hydration | None = None
) -> EventOutcome:
    """What matching records for ``ev``: every worker decides, then the plan."""
    return matcher.plan(ev, workers, matcher.decisions(ev, workers), hydrated)


def test_every_matching_worker_gets_its_own_task() -> None:
    """Fan-out: three workers take the event, three tasks, each with its own prompt."""
    workers = [
        loaded(definition("alpha")),
        loaded(definition("bravo", prompt="Summarise {{.title}} by {{.actor}}")),
        loaded(definition("charlie", prompt="Label it")),
    ]
    ev = event()
    outcome = planned(ev, workers)
    assert outcome.state is EventState.MATCHED
    assert [(t.worker, t.prompt) for t in outcome.tasks] == [
        ("alpha", "Review Fix the parser"),
        ("bravo", "Summarise Fix the parser by mona"),
        ("charlie", "Label it"),
    ]
    assert {t.event_id for t in outcome.tasks} == {ev.id}
    assert {t.dedup_key for t in outcome.tasks} == {
        f"{ev.id}:{n}" for n in ("alpha", "bravo", "charlie")
    }
    assert outcome.error == ""
    assert outcome.attrs is None  # not hydrated: the stored attributes stay


def test_only_the_workers_whose_rules_match_get_a_task() -> None:
    workers = [
        loaded(definition("opened")),
        loaded(definition("pushes", on=["push"])),
        loaded(definition("gitlab", source="gitlab", on=["merge_request.open"])),
    ]
    outcome = planned(event(), workers)
    assert [t.worker for t in outcome.tasks] == ["opened"]
    assert [(d.worker, d.outcome) for d in outcome.decisions] == [
        ("gitlab", Outcome.NOT_MATCHED),
        ("opened", Outcome.MATCHED),
        ("pushes", Outcome.NOT_MATCHED),
    ]


def test_decisions_are_sorted_by_worker_broken_ones_included() -> None:
    """Whatever order the workers come in, and however each decided, the record is by name."""
    workers = [
        loaded(definition("zulu")),
        broken("mike", "variable TOKEN is not set"),
        loaded(definition("alpha", on=["push"])),
        loaded(definition("kilo", prompt="{{.nothing}}")),
    ]
    outcome = planned(event(), workers)
    assert [d.worker for d in outcome.decisions] == ["alpha", "kilo", "mike", "zulu"]
    assert [d.outcome for d in outcome.decisions] == [
        Outcome.NOT_MATCHED,
        Outcome.FAILED,
        Outcome.UNUSABLE,
        Outcome.MATCHED,
    ]


def test_a_broken_worker_is_recorded_unusable_and_never_decides() -> None:
    workers = [broken("gone", "its file is gone"), loaded(definition("fine"))]
    ev = event()
    decided = matcher.decisions(ev, workers)
    assert [d.worker for d in decided] == ["fine"]
    outcome = matcher.plan(ev, workers, decided, None)
    assert outcome.decisions[1] == Decision(
        worker="gone", outcome=Outcome.UNUSABLE, reason="its file is gone"
    )
    assert [t.worker for t in outcome.tasks] == ["fine"]


def test_an_event_no_worker_takes_is_skipped() -> None:
    workers = [loaded(definition("pushes", on=["push"])), broken("gone")]
    outcome = planned(event(), workers)
    assert outcome.state is EventState.SKIPPED
    assert outcome.tasks == []
    assert outcome.error == ""


def test_a_held_rule_makes_no_task_and_the_event_is_skipped() -> None:
    held = definition("careful")
    held["events"][0]["auto"] = False
    outcome = planned(event(), [loaded(held)])
    assert [d.outcome for d in outcome.decisions] == [Outcome.HELD]
    assert (outcome.state, outcome.tasks) == (EventState.SKIPPED, [])


def test_a_prompt_missing_a_key_fails_that_worker_alone() -> None:
    workers = [
        loaded(definition("needs", prompt="Look at {{.milestone}}")),
        loaded(definition("fine")),
    ]
    outcome = planned(event(), workers)
    assert outcome.state is EventState.MATCHED
    assert [t.worker for t in outcome.tasks] == ["fine"]
    [failed] = [d for d in outcome.decisions if d.worker == "needs"]
    assert failed.outcome is Outcome.FAILED
    assert failed.reason == "prompt of rule 1 uses .milestone, which this event lacks"
    assert outcome.error == ""  # the event did not fail: another worker took it


def test_an_event_whose_every_taking_prompt_failed_has_failed_saying_why() -> None:
    workers = [
        loaded(definition("one", prompt="{{.milestone}}")),
        loaded(definition("two", prompt="{{.assignee}}")),
    ]
    outcome = planned(event(), workers)
    assert outcome.state is EventState.FAILED
    assert outcome.tasks == []
    assert outcome.error == (
        "one: prompt of rule 1 uses .milestone, which this event lacks; "
        "two: prompt of rule 1 uses .assignee, which this event lacks"
    )


def test_a_missing_diff_says_where_the_diff_comes_from() -> None:
    """The hint names the forge and secrets.yml; a key other than diff/file_list has none."""
    worker = loaded(definition("differ", prompt="Review:\n{{.diff}}"))
    [decision] = matcher.decisions(event(), [worker])
    made = matcher.render(event(), worker, decision, template_data(event()))
    assert isinstance(made, Decision)
    assert made.outcome is Outcome.FAILED
    assert made.reason.startswith("prompt of rule 1 uses .diff, which this event lacks (")
    assert "fetched from github only when a token is set in secrets.yml" in made.reason
    assert "mecha event show" in made.reason
    files = loaded(definition("files", prompt="{{.file_list}}"))
    made = matcher.render(event(), files, decision, template_data(event()))
    assert isinstance(made, Decision) and "token is set in secrets.yml" in made.reason
    plain = loaded(definition("plain", prompt="{{.milestone}}"))
    made = matcher.render(event(), plain, decision, template_data(event()))
    assert isinstance(made, Decision) and "secrets.yml" not in made.reason


def test_the_second_rule_that_matches_renders_its_own_prompt() -> None:
    written = definition("two-rules", on=["push"], prompt="first")
    written["events"].append({"source": "github", "on": ["pull_request.*"], "prompt": "second"})
    outcome = planned(event(), [loaded(written)])
    assert [t.prompt for t in outcome.tasks] == ["second"]
    assert outcome.decisions[0].rule == 1


def test_a_rendered_task_carries_the_events_context() -> None:
    worker = loaded(definition("ctx"))
    ev = event(diff="--- a\n+++ b\n", ref="main")
    [decision] = matcher.decisions(ev, [worker])
    made = matcher.render(ev, worker, decision, template_data(ev))
    assert isinstance(made, NewTask)
    assert made.context == {
        "source": "github", "actor": "mona", "subject": "octo/hello", "repo_owner": "octo",
        "repo_name": "hello", "number": 7, "ref": "main", "diff": "--- a\n+++ b\n",
        "head_sha": ev.attrs["head_sha"], "base_sha": ev.attrs["base_sha"],
    }  # fmt: skip


def test_taken_says_whether_some_worker_takes_the_event() -> None:
    ev = event()
    assert matcher.taken(matcher.decisions(ev, [loaded(definition("a"))]))
    assert not matcher.taken(matcher.decisions(ev, [loaded(definition("p", on=["push"]))]))
    assert not matcher.taken(matcher.decisions(ev, [broken("b")]))
    assert not matcher.taken([])


def test_a_hydrated_event_keeps_its_new_attributes_and_the_fetch_error() -> None:
    """The outcome carries the attributes to store and a failed fetch, without failing."""
    worker = loaded(definition("w", prompt="{{if .diff}}{{.diff}}{{else}}no diff{{end}}"))
    ev = event()
    fetched = Hydration(attrs={"diff_error": "403 from GitHub"}, error="diff: 403 from GitHub")
    hydrated_event = replace(ev, attrs={**ev.attrs, **fetched.attrs})
    outcome = planned(hydrated_event, [worker], fetched)
    assert outcome.state is EventState.MATCHED
    assert [t.prompt for t in outcome.tasks] == ["no diff"]
    assert outcome.error == "diff: 403 from GitHub"
    assert outcome.attrs is not None and outcome.attrs["diff_error"] == "403 from GitHub"
