"""Incremental review in the engine: which workers want ``diff_since_last`` (matcher, pure),
what their prompts and decisions get (``plan``), and the pipeline reading each one's last
reviewed head from the store before the hydrator compares (on MemoryStore, a fake forge)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mecha.engine import matcher
from mecha.event import Event
from mecha.forges.incremental import NO_REVIEW
from mecha.store import Store, TaskUpdate
from mecha.task import Task, TaskState
from mecha.worker.matching import Outcome
from tests.unit.engine.fakes import (
    HEAD,
    Hydrator,
    definition,
    delivery,
    event,
    eventually,
    loaded,
    register,
)
from tests.unit.engine.rig import pipeline_alone
from tests.unit.engine.test_pipeline import Sinks

H1, H2 = "a1" * 20, "b2" * 20
SINCE = "Since {{.last_reviewed_sha}}:\n{{.diff_since_last}}"
JINJA = "{% if last_reviewed_sha %}{{ diff_since_last }}{% endif %}"


# --- matcher (pure) --------------------------------------------------------------------


def test_only_taking_workers_whose_rule_names_an_attribute_want_it() -> None:
    workers = [
        loaded(definition("go", prompt=SINCE)),
        loaded(definition("jinja", prompt=JINJA)),
        loaded(definition("guard", prompt="{{if .diff_since_last_fallback}}full{{end}}")),
        loaded(definition("plain", prompt="Review {{.diff}}")),
        loaded(definition("lookalike", prompt="{{.diff}} (not my_diff_since_lastx)")),
        loaded(definition("elsewhere", prompt=SINCE, on=["push"])),
    ]  # fmt: skip
    ev = event()
    assert matcher.wanting_since_last(workers, matcher.decisions(ev, workers)) == [
        "go", "jinja", "guard",
    ]  # fmt: skip


def test_the_rule_that_matched_is_the_one_that_counts() -> None:
    written = definition("two", prompt="plain {{.title}}")
    written["events"].append({"source": "github", "on": ["pull_request.synchronize"],
                              "prompt": SINCE})  # fmt: skip
    workers = [loaded(written)]
    opened = event()
    pushed = event("d-2", type="pull_request.synchronize")
    assert matcher.wanting_since_last(workers, matcher.decisions(opened, workers)) == []
    assert matcher.wanting_since_last(workers, matcher.decisions(pushed, workers)) == ["two"]


def test_plan_renders_each_worker_with_its_own_attributes_and_says_what_they_hold() -> None:
    workers = [loaded(definition("inc", prompt=SINCE)), loaded(definition("first", prompt=SINCE)),
               loaded(definition("plain"))]  # fmt: skip
    ev = event()
    since = {
        "inc": {"last_reviewed_sha": H1, "diff_since_last": "+new\n",
                "diff_since_last_fallback": ""},
        "first": {"last_reviewed_sha": "", "diff_since_last": "+all\n",
                  "diff_since_last_fallback": NO_REVIEW},
    }  # fmt: skip
    outcome = matcher.plan(ev, workers, matcher.decisions(ev, workers), None, since)
    prompts = {t.worker: t.prompt for t in outcome.tasks}
    assert prompts == {"inc": f"Since {H1}:\n+new\n", "first": "Since :\n+all\n",
                       "plain": "Review Fix the parser"}  # fmt: skip
    reasons = {d.worker: d.reason for d in outcome.decisions}
    assert reasons["inc"] == f"rule 1 matched; diff since last review: the changes since {H1[:12]}"
    assert reasons["first"] == (
        f"rule 1 matched; diff since last review: the full diff ({NO_REVIEW})"
    )
    assert reasons["plain"] == "rule 1 matched"


def test_without_a_forge_the_prompt_fails_naming_the_attribute_and_why() -> None:
    workers = [loaded(definition("inc", prompt=SINCE))]
    ev = event()
    outcome = matcher.plan(ev, workers, matcher.decisions(ev, workers), None)
    [decision] = outcome.decisions
    assert decision.outcome is Outcome.FAILED
    assert "uses .last_reviewed_sha, which this event lacks" in decision.reason
    assert "only when a token is set in secrets.yml" in decision.reason


# --- the pipeline: the store's last reviewed head, then the forge ---------------------


def complete(store: Store, task: Task) -> None:
    """The worker answered: the task ends completed (as the dispatcher would end it)."""
    for state, only in ((TaskState.RUNNING, TaskState.PENDING),
                        (TaskState.COMPLETED, TaskState.RUNNING)):  # fmt: skip
        [done] = store.update_tasks(
            [TaskUpdate(task_id=task.id, state=state, only_from=frozenset({only}))]
        )
        assert done is not None


def test_a_workers_second_task_on_a_pull_request_gets_the_changes_since_its_first(
    store: Store, user_home: Path
) -> None:
    register(store, definition("inc", prompt=SINCE, on=["pull_request.opened",
                                                        "pull_request.synchronize"]),
             definition("plain", prompt="{{.diff}}", on=["pull_request.opened",
                                                         "pull_request.synchronize"]))  # fmt: skip
    hydrator = Hydrator()
    hydrator.gate.set()
    sinks = Sinks()

    async def arrive(delivery_id: str, head: str, **attrs: Any) -> list[Task]:
        async with pipeline_alone(store, user_home, tasks=sinks.tasks, events=sinks.events,
                                  hydrator=hydrator) as pipeline:  # fmt: skip
            got = await pipeline.receive(delivery(delivery_id, type="pull_request.synchronize",
                                                  head_sha=head, **attrs))  # fmt: skip
            assert got is not None
            found: Event = got
            return await eventually(lambda: store.list_tasks(event_id=found.id), "matched")

    first = asyncio.run(arrive("d-1", H1))
    inc = next(t for t in first if t.worker == "inc")
    assert inc.prompt == "Since :\n--- a/x\n+++ b/x\n"  # nothing reviewed yet: the full diff
    for task in first:
        complete(store, task)
    second = asyncio.run(arrive("d-2", H2))
    assert next(t for t in second if t.worker == "inc").prompt == (
        f"Since {H1}:\nchanges since {H1}\n"
    )
    other = asyncio.run(arrive("d-3", HEAD, number=8))  # another pull request: nothing yet
    assert next(t for t in other if t.worker == "inc").prompt.startswith("Since :\n")
    # asked once per event, for inc alone (plain's prompt does not use it)
    assert [last for _, last in hydrator.compared] == ["", H1, ""]
