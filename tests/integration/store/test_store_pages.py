"""The dashboard's events page (``Store.event_page``), on every store: newest first with
each worker's decision, keyset paging through ties, every filter, and the search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mecha.event import Delivery, Event, EventState, received
from mecha.store import Arrival, EventOutcome, EventQuery, EventRow, TaskUpdate, WorkerOutcome
from mecha.task import NewTask, TaskState
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import AnyStore


def event(n: int, at: float, **fields: Any) -> Event:
    """Event ``n`` (delivery ``d-<n>``) arrived at ``at``; ``fields`` change the delivery."""
    values: dict[str, Any] = {
        "source": "github", "type": "pull_request.opened", "delivery_id": f"d-{n}",
        "actor": "mona", "subject": "octo/app",
        "attrs": {"number": n, "title": f"Change {n}", "draft": False, "body": "long text"},
        "raw": b'{"a": 1}', "headers": {"x-github-event": "pull_request"},
    }  # fmt: skip
    values.update(fields)
    return received(Delivery(**values), now=at)


def outcome(event: Event, taken: Sequence[str] = (), passed: Sequence[str] = ()) -> EventOutcome:
    """``taken`` workers matched it (a task each); ``passed`` did not."""
    decisions = [Decision(worker=w, outcome=Outcome.MATCHED, rule=0, reason="ok") for w in taken]
    decisions += [Decision(worker=w, outcome=Outcome.NOT_MATCHED, reason="no") for w in passed]
    return EventOutcome(
        event_id=event.id, state=EventState.MATCHED if taken else EventState.SKIPPED,
        decisions=decisions,
        tasks=[NewTask(worker=w, event_id=event.id, prompt=f"p-{w}") for w in taken],
    )  # fmt: skip


def put(store: AnyStore, *arrivals: tuple[Event, EventOutcome | None]) -> None:
    made = store.insert_arrivals([Arrival(event=e, outcome=o) for e, o in arrivals])
    assert None not in made


def ids(rows: Sequence[EventRow]) -> list[str]:
    return [row.event.id for row in rows]


def newest_first(events: Sequence[Event]) -> list[str]:
    return [e.id for e in sorted(events, key=lambda e: (e.created_at, e.id), reverse=True)]


def walk(store: AnyStore, limit: int, **query: Any) -> list[str]:
    """Every page of ``query``, ``limit`` rows each, following the cursor; the ids seen."""
    seen: list[str] = []
    before: tuple[float, str] | None = None
    for _ in range(1000):
        page = store.event_page(EventQuery(limit=limit, before=before, **query))
        assert len(page) <= limit
        seen += ids(page)
        if len(page) < limit:
            return seen
        before = (page[-1].event.created_at, page[-1].event.id)
    raise AssertionError("the pages never ended")


def test_a_page_is_newest_first_with_each_workers_decision_and_its_tasks_state(
    store: AnyStore,
) -> None:
    first, second, third = event(1, 100.0), event(2, 200.0), event(3, 300.0)
    put(store, (first, outcome(first, ["build", "review"], ["lint"])),
        (second, outcome(second, [], ["lint"])), (third, None))  # fmt: skip
    page = store.event_page(EventQuery())
    assert ids(page) == [third.id, second.id, first.id]
    shown = page[2].event
    assert (shown.source, shown.type, shown.delivery_id, shown.actor, shown.subject) == (
        "github", "pull_request.opened", "d-1", "mona", "octo/app"
    )  # fmt: skip
    assert (shown.state, shown.created_at, shown.updated_at) == (EventState.MATCHED, 100.0, 100.0)
    # neither raw body nor headers; of the attributes, the number and title only
    assert (shown.raw, shown.headers, shown.attrs) == (b"", {}, {"number": 1, "title": "Change 1"})
    tasks = {t.worker: t.id for t in store.list_tasks(event_id=first.id)}
    assert page[2].workers == (
        WorkerOutcome(worker="build", outcome="matched", task_id=tasks["build"],
                      task_state=TaskState.PENDING),
        WorkerOutcome(worker="lint", outcome="not_matched"),
        WorkerOutcome(worker="review", outcome="matched", task_id=tasks["review"],
                      task_state=TaskState.PENDING),
    )  # fmt: skip
    assert page[1].workers == (WorkerOutcome(worker="lint", outcome="not_matched"),)
    assert page[0].workers == () and page[0].event.state is EventState.RECEIVED
    start = TaskUpdate(task_id=tasks["build"], state=TaskState.RUNNING,
                       only_from=frozenset({TaskState.PENDING}), start_attempt=True)  # fmt: skip
    assert store.update_tasks([start]) != [None]
    [row] = store.event_page(EventQuery(limit=1, before=(200.0, second.id)))
    assert [w.task_state for w in row.workers] == [TaskState.RUNNING, None, TaskState.PENDING]
    assert row.event.state is EventState.DISPATCHED


def test_an_event_without_number_or_title_shows_no_attributes(store: AnyStore) -> None:
    bare = event(1, 10.0, attrs={"number": "seven", "title": 5, "ref": "main"})
    put(store, (bare, None))
    [row] = store.event_page(EventQuery())
    assert row.event.attrs == {}


def test_paging_walks_every_event_once_when_times_tie(store: AnyStore) -> None:
    # 23 events, five at each time: a page ends inside a tie again and again
    events = [event(n, 1000.0 + n // 5) for n in range(23)]
    put(store, *[(e, None) for e in events])
    everything = newest_first(events)
    assert ids(store.event_page(EventQuery(limit=100))) == everything
    for limit in (1, 3, 4, 5, 7, 23):
        assert walk(store, limit) == everything
    last = store.event_page(EventQuery(limit=100))[-1].event
    assert store.event_page(EventQuery(before=(last.created_at, last.id))) == []
    assert store.event_page(EventQuery(limit=0)) == []


def test_each_filter_and_their_combination(store: AnyStore) -> None:
    made = [
        event(1, 10.0),
        event(2, 20.0, source="gitlab", subject="group/lib"),
        event(3, 30.0, subject="octo/other"),
        event(4, 40.0),
        event(5, 50.0, source="gitlab"),
        event(6, 60.0),
    ]
    decided = [outcome(made[0], ["review"]), outcome(made[1], ["review", "lint"]),
               outcome(made[2], ["lint"], ["review"]), None, outcome(made[4], [], ["review"]),
               outcome(made[5], ["review"])]  # fmt: skip
    put(store, *zip(made, decided, strict=True))
    e1, e2, e3, e4, e5, e6 = (e.id for e in made)

    def found(**query: Any) -> list[str]:
        return ids(store.event_page(EventQuery(**query)))

    assert found(state=EventState.MATCHED) == [e6, e3, e2, e1]
    assert found(state=EventState.SKIPPED) == [e5]
    assert found(state=EventState.RECEIVED) == [e4]
    assert found(source="gitlab") == [e5, e2]
    assert found(source="git") == []  # exact, not a prefix
    assert found(repo="octo/app") == [e6, e5, e4, e1]
    assert found(repo="octo/other") == [e3]
    assert found(repo="octo") == []
    # the worker's events: those it decided to take (a task), not those it passed over
    assert found(worker="review") == [e6, e2, e1]
    assert found(worker="lint") == [e3, e2]
    assert found(worker="nobody") == []
    assert found(since=20.0) == [e6, e5, e4, e3, e2]  # since is included
    assert found(until=40.0) == [e3, e2, e1]  # until is not
    assert found(since=20.0, until=50.0) == [e4, e3, e2]
    assert found(worker="review", since=20.0, until=60.0) == [e2]
    assert found(worker="review", repo="octo/app") == [e6, e1]
    assert found(worker="review", source="gitlab", state=EventState.MATCHED) == [e2]
    assert found(source="gitlab", repo="octo/app") == [e5]
    assert found(state=EventState.MATCHED, repo="octo/app", until=60.0) == [e1]
    assert found(worker="review", limit=2) == [e6, e2]
    assert found(worker="review", before=(20.0, e2)) == [e1]
    assert walk(store, 1, worker="review") == [e6, e2, e1]
    assert walk(store, 2, state=EventState.MATCHED, since=20.0) == [e6, e3, e2]


def test_paging_a_workers_events_walks_each_once_when_times_tie(store: AnyStore) -> None:
    events = [event(n, 500.0 + n // 4) for n in range(17)]
    put(store, *[(e, outcome(e, ["review"] if n % 3 else [], ["lint"]))
                 for n, e in enumerate(events)])  # fmt: skip
    taken = newest_first([e for n, e in enumerate(events) if n % 3])
    for limit in (1, 2, 4, 5):
        assert walk(store, limit, worker="review") == taken
        assert walk(store, limit, worker="review", repo="octo/app") == taken
    assert walk(store, 3, worker="lint") == []


def test_the_search_is_case_insensitive_text_in_the_shown_fields(store: AnyStore) -> None:
    made = [
        event(1, 1.0, type="issue_comment.created", actor="Hubot",
              attrs={"title": "Fix the LOGIN page"}),
        event(2, 2.0, subject="Octo/Widgets", delivery_id="GUID-abc-42"),
        event(3, 3.0, attrs={"title": "100% done_now"}),
        event(4, 4.0, attrs={"title": "100x doneXnow"}),
        event(5, 5.0, attrs={"title": "it's'; DROP TABLE events; --"}),
    ]  # fmt: skip
    put(store, *[(e, None) for e in made])
    e1, e2, e3, e4, e5 = (e.id for e in made)

    def found(text: str) -> list[str]:
        return ids(store.event_page(EventQuery(search=text)))

    assert found("ISSUE_COMMENT") == [e1]  # the type
    assert found("hubot") == [e1]  # the actor
    assert found("login") == [e1]  # the title
    assert found("widgets") == [e2]  # the subject
    assert found("guid-ABC") == [e2]  # the delivery id
    assert found(e3[:8].upper()) == [e3]  # the start of the id, whatever its case
    # % and _ are themselves, not wildcards
    assert found("100%") == [e3]
    assert found("e_n") == [e3]
    assert found("%") == [e3]
    assert found("100_") == []
    assert found("\\") == []
    # text that would be SQL is looked for as text, and breaks nothing
    assert found("'; DROP TABLE events; --") == [e5]
    assert found("' OR '1'='1") == []
    assert found('" OR 1=1 --') == []
    assert len(store.event_page(EventQuery(limit=10))) == 5
    assert found("nothing like it") == []
    assert ids(store.event_page(EventQuery(search="done", before=(4.0, e4)))) == [e3]


def test_the_id_is_searched_from_its_start_only(store: AnyStore) -> None:
    made = [event(n, float(n)) for n in range(3)]
    put(store, *[(e, None) for e in made])
    for e in made:
        assert ids(store.event_page(EventQuery(search=e.id[:6]))) == [e.id]
        inside = e.id[9:17]
        if not any(inside in other.id for other in made if other is not e):
            assert ids(store.event_page(EventQuery(search=inside))) == []


def test_a_title_learned_later_is_shown_and_searched(store: AnyStore) -> None:
    first = event(1, 1.0, attrs={"number": 3, "title": "As delivered"})
    put(store, (first, None))
    assert store.event_page(EventQuery(search="hydrated")) == []
    assert ids(store.event_page(EventQuery(search="as delivered"))) == [first.id]
    hydrated = outcome(first, ["review"])
    store.record_outcomes([EventOutcome(
        event_id=first.id, state=hydrated.state, decisions=hydrated.decisions,
        tasks=hydrated.tasks, attrs={"number": 3, "title": "Hydrated title"},
    )])  # fmt: skip
    [row] = store.event_page(EventQuery(search="HYDRATED"))
    assert row.event.attrs == {"number": 3, "title": "Hydrated title"}
    assert row.event.updated_at > row.event.created_at
    assert store.event_page(EventQuery(search="as delivered")) == []  # the old title is gone
    assert ids(store.event_page(EventQuery(search="MONA"))) == [first.id]  # the rest is kept
    # the worker's events are paged by the event's arrival, not the decision's time
    assert ids(store.event_page(EventQuery(worker="review", until=2.0))) == [first.id]
