"""How stored things read in a terminal: ages, one-line excerpts, and the timeline."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from mecha.cli.table import render_table
from mecha.event import timestamp
from mecha.store import WriteRecord
from mecha.timeline import TimelineEntry

#: how many characters of an id the tables show
ID_WIDTH = 12
#: what to do when no worker is registered yet
NEXT_WORKER = (
    "next: mecha worker add examples/workers/local-review.yml  "
    "(the embedded model, nothing else to run; or your own file: check it first with "
    "mecha worker validate FILE)"
)


def age(since: float, *, now: float | None = None) -> str:
    """How long ago ``since`` (unix seconds) was: 42s, 5m, 3h, 2d."""
    seconds = max(0.0, (time.time() if now is None else now) - since)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def excerpt(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def short(value: Any, width: int = 100) -> str:
    """The first line of ``value`` (text, or JSON), cut to ``width``, saying what was left out."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    first = text.splitlines()[0] if text else ""
    more = len(text) - len(first)
    if len(first) > width:
        more += len(first) - width
        first = first[:width]
    return f"{first} … ({more} more characters)" if more > 0 else first


def timeline_table(entries: Sequence[TimelineEntry], *, indent: str = "  ") -> str:
    """The steps in order: TIME STEP WORKER TASK DETAIL, one line each."""
    rows = [
        [
            timestamp(e.at),
            e.step,
            e.worker or "-",
            e.task_id[:ID_WIDTH] or "-",
            " ".join(e.detail.split()),
        ]
        for e in entries
    ]
    table = render_table(["TIME", "STEP", "WORKER", "TASK", "DETAIL"], rows)
    return "\n".join(indent + line for line in table.splitlines())


def writes_table(records: Sequence[WriteRecord], *, indent: str = "  ") -> str:
    """Each write: WORKER ACTION TARGET STATE TRIES DETAIL, one line each."""
    rows = [
        [
            r.write.worker,
            r.write.action,
            r.write.target,
            r.state.value,
            str(r.attempts),
            excerpt(r.detail, 90),
        ]
        for r in records
    ]
    table = render_table(["WORKER", "ACTION", "TARGET", "STATE", "TRIES", "DETAIL"], rows)
    return "\n".join(indent + line for line in table.splitlines())
