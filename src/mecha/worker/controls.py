"""What bounds when and how much a worker runs, as its file says: ``rate_limit``,
``trust``, ``flow`` and ``budget`` (docs/flow.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mecha.budget import DEFAULT_PER_TASK, Budget
from mecha.duration import parse_duration
from mecha.worker.section import (
    DurationText,
    Section,
    TextList,
    Whole,
    checked_duration,
    checked_template,
)

#: the longest flow.debounce: a task never waits longer than this for its key to go quiet
MAX_DEBOUNCE = 3600


class RateLimit(Section):
    """How fast tasks may be sent to one worker: a token bucket."""

    per_second: float = Field(2.0, ge=0, description="tasks per second on average; 0 = no limit")
    burst: Whole = Field(5, ge=1, description="tasks that may go at once after a quiet spell")


class Trust(Section):
    """Who may start this worker (``mecha.worker.trust``)."""

    min: Literal["anyone", "contributor", "member", "owner"] = Field(
        "member", description="who may run a command: member = OWNER, MEMBER, COLLABORATOR"
    )
    forks: bool = Field(True, description="false: pull requests from forks run no on: rule")
    bots: TextList = Field(
        default_factory=list, description="bots (exact logins) that may start this worker"
    )


class Flow(Section):
    """Per-key flow control: one task at a time per key; newer events may replace older."""

    key: str = Field(
        min_length=1,
        description='a template over the event\'s attributes, e.g. "{{.repo}}#{{.number}}"',
    )
    debounce: DurationText = Field(
        "0", description="wait until the key has been quiet this long, e.g. 30s (0 = no wait)"
    )
    supersede: bool = Field(
        False,
        description="a newer event replaces the waiting task and drops the running one's answer",
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return checked_template(value)

    @field_validator("debounce")
    @classmethod
    def _debounce(cls, value: str) -> str:
        checked_duration(value, most=MAX_DEBOUNCE, example="30s")
        return value

    @property
    def debounce_seconds(self) -> float:
        """The quiet time in seconds (0 = none)."""
        return parse_duration(self.debounce)


class BudgetSection(Section):
    """What the worker may use (``mecha.budget``): tokens a day, tasks an hour."""

    tokens_per_day: Whole = Field(
        0,
        ge=0,
        description="tokens over the last 24 hours, reserved before each send (0 = no limit)",
    )
    tasks_per_hour: Whole = Field(0, ge=0, description="sends over the last hour (0 = no limit)")
    per_task: Whole | None = Field(
        None, ge=1,
        description=f"tokens reserved for a task whose use cannot be estimated (a managed or "
        f"unmanaged worker; default: config.yml's, else {DEFAULT_PER_TASK})",
    )  # fmt: skip
    budget_wait: DurationText | None = Field(
        None, description="how long a task over budget waits before it fails, e.g. 1h (0: fails "
        "at once; default: config.yml's, else 24h)",
    )  # fmt: skip

    @field_validator("budget_wait")
    @classmethod
    def _wait(cls, value: str | None) -> str | None:
        if value is not None:
            checked_duration(value, example="1h, or 0")
        return value

    def value(self) -> Budget:
        """The section as ``mecha.budget`` reads it."""
        wait = parse_duration(self.budget_wait) if self.budget_wait is not None else None
        return Budget(
            tokens_per_day=self.tokens_per_day, tasks_per_hour=self.tasks_per_hour,
            per_task=self.per_task, budget_wait=wait,
        )  # fmt: skip
