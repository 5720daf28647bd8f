"""The budget ledger on every store: reservations checked and written at once, sliding
windows, settling, waits, and no overspend when many reserve together."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mecha.budget import (
    CLAIM_WITHIN,
    DAY,
    GLOBAL,
    HOUR,
    TASKS,
    TOKENS,
    BudgetLimit,
    Reservation,
    Settlement,
    Verdict,
)
from mecha.store import TaskUpdate
from mecha.task import NewTask, Task, TaskState
from tests.integration.store.stores import STORES, AnyStore, rows

PENDING = frozenset({TaskState.PENDING})
T0 = 1_800_000_000.0


def tasks(store: AnyStore, count: int, worker: str = "w") -> list[Task]:
    return store.create_tasks(
        [NewTask(worker=worker, event_id="", prompt=f"p{n}") for n in range(count)]
    )


def ask(task: Task, *limits: BudgetLimit, tokens: int = 100) -> Reservation:
    return Reservation(task_id=task.id, worker=task.worker, tokens=tokens, limits=limits)


def reserve(store: AnyStore, reservation: Reservation, *, now: float) -> Verdict:
    """One reservation, alone in its call."""
    [verdict] = store.reserve_budget([reservation], now=now)
    return verdict


def granted(store: AnyStore, reservation: Reservation, now: float) -> str:
    """The ticket of a reservation that must be granted."""
    verdict = reserve(store, reservation, now=now)
    assert verdict.granted and verdict.ticket, verdict
    return verdict.ticket


def done(ticket: str, task: Task, tokens: int | None = None, *, sent: bool = True) -> Settlement:
    return Settlement(ticket=ticket, task_id=task.id, tokens=tokens, sent=sent)


def claim(store: AnyStore, task: Task) -> None:
    [done] = store.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.RUNNING,
                                            only_from=PENDING, start_attempt=True)])  # fmt: skip
    assert done is not None


def test_tasks_per_hour_refuses_the_next_task_until_the_oldest_leaves_the_hour(
    store: AnyStore,
) -> None:
    limit = BudgetLimit(scope="w", tasks_per_hour=2)
    one, two, three = tasks(store, 3)
    assert reserve(store, ask(one, limit), now=T0).granted
    assert reserve(store, ask(two, limit), now=T0 + 10).granted
    refused = reserve(store, ask(three, limit), now=T0 + 20)
    assert not refused.granted
    assert (refused.scope, refused.kind, refused.used, refused.limit) == ("w", TASKS, 2, 2)
    assert refused.frees_at == T0 + HOUR  # the first send leaves the hour then
    assert (refused.waiting_since, refused.new_wait) == (T0 + 20, True)
    assert "worker w's budget: tasks_per_hour 2, 2 tasks used in the last hour" in refused.reason()
    # asked again: the same wait, not a new one; still refused a moment before the hour
    again = reserve(store, ask(three, limit), now=T0 + HOUR - 1)
    assert (again.granted, again.waiting_since, again.new_wait) == (False, T0 + 20, False)
    assert rows(store, "budget_ledger") == 2 and rows(store, "budget_waits") == 1
    # once the first send is over an hour old, the third goes, and its wait ends
    assert reserve(store, ask(three, limit), now=T0 + HOUR + 1).granted
    assert rows(store, "budget_waits") == 0 and rows(store, "budget_ledger") == 3


def test_tokens_per_day_counts_reservations_until_they_settle_at_their_use(
    store: AnyStore,
) -> None:
    limit = BudgetLimit(scope="w", tokens_per_day=1000)
    one, two, three = tasks(store, 3)
    first = granted(store, ask(one, limit, tokens=600), T0)
    claim(store, one)
    refused = reserve(store, ask(two, limit, tokens=600), now=T0 + 1)
    assert (refused.granted, refused.kind, refused.used, refused.asked) == (False, TOKENS, 600, 600)
    assert refused.in_flight == 1  # the first is on its way: it may settle lower
    # it used 150: the reservation is settled at that, and 600 more fit
    store.settle_budget([done(first, one, 150)])
    second = granted(store, ask(two, limit, tokens=600), T0 + 2)
    claim(store, two)
    # no use reported: the reservation is the cost
    store.settle_budget([done(second, two)])
    [use] = store.budget_use(["w"], now=T0 + 3)
    assert (use.tokens_used, use.tokens_reserved, use.tasks_used, use.in_flight) == (750, 0, 2, 0)
    refused = reserve(store, ask(three, limit, tokens=300), now=T0 + 4)
    # 750 + 300 is over 1000, but nothing is in flight and 250 are left: it goes (never stuck)
    assert refused.granted
    [use] = store.budget_use(["w"], now=T0 + 5)
    assert (use.tokens_used, use.tokens_reserved, use.in_flight) == (750, 300, 1)


def test_reservations_in_one_call_each_see_the_ones_before(store: AnyStore) -> None:
    limit = BudgetLimit(scope="w", tasks_per_hour=2)
    made = tasks(store, 3)
    verdicts = store.reserve_budget([ask(t, limit) for t in [*made, made[0]]], now=T0)
    assert [(v.granted, v.taken) for v in verdicts] == [
        (True, False), (True, False), (False, False), (False, True)
    ]  # fmt: skip
    assert store.reserve_budget([], now=T0) == []


def test_a_small_budget_lets_one_task_go_when_nothing_is_in_flight(store: AnyStore) -> None:
    limit = BudgetLimit(scope="w", tokens_per_day=100)
    one, two = tasks(store, 2)
    first = granted(store, ask(one, limit, tokens=5000), T0)
    refused = reserve(store, ask(two, limit, tokens=5000), now=T0 + 1)
    assert (refused.granted, refused.in_flight) == (False, 1)
    # it settles over the limit: now nothing is left, so nothing goes until it leaves the day
    store.settle_budget([done(first, one, 4000)])
    later = reserve(store, ask(two, limit, tokens=5000), now=T0 + 2)
    assert (later.granted, later.in_flight, later.used, later.frees_at) == (
        False,
        0,
        4000,
        T0 + DAY,
    )
    assert reserve(store, ask(two, limit, tokens=5000), now=T0 + DAY + 1).granted


def test_an_attempt_never_sent_costs_nothing(store: AnyStore) -> None:
    limit = BudgetLimit(scope="w", tasks_per_hour=1, tokens_per_day=1000)
    one, two = tasks(store, 2)
    first = granted(store, ask(one, limit), T0)
    assert not reserve(store, ask(two, limit), now=T0 + 1).granted
    store.settle_budget([done(first, one, sent=False)])
    assert rows(store, "budget_ledger") == 0
    second = granted(store, ask(two, limit), T0 + 2)
    # settling an attempt twice, or one never reserved, changes nothing
    store.settle_budget([done(second, two, 7)] * 2)
    store.settle_budget([done("no-such-ticket", one, 7)])
    [use] = store.budget_use(["w"], now=T0 + 3)
    assert (use.tokens_used, use.tasks_used) == (7, 1)


def test_a_reservation_left_open_by_a_node_that_died_is_not_in_flight(store: AnyStore) -> None:
    limit = BudgetLimit(scope="w", tokens_per_day=1000)
    [task] = tasks(store, 1)
    [other] = tasks(store, 1)
    assert reserve(store, ask(task, limit, tokens=1000), now=T0).granted
    claim(store, task)  # attempt 1 runs...
    assert reserve(store, ask(other, limit, tokens=10), now=T0 + 1).in_flight == 1
    [use] = store.budget_use(["w"], now=T0 + 1)
    assert (use.tokens_reserved, use.in_flight) == (1000, 1)
    # ...and its node died: the task is taken back, pending again after one attempt
    assert store.take_back(now=time.time() + 3600) == [task.id]
    refused = reserve(store, ask(other, limit, tokens=10), now=T0 + 2)
    assert (refused.granted, refused.in_flight, refused.used) == (False, 0, 1000)
    assert refused.frees_at == T0 + DAY  # the dead reservation keeps its cost for the day
    [use] = store.budget_use(["w"], now=T0 + 3)
    assert (use.tokens_reserved, use.in_flight) == (1000, 0)


def test_a_task_is_reserved_for_once_per_attempt(store: AnyStore) -> None:
    """Two nodes may both find a task due: the second's reservation is *taken* (the first is
    claiming it), and so is one for a task no longer pending. A reservation whose claim
    never came (its node stopped between the two) is not in flight after CLAIM_WITHIN, and
    the attempt may be reserved again."""
    limit = BudgetLimit(scope="w", tasks_per_hour=10)
    task, other = tasks(store, 2)
    first = reserve(store, ask(task, limit), now=T0)
    again = reserve(store, ask(task, limit), now=T0 + 1)
    assert (first.granted, again.granted, again.taken) == (True, False, True)
    assert store.budget_use(["w"], now=T0 + 1)[0].in_flight == 1
    later = T0 + CLAIM_WITHIN + 1
    assert store.budget_use(["w"], now=later)[0].in_flight == 0
    assert granted(store, ask(task, limit), later)
    [use] = store.budget_use(["w"], now=later)  # the abandoned one still costs its task
    assert (use.tasks_reserved, use.in_flight) == (2, 1)
    claim(store, other)
    gone = reserve(store, ask(other, limit), now=later)
    assert (gone.granted, gone.taken) == (False, True)
    assert rows(store, "budget_ledger") == 2 and rows(store, "budget_waits") == 0


def test_the_global_budget_caps_every_worker_together(store: AnyStore) -> None:
    everyone = BudgetLimit(scope=GLOBAL, tasks_per_hour=3)
    own = BudgetLimit(scope="a", tasks_per_hour=10)
    made = tasks(store, 2, "a") + tasks(store, 2, "b")
    verdicts = [
        reserve(store, ask(t, *((own, everyone) if t.worker == "a" else (everyone,))),
                             now=T0 + n)
        for n, t in enumerate(made)
    ]  # fmt: skip
    assert [v.granted for v in verdicts] == [True, True, True, False]
    assert (verdicts[3].scope, verdicts[3].kind) == (GLOBAL, TASKS)
    assert "the global budget (config.yml)" in verdicts[3].reason()
    uses = {u.scope: u for u in store.budget_use(["a", "b", GLOBAL], now=T0 + 5)}
    assert (uses["a"].tasks_reserved, uses["b"].tasks_reserved) == (2, 1)
    assert (uses[GLOBAL].tasks_reserved, uses[GLOBAL].tasks_waiting) == (3, 1)
    assert (uses["a"].tasks_waiting, uses[GLOBAL].tokens_waiting) == (0, 0)
    assert uses[GLOBAL].hour_oldest == T0


def test_waits_are_counted_while_their_task_is_pending(store: AnyStore) -> None:
    limit = BudgetLimit(scope="w", tasks_per_hour=1)
    one, two, three = tasks(store, 3)
    reserve(store, ask(one, limit), now=T0)
    reserve(store, ask(two, limit), now=T0)
    reserve(store, ask(three, limit), now=T0)
    assert store.budget_use(["w"], now=T0)[0].tasks_waiting == 2
    cancel = TaskUpdate(task_id=two.id, state=TaskState.CANCELLED, only_from=PENDING)
    store.update_tasks([cancel])
    assert store.budget_use(["w"], now=T0)[0].tasks_waiting == 1
    # a wait that ends with the task failing (budget_wait) is settled as never sent
    store.settle_budget([done("", three, sent=False)])
    assert rows(store, "budget_waits") == 1  # the cancelled task's, no longer counted
    assert store.budget_use(["w"], now=T0)[0].tasks_waiting == 0


def test_rows_that_left_the_day_are_dropped(store: AnyStore) -> None:
    limit = BudgetLimit(scope="w", tokens_per_day=10_000)
    one, two = tasks(store, 2)
    store.settle_budget([done(granted(store, ask(one, limit), T0), one, 50)])
    assert reserve(store, ask(two, limit), now=T0 + DAY + 1).granted
    assert rows(store, "budget_ledger") == 1
    [use] = store.budget_use(["w"], now=T0 + DAY + 2)
    assert (use.tokens_used, use.tokens_reserved, use.day_oldest) == (0, 100, T0 + DAY + 1)


# --- many at once ---------------------------------------------------------------------


def _race(reserve_on: list[AnyStore], made: list[Task], limit: BudgetLimit, tokens: int) -> int:
    """Every task reserves at once, from threads spread over ``reserve_on``; how many went."""
    start = threading.Barrier(len(made))
    now = time.time()

    def one(n: int) -> bool:
        start.wait()
        store = reserve_on[n % len(reserve_on)]
        return reserve(store, ask(made[n], limit, tokens=tokens), now=now).granted

    with ThreadPoolExecutor(len(made)) as pool:
        return sum(pool.map(one, range(len(made))))


@pytest.mark.parametrize("limit,tokens", [
    (BudgetLimit(scope="w", tasks_per_hour=10), 100),
    (BudgetLimit(scope="w", tokens_per_day=1000), 100),
    (BudgetLimit(scope=GLOBAL, tokens_per_day=1000, tasks_per_hour=50), 100),
])  # fmt: skip
def test_fifty_reserving_at_once_against_a_budget_for_ten_get_ten(
    store: AnyStore, limit: BudgetLimit, tokens: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each store and a second one on the same database (another node): no overspend."""
    made = tasks(store, 50)
    [kind] = [k for k in STORES.values() if isinstance(store, k.cls)]
    second = store
    if kind.server:
        second = kind.open(request.getfixturevalue("pg_url"))
    elif kind.cls.__name__ == "SqliteStore":
        second = kind.open(tmp_path)  # type: ignore[arg-type]
    try:
        assert _race([store, second], made, limit, tokens) == 10
    finally:
        if second is not store:
            second.close()
    assert rows(store, "budget_ledger") == 10 and rows(store, "budget_waits") == 40
