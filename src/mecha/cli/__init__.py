"""The ``mecha`` command: a root group that imports each command group only when used.

Every failure ends here as one line (or one block of file problems) on stderr, passed
through the redactor, and a non-zero exit; never a traceback unless ``MECHA_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from mecha import __version__

#: command name → "module:attribute", imported on first use
COMMANDS = {
    "worker": "mecha.cli.worker:worker",
    "config": "mecha.cli.config_cmd:config",
    "doctor": "mecha.cli.doctor:doctor",
    "serve": "mecha.cli.serve:serve",
    "event": "mecha.cli.event:event",
    "task": "mecha.cli.task:task",
    "version": "mecha.cli:version",
    "demo": "mecha.cli.demo:demo",
    "write": "mecha.cli.write:write",
    "image": "mecha.cli.image:image",
    "prune": "mecha.cli.prune:prune",
    "db": "mecha.cli.db:db",
    "node": "mecha.cli.node:node",
    "budget": "mecha.cli.budget:budget",
}
HELP = {
    "worker": "Add, remove, list, check, start and stop workers.",
    "config": "Show registered workers as resolved YAML (secrets masked).",
    "doctor": "Check Mecha's folder, database, secrets, Docker and workers.",
    "serve": "Receive webhooks, store them durably, and match them to workers.",
    "event": "List and show stored events; send a signed test event.",
    "task": "List, show, retry and cancel tasks.",
    "version": "Print the version.",
    "demo": "Run one sample pull request through the whole pipeline on the embedded model.",
    "write": "Try failed or dead-lettered writes to GitHub / GitLab again.",
    "image": "Build the managed workers' images from the project's Dockerfiles.",
    "prune": "Remove finished events, tasks, timeline entries and writes past their retention.",
    "db": "The database: bring its schema up to date (mecha db migrate).",
    "node": "List the mecha serve nodes sharing the database (alive, stale, stopped).",
    "budget": "Show each budget's use: tokens over 24 hours, tasks over the last hour.",
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported only when they run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from HELP, so ``mecha --help`` imports none of them."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, HELP[name]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", message="mecha %(version)s")
def cli() -> None:
    """Mecha: forge events in, LLM tasks out, results written back under a policy.

    State lives in ~/.mecha (MECHA_HOME moves it; MECHA_DB_PATH moves the database;
    MECHA_DATABASE_URL=postgresql://... uses PostgreSQL instead).
    MECHA_LOG_LEVEL=DEBUG shows debug log lines; MECHA_LOG_FORMAT=json writes them as
    JSON; MECHA_DEBUG=1 shows tracebacks.
    """


@click.command()
def version() -> None:
    """Print the version."""
    click.echo(f"mecha {__version__}")


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status."""
    from mecha.cli.context import AppContext

    app = AppContext()
    try:
        app.start_logging(sys.stderr)  # a bad MECHA_LOG_FORMAT is reported as an error
        code = cli.main(args=argv, prog_name="mecha", standalone_mode=False, obj=app)
        if isinstance(code, int) and code:  # click returns an Exit's code in this mode
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError):
            from mecha.cli.did_you_mean import with_suggestion

            exc = with_suggestion(exc, sys.argv[1:] if argv is None else argv)
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:
        sys.exit(_report(exc, app))
    finally:
        app.close()
    sys.exit(0)


def _report(exc: BaseException, app: Any) -> int:
    from mecha.errors import MechaError

    if isinstance(exc, MechaError):
        click.echo(f"error: {app.redact(str(exc))}", err=True)
        return exc.exit_code
    if os.environ.get("MECHA_DEBUG") == "1":
        raise exc
    text = app.redact(f"{type(exc).__name__}: {exc}")
    click.echo(
        f"internal error: {text}\n  hint: this is a bug in mecha; run again with "
        "MECHA_DEBUG=1 for the traceback and report it",
        err=True,
    )
    return 70
