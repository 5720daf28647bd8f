"""`mecha prune`: finished work past its retention removed by hand (or counted: --dry-run)."""

from __future__ import annotations

import time

import click

from mecha.cli.context import AppContext, pass_app
from mecha.config.retention import DAY, RETENTION_KINDS, Retention, keep_seconds
from mecha.errors import UsageError

#: a progress line every this many batches
PROGRESS_EVERY = 10


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option(
    "--older-than", metavar="AGE",
    help="Remove finished work older than AGE (days, or 12h, 30d) instead of config.yml's "
    "retention: times.",
)  # fmt: skip
@click.option(
    "--batch", type=click.IntRange(1, 100_000), default=500, show_default=True,
    help="Rows removed per transaction.",
)  # fmt: skip
@pass_app
def prune(app: AppContext, dry_run: bool, older_than: str | None, batch: int) -> None:
    """Remove finished events, tasks, timeline entries and writes past their retention.

    The times are config.yml's retention: (30 days each unless set there). What is in use
    stays whatever its age: tasks not finished, writes not yet settled, events whose tasks
    stay. Safe while `mecha serve` runs: each batch is one short transaction, and serve
    gets its turn between batches.
    """
    from mecha.app.stores import exists, open_prune_store
    from mecha.engine.retention import BATCH_SECONDS, PAUSE, describe, space
    from mecha.store.pruning import PruneCounts

    retention = _retention(app, older_than)
    if not retention.active:
        app.echo("retention is off in config.yml: nothing is pruned "
                 "(mecha prune --older-than 30 prunes by hand)")  # fmt: skip
        return
    app.database()
    if not exists(app.settings):
        app.echo(f"nothing to prune: {app.no_database_yet()}")
        return
    store = open_prune_store(app.settings)
    try:
        before = retention.cutoffs(time.time())
        if dry_run:
            counted = store.count_prunable(before)
            app.echo(f"would remove {describe(counted)} ({_ages(retention)}); nothing removed")
            app.echo(space(store.disk_usage()))
            return
        total, batches = PruneCounts(), 0
        while True:
            began = time.monotonic()
            removed = store.prune(before, limit=batch, seconds=BATCH_SECONDS)
            if not removed.total:
                break
            total, batches = total + removed, batches + 1
            if batches % PROGRESS_EVERY == 0:
                app.echo(f"  {total.total:,} rows removed so far ({describe(total)})", err=True)
            time.sleep(max(PAUSE, 2 * (time.monotonic() - began)))  # a running serve's turn
        usage = store.reclaim() if total.total else store.disk_usage()
        app.echo(f"removed {describe(total)} ({_ages(retention)})")
        app.echo(space(usage))
    finally:
        store.close()


def _retention(app: AppContext, older_than: str | None) -> Retention:
    """``--older-than`` for every kind, else config.yml's ``retention:``."""
    if older_than is None:
        from mecha.config.settings import load_server_config

        return load_server_config(app.settings, app.environ).retention
    seconds, problem = keep_seconds(older_than)
    if problem or seconds is None:
        why = problem or "is off, which removes nothing"
        raise UsageError(f"--older-than {why}", hint="e.g. --older-than 30 (days) or 12h")
    return Retention(**dict.fromkeys(RETENTION_KINDS, seconds))


def _ages(retention: Retention) -> str:
    """``older than: events 30d, tasks 30d, timeline 7d, writes kept for ever``."""
    parts = []
    for kind in RETENTION_KINDS:
        kept = retention.kept(kind)
        parts.append(f"{kind} {_age(kept)}" if kept is not None else f"{kind} kept for ever")
    return "older than: " + ", ".join(parts)


def _age(seconds: float) -> str:
    from mecha.duration import format_duration

    days = seconds / DAY
    return f"{days:g}d" if days >= 1 and days == round(days, 2) else format_duration(seconds)
