"""Budgets: how many tokens and tasks a worker (or all of them) may use, and the rules (pure).

::

    budget:
      tokens_per_day: 200000   # tokens over the last 24 hours (0 or absent: no limit)
      tasks_per_hour: 30       # sends over the last hour
      per_task: 50000          # the reservation of a task whose use cannot be estimated
      budget_wait: 24h         # how long a task over budget waits before it fails

A worker file's ``budget:`` caps that worker; config.yml's caps all workers together
(scope ``GLOBAL``). Both hold at once.

- **Sliding windows** over a ledger of reservations (the store's ``budget_ledger``): tokens
  over the last 24 hours, tasks over the last hour, never a clock day or hour. A fixed
  window lets a whole day's budget go at 23:59 and another at 00:00; a sliding one never
  lets more than the limit go in any 24 hours, and says exactly when use leaves it.
- **Reserving.** Before a send, its attempt reserves an estimate (``Reservation``): the
  prompt's tokens (``prompt_tokens``) plus the model's most output (an adapter's
  ``max_tokens``), or ``per_task`` for a worker whose use cannot be known beforehand (a
  managed CLI, an unmanaged endpoint). Each send also counts one task. ``judge`` decides.
- **Settling.** The answer's usage (``usage_of``) replaces the estimate; an answer without
  one keeps the estimate as its cost; a send that never reached the worker costs nothing.
- **Never stuck.** A budget with nothing in flight and something left lets one task go even
  if its estimate is more than what is left: the window may then end over its limit by
  that one task, and nothing more goes until enough of it has left the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DAY = 86_400.0
HOUR = 3_600.0
#: the scope of config.yml's budget: every worker together
GLOBAL = ""
#: the reservation of a task whose use cannot be estimated (``per_task``'s default): about
#: one agentic CLI run on a pull request (Claude Code's system prompt and tools are ~20k
#: tokens before the diff is read). Too little lets tasks in flight together overspend
#: before they settle; too much only makes the next task wait until this one settles
DEFAULT_PER_TASK = 50_000
#: how long a task over budget waits (``budget_wait``'s default): the longest window. By
#: then everything counted when it began waiting has left the window, so a task still
#: refused is refused by newer use and would wait behind it for ever
DEFAULT_BUDGET_WAIT = DAY
#: seconds a reservation waits for its claim: one older whose task is still pending was
#: made by a node that stopped between the two, and is no longer in flight
CLAIM_WITHIN = 60.0
TOKENS = "tokens_per_day"
TASKS = "tasks_per_hour"
#: each window's length
WINDOWS = {TOKENS: DAY, TASKS: HOUR}
#: bytes of UTF-8 per token when a prompt's tokens are estimated (an over-estimate for
#: English and code, which BPE tokenizers pack at ~4 characters a token)
BYTES_PER_TOKEN = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """A ``budget:`` section as written (a worker's or config.yml's)."""

    tokens_per_day: int = 0
    tasks_per_hour: int = 0
    #: None: not written (the global one's, else ``DEFAULT_PER_TASK``)
    per_task: int | None = None
    #: seconds; None: not written (the global one's, else ``DEFAULT_BUDGET_WAIT``)
    budget_wait: float | None = None

    @property
    def limited(self) -> bool:
        """Whether it limits anything."""
        return bool(self.tokens_per_day or self.tasks_per_hour)

    def limit(self, scope: str) -> BudgetLimit:
        """Its limits, for the worker ``scope`` (or ``GLOBAL``)."""
        return BudgetLimit(
            scope=scope, tokens_per_day=self.tokens_per_day, tasks_per_hour=self.tasks_per_hour
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetLimit:
    """The limits of one budget: a worker's (``scope`` = its name) or all workers'."""

    scope: str
    #: 0: no limit
    tokens_per_day: int = 0
    tasks_per_hour: int = 0

    def get(self, kind: str) -> int:
        """The limit of ``kind`` (TOKENS or TASKS)."""
        return self.tokens_per_day if kind == TOKENS else self.tasks_per_hour


def scope_name(scope: str) -> str:
    """How a budget is named to people."""
    return "the global budget (config.yml)" if scope == GLOBAL else f"worker {scope}'s budget"


@dataclass(frozen=True, kw_only=True, slots=True)
class Reservation:
    """What a task's next attempt reserves before it is claimed and sent."""

    task_id: str
    worker: str
    #: the estimated tokens
    tokens: int
    #: the budgets it must fit: the worker's own, the global one, or both
    limits: tuple[BudgetLimit, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Settlement:
    """How one reserved attempt ended: what it cost."""

    #: the reservation (``Verdict.ticket``)
    ticket: str
    task_id: str
    #: the tokens its answer reported; None keeps the reservation as its cost
    tokens: int | None = None
    #: False: it never reached the worker (claim lost, refused before work): it costs
    #: nothing, not even a task
    sent: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Totals:
    """One budget's use, as the store counts it at a reservation."""

    #: tokens over the last day: open reservations at their estimate, settled ones at use
    tokens: int = 0
    #: sends over the last hour
    tasks: int = 0
    #: open reservations whose attempt is still on its way (reserved, claimed, being sent)
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Spent:
    """One ledger row inside a window: when it was reserved, what it costs, in flight."""

    at: float
    tokens: int
    live: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """What a reservation came to: granted, or which budget refused it and until when."""

    granted: bool
    #: granted: the reservation's id, to settle it by
    ticket: str = ""
    #: not granted, and by no budget: the task is not there to reserve for (not pending,
    #: or another node reserved its attempt a moment ago and is claiming it)
    taken: bool = False
    scope: str = ""
    #: TOKENS or TASKS
    kind: str = ""
    #: what the window holds (reservations included), the limit, what the task asked for
    used: int = 0
    limit: int = 0
    asked: int = 0
    in_flight: int = 0
    #: when enough leaves the window for the task to fit (0: granted)
    frees_at: float = 0.0
    #: since when the task waits on a budget (its first refusal); and whether this
    #: refusal starts a wait (none before, or on another budget): a new timeline entry
    waiting_since: float = 0.0
    new_wait: bool = False

    def reason(self) -> str:
        """The refusal in words, for the timeline and the task's error."""
        unit = ("token" if self.kind == TOKENS else "task") + ("" if self.used == 1 else "s")
        window = "24 hours" if self.kind == TOKENS else "hour"
        asked = f"; this task needs {self.asked}" if self.kind == TOKENS else ""
        flight = f", {self.in_flight} in flight" if self.in_flight and self.kind == TOKENS else ""
        return (
            f"over {scope_name(self.scope)}: {self.kind} {self.limit}, {self.used} {unit} used "
            f"in the last {window}{flight}{asked}"
        )


def prompt_tokens(prompt: str) -> int:
    """An estimate of ``prompt``'s tokens, on the high side (no tokenizer is at hand)."""
    size = len(prompt.encode("utf-8", "replace"))
    return -(-size // BYTES_PER_TOKEN)


def refusal(limit: BudgetLimit, totals: Totals, tokens: int) -> str:
    """Which of ``limit``'s windows refuses an attempt of ``tokens``: TOKENS, TASKS or ""."""
    if limit.tasks_per_hour and totals.tasks + 1 > limit.tasks_per_hour:
        return TASKS
    cap = limit.tokens_per_day
    if cap and totals.tokens + tokens > cap and not (totals.in_flight == 0 and totals.tokens < cap):
        return TOKENS
    return ""


def frees_at(kind: str, limit: int, rows: Sequence[Spent], *, tokens: int) -> float:
    """When enough of ``rows`` (the window's, oldest first) has left it for an attempt of
    ``tokens`` to fit ``limit`` of ``kind`` (``refusal``'s rules); 0 if the window is empty."""
    if not rows:
        return 0.0
    span = WINDOWS[kind]
    if kind == TASKS:
        leave = max(1, len(rows) - limit + 1)
        return rows[min(leave, len(rows)) - 1].at + span
    left = sum(row.tokens for row in rows)
    flying = sum(row.live for row in rows)
    for row in rows:
        left -= row.tokens
        flying -= row.live
        if left + tokens <= limit or (flying == 0 and left < limit):
            return row.at + span
    return rows[-1].at + span


def judge(
    reservation: Reservation, totals: Mapping[str, Totals], rows: Mapping[str, Sequence[Spent]]
) -> Verdict:
    """Granted, or the first of the reservation's budgets that refuses it, with when it frees.

    ``totals`` holds each scope's use; ``rows`` (read only for a refusing scope, see
    ``refused_scope``) that scope's rows in the refusing window, oldest first."""
    for limit in reservation.limits:
        use = totals[limit.scope]
        kind = refusal(limit, use, reservation.tokens)
        if not kind:
            continue
        cap = limit.get(kind)
        found = rows.get(limit.scope, ())
        return Verdict(
            granted=False, scope=limit.scope, kind=kind, limit=cap,
            used=use.tokens if kind == TOKENS else use.tasks,
            asked=reservation.tokens if kind == TOKENS else 1, in_flight=use.in_flight,
            frees_at=frees_at(kind, cap, found, tokens=reservation.tokens),
        )  # fmt: skip
    return Verdict(granted=True)


def refused_scope(reservation: Reservation, totals: Mapping[str, Totals]) -> tuple[str, str]:
    """(scope, kind) of the first budget that refuses, or ("", "") if all fit: the store
    reads that scope's rows of that window, then calls ``judge``."""
    for limit in reservation.limits:
        kind = refusal(limit, totals[limit.scope], reservation.tokens)
        if kind:
            return limit.scope, kind
    return "", ""


# --- usage in a result's metadata -------------------------------------------------------


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


def _summed(data: Mapping[str, Any]) -> int | None:
    """The tokens one mapping reports: a total if it gives one, else the sum of its parts."""
    total = _count(data.get("total_tokens"))
    if total is not None:
        return total
    parts = [
        _count(data.get(key))
        for key in (
            "input_tokens", "output_tokens", "prompt_tokens", "completion_tokens",
            "cache_creation_input_tokens", "cache_read_input_tokens", "prompt_eval_count",
            "eval_count",
        )
    ]  # fmt: skip
    found = [part for part in parts if part is not None]
    return sum(found) if found else None


def usage_of(metadata: Mapping[str, Any]) -> int | None:
    """The tokens a result's ``metadata`` reports, or None if it reports none.

    Read: Mecha's own ``input_tokens``/``output_tokens``; OpenAI's ``prompt_tokens``,
    ``completion_tokens`` and ``total_tokens``; Anthropic's ``input_tokens``,
    ``output_tokens`` and cache tokens; Ollama's ``prompt_eval_count``/``eval_count`` — at
    the top level or under ``usage``. A count of 0 is taken as not reported (no model
    call reads no tokens; our adapters write 0 when the API gave no usage).
    """
    nested = metadata.get("usage")
    found = _summed(nested) if isinstance(nested, Mapping) else None
    if found is None:
        found = _summed(metadata)
    return found or None


# --- what people see --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetUse:
    """One scope's use as ``mecha budget`` and the API show it (``Store.budget_use``)."""

    scope: str
    #: tokens over the last day: settled (at their use) and still reserved (at estimate)
    tokens_used: int = 0
    tokens_reserved: int = 0
    #: sends over the last hour: settled, and reserved (not settled yet)
    tasks_used: int = 0
    tasks_reserved: int = 0
    in_flight: int = 0
    #: tasks waiting on this budget now, by the window that holds them back
    tokens_waiting: int = 0
    tasks_waiting: int = 0
    #: the oldest reservation in each window (0: none): when use next drops
    day_oldest: float = 0.0
    hour_oldest: float = 0.0


def shown_limits(
    budgets: Mapping[str, Budget | None], everyone: Budget | None
) -> dict[str, BudgetLimit]:
    """The budgets to show, by scope, with their limits: each worker with a budget of its
    own; with a global budget, every worker (all reserve) and the global one, last."""
    limited = everyone is not None and everyone.limited
    shown = {
        name: budget.limit(name) if budget is not None else BudgetLimit(scope=name)
        for name, budget in sorted(budgets.items())
        if limited or (budget is not None and budget.limited)
    }
    if everyone is not None and limited:
        shown[GLOBAL] = everyone.limit(GLOBAL)
    return shown


def use_lines(
    limits: Mapping[str, BudgetLimit], uses: Sequence[BudgetUse], *, now: float
) -> list[dict[str, Any]]:
    """One line per scope and window: use, reservations, limit, what is left, the window."""
    lines = []
    for use in uses:
        limit = limits.get(use.scope, BudgetLimit(scope=use.scope))
        for kind, used, reserved, oldest, waiting in (
            (TOKENS, use.tokens_used, use.tokens_reserved, use.day_oldest, use.tokens_waiting),
            (TASKS, use.tasks_used, use.tasks_reserved, use.hour_oldest, use.tasks_waiting),
        ):
            cap = limit.get(kind) or None
            lines.append({
                "worker": use.scope or None, "window": kind,
                "window_start": now - WINDOWS[kind], "window_end": now, "used": used,
                "reserved": reserved, "limit": cap,
                "left": max(0, cap - used - reserved) if cap is not None else None,
                "in_flight": use.in_flight, "waiting": waiting,
                "next_frees_at": oldest + WINDOWS[kind] if oldest else None,
            })  # fmt: skip
    return lines
