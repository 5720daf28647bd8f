"""`mecha budget`: what each budget has used over its sliding windows (``mecha.budget``)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.table import render_table

#: how a window is named in the table
WINDOWS = {"tokens_per_day": "tokens/24h", "tasks_per_hour": "tasks/1h"}


@click.command()
@click.argument("worker", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def budget(app: AppContext, worker: str | None, as_json: bool) -> None:
    """Each budget's use: tokens over the last 24 hours and tasks over the last hour.

    USED is what settled sends cost (the usage their answers reported, else what they
    reserved); RESERVED is what sends not settled yet hold; LEFT is the limit less both.
    WAITING counts tasks held back by the budget; FREES is when its oldest use leaves the
    window. Shown: workers with a budget: of their own, and, with a budget: in config.yml,
    every worker and "all workers" together. WORKER shows one worker's lines only.
    """
    from mecha.budget import shown_limits, use_lines
    from mecha.config.settings import load_server_config
    from mecha.errors import MechaError
    from mecha.event import timestamp
    from mecha.worker.files import from_record

    config = load_server_config(app.settings, app.environ)
    store = app.store()
    budgets = {}
    for record in store.list_workers():
        try:
            spec = from_record(
                record, environ=app.environ, home=app.user_home, secrets_file=app.secrets_file
            ).spec
        except MechaError as exc:
            app.warn(f"worker {record.name}'s budget cannot be read: {exc}")
            continue
        budgets[record.name] = spec.budget.value() if spec.budget is not None else None
    limits = shown_limits(budgets, config.budget)
    if worker is not None:
        if worker not in limits:
            store.get_worker(worker)  # WorkerNotFound if there is none
            raise MechaError(
                f'no budget applies to worker "{worker}"',
                hint="give it a budget: section in its worker file, or set budget: in "
                "config.yml for all workers",
            )
        limits = {worker: limits[worker]}
    now = time.time()
    lines = use_lines(limits, store.budget_use(list(limits), now=now), now=now)
    if as_json:
        for line in lines:
            for key in ("window_start", "window_end", "next_frees_at"):
                line[key] = timestamp(line[key]) if line[key] is not None else None
        app.echo(json.dumps(lines, indent=2))
        return
    if not lines:
        app.echo(
            "no budgets: add budget: {tokens_per_day: …, tasks_per_hour: …} to a worker file, "
            "or to config.yml for all workers"
        )
        return
    headers = ["BUDGET", "WINDOW", "USED", "RESERVED", "LIMIT", "LEFT", "IN FLIGHT", "WAITING",
               "FREES"]  # fmt: skip
    app.echo(render_table(headers, [_row(line, now) for line in lines]))


def _row(line: dict[str, Any], now: float) -> list[str]:
    from mecha.cli.display import age

    frees = line["next_frees_at"]
    return [
        line["worker"] or "(all workers)", WINDOWS[line["window"]], f"{line['used']:,}",
        f"{line['reserved']:,}", _count(line["limit"]), _count(line["left"]),
        str(line["in_flight"]), str(line["waiting"]),
        f"in {age(now, now=frees)}" if frees is not None else "-",
    ]  # fmt: skip


def _count(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"
