"""The dispatcher's knobs: config.yml ``dispatch:`` (tests make them short)."""

from __future__ import annotations

from dataclasses import dataclass

from mecha.budget import Budget
from mecha.engine.budgets import DEFAULT_RECHECK
from mecha.engine.leases import DEFAULT_LEASE
from mecha.engine.pacing import RETRY_BASE, RETRY_CAP
from mecha.result_cap import DEFAULT_MAX_RESULT


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    """The dispatcher's knobs (config.yml ``dispatch:``; tests make them short)."""

    concurrency: int = 16
    retry_base: float = RETRY_BASE
    retry_cap: float = RETRY_CAP
    poll_interval: float = 1.0
    health_interval: float = 15.0
    drain_timeout: float = 600.0
    #: the most bytes of a task's result that are stored (config.yml ``max_result``)
    max_result: int = DEFAULT_MAX_RESULT
    #: seconds a claim holds without this node's heartbeat (renewed every lease / 3)
    lease: float = DEFAULT_LEASE
    #: one serve owns the database (SQLite's serve mark): every task found running at start
    #: is taken back, and no other node's leases are swept
    own_database: bool = False
    #: config.yml's ``budget:`` (all workers together; None: none), and how often a task
    #: over a budget whose tasks in flight may settle lower looks again (``engine.budgets``)
    budget: Budget | None = None
    budget_recheck: float = DEFAULT_RECHECK
