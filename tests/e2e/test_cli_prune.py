"""`mecha prune` on a real database: what it would remove, what it removed, its progress."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mecha.event import EventState
from mecha.store import EventOutcome
from mecha.store.sqlite.store import open_sqlite
from mecha.task import NewTask
from mecha.worker.matching import Decision, Outcome
from tests.e2e.serving import mecha_cli
from tests.integration.store.stores import arrive, delivery

DAY = 86_400


def home_with(tmp_path: Path, *, skipped: int, pending: int, config: str = "") -> Path:
    """A home whose database holds ``skipped`` events without tasks and ``pending`` events
    whose task waits, every row made 40 days ago."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.yml").write_text(config)
    store = open_sqlite(home / "mecha.db")
    arrive(
        store,
        [delivery(f"skipped-{n}") for n in range(skipped)],
        lambda e: EventOutcome(event_id=e.id, state=EventState.SKIPPED),
    )
    arrive(
        store,
        [delivery(f"pending-{n}") for n in range(pending)],
        lambda e: EventOutcome(
            event_id=e.id, state=EventState.MATCHED,
            decisions=[Decision(worker="w", outcome=Outcome.MATCHED, rule=0, reason="ok")],
            tasks=[NewTask(worker="w", event_id=e.id, prompt="p")],
        ),
    )  # fmt: skip
    store.close()
    with sqlite3.connect(home / "mecha.db") as conn:
        conn.execute("UPDATE events SET created_at = created_at - ?", (40 * DAY,))
        conn.execute("UPDATE tasks SET created_at = created_at - ?", (40 * DAY,))
        conn.execute("UPDATE timeline SET at = at - ?", (40 * DAY,))
    return home


def count(home: Path, table: str) -> int:
    with sqlite3.connect(home / "mecha.db") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def test_dry_run_counts_and_removes_nothing(tmp_path: Path) -> None:
    home = home_with(tmp_path, skipped=3, pending=1)
    shown = mecha_cli(home, "prune", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "would remove 3 events, 6 timeline entries (older than: events 30d, tasks 30d, "
        "timeline 30d, writes 30d); nothing removed"
    )
    assert lines[1].startswith("database ") and "write-ahead log" in lines[1]
    assert count(home, "events") == 4


def test_prune_removes_old_finished_rows_and_keeps_a_waiting_task(tmp_path: Path) -> None:
    home = home_with(tmp_path, skipped=3, pending=1, config="retention:\n  timeline: off\n")
    done = mecha_cli(home, "prune")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "removed 3 events (older than: events 30d, tasks 30d, timeline kept for ever, writes 30d)"
    )
    assert "write-ahead log 0 B" in done.stdout
    assert (count(home, "events"), count(home, "tasks")) == (1, 1)  # the pending one's
    assert count(home, "timeline") == 8  # kept for ever
    again = mecha_cli(home, "prune")
    assert again.stdout.startswith("removed nothing")


def test_a_long_run_shows_its_progress(tmp_path: Path) -> None:
    home = home_with(tmp_path, skipped=300, pending=0)
    done = mecha_cli(home, "prune", "--batch", "20", "--older-than", "7")
    assert done.returncode == 0, done.stderr
    progress = done.stderr.splitlines()  # a line every 10 batches of 20 rows at most
    assert len(progress) >= 4 and all(" rows removed so far (" in line for line in progress)
    so_far = [int(line.split()[0].replace(",", "")) for line in progress]
    assert so_far == sorted(so_far) and so_far[0] <= 200 and so_far[-1] < 900
    assert done.stdout.splitlines()[0] == (
        "removed 300 events, 600 timeline entries (older than: events 7d, tasks 7d, "
        "timeline 7d, writes 7d)"
    )
    assert count(home, "events") == 0


def test_retention_off_and_a_bad_age_are_explained(tmp_path: Path) -> None:
    home = home_with(tmp_path, skipped=1, pending=0, config="retention: off\n")
    off = mecha_cli(home, "prune")
    assert off.returncode == 0
    assert off.stdout.startswith("retention is off in config.yml: nothing is pruned")
    bad = mecha_cli(home, "prune", "--older-than", "soon")
    assert bad.returncode != 0
    assert bad.stderr == (
        'error: --older-than is "soon", not a number of days\n'
        "  hint: e.g. --older-than 30 (days) or 12h\n"
    )
    wrong = home / "config.yml"
    wrong.write_text("retention:\n  events: -1\n")
    refused = mecha_cli(home, "prune")
    assert refused.returncode != 0
    assert "config.yml:2:11: retention.events is -1; it must be 0 or more" in refused.stderr
    assert count(home, "events") == 1


def test_no_database_yet_is_said_and_none_is_made(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    home.mkdir(mode=0o700)
    done = mecha_cli(home, "prune")
    assert done.returncode == 0
    assert done.stdout.startswith("nothing to prune: there is no database at ")
    assert not (home / "mecha.db").exists()
