"""``mecha config [NAME]``: registered workers as resolved YAML, secrets masked;
``mecha config --server [--json]``: the server's settings (``mecha.cli.server_settings``).

The output is itself a valid worker file, defaults written out. Keys appear as the
``${VAR}`` they were written as, or ``[REDACTED]`` if written literally. It is written
for Mecha's YAML 1.2 reading (``mecha.yaml_doc``): only true/false are booleans, so the
key ``on`` and texts like ``yes`` need no quotes (PyYAML's YAML 1.1 dumper adds them).
"""

from __future__ import annotations

import re
from typing import Any

import click

from mecha.cli.context import AppContext, pass_app
from mecha.errors import MechaError
from mecha.redaction import REDACTED
from mecha.store import WorkerRecord
from mecha.template.interpolation import has_reference
from mecha.worker.files import from_record
from mecha.worker.parser import SECRET_FIELDS


@click.command()
@click.argument("name", required=False)
@click.option(
    "--server", is_flag=True,
    help="Show the server's settings instead: each value and where it came from (a flag of "
    "serve, a MECHA_* variable, config.yml:LINE, or the default).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="With --server: print JSON.")
@pass_app
def config(app: AppContext, name: str | None, server: bool, as_json: bool) -> None:
    """Show worker NAME (or every worker) as resolved YAML, secrets masked; with --server,
    the server's settings and where each came from."""
    if server or as_json:
        _server(app, name, server=server, as_json=as_json)
        return
    store = app.store()
    records = [store.get_worker(name)] if name else store.list_workers()
    if not records:
        from mecha.cli.display import NEXT_WORKER

        app.echo(f"no workers registered\n{NEXT_WORKER}")
        return
    app.secrets()  # so secret values are masked if they appear anywhere
    docs, failed = [], 0
    for record in records:
        try:
            data = resolved(app, record)
        except MechaError as exc:  # show the others; name this one and why
            app.echo(f"error: worker {record.name}: {exc}", err=True)
            failed += 1
            continue
        docs.append(to_yaml(data))
    if docs:
        app.echo("---\n".join(docs).rstrip("\n"))
    if failed:
        raise click.exceptions.Exit(1)


def _server(app: AppContext, name: str | None, *, server: bool, as_json: bool) -> None:
    """``--server``: the resolved server settings (no store opened)."""
    from mecha.errors import UsageError

    if not server:
        raise UsageError("--json goes with --server", hint="mecha config --server --json")
    if name:
        raise UsageError(
            f'--server shows the server\'s settings, not worker "{name}"',
            hint="mecha config --server, or mecha config NAME for a worker",
        )
    from mecha.cli.server_settings import as_json as rows_json
    from mecha.cli.server_settings import server_rows

    rows = server_rows(app)
    if as_json:
        import json

        app.echo(json.dumps(rows_json(rows), indent=2))
        return
    from mecha.cli.table import render_table

    table = [[row.setting, row.value, row.source, row.variable] for row in rows]
    app.echo(render_table(["SETTING", "VALUE", "FROM", "VARIABLE"], table))


def resolved(app: AppContext, record: WorkerRecord) -> dict[str, Any]:
    """The worker as Mecha will run it now, with secret fields masked."""
    parsed = from_record(
        record, environ=app.environ, home=app.user_home, secrets_file=app.secrets_file
    )
    data: dict[str, Any] = _prune(parsed.spec.model_dump(mode="json", exclude_none=True))
    written = parsed.written
    for section, key in SECRET_FIELDS:
        if key in data.get(section, {}):
            raw = written[section][key]
            data[section][key] = raw if has_reference(raw) else REDACTED
    env = data.get("docker", {}).get("env", {})
    for var in env:
        raw = written["docker"]["env"][var]
        if isinstance(raw, str) and has_reference(raw):
            env[var] = raw
    return data


def to_yaml(data: Any) -> str:
    """``data`` as block YAML that Mecha's YAML 1.2 reading gives back unchanged."""
    import yaml

    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, indent=2, allow_unicode=True)


def _dumper() -> type:
    """PyYAML's safe dumper with YAML 1.2 booleans (``on``/``yes``/``off`` are plain text),
    lists indented under their key and multi-line texts as ``|`` blocks, as people write."""
    import yaml

    bool_tag = "tag:yaml.org,2002:bool"

    class Yaml12Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None  # the emitter falls back if | cannot hold it
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Yaml12Dumper.add_representer(str, text)

    Yaml12Dumper.yaml_implicit_resolvers = {  # its own table, without YAML 1.1's booleans
        first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
    }
    Yaml12Dumper.add_implicit_resolver(
        bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return Yaml12Dumper


def _prune(value: Any) -> Any:
    """Drop empty strings, lists and mappings, so only what matters is shown."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ("", [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
