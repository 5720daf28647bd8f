"""The docs' checkable promises: every `mecha …` they show exists with the flags shown, the
README's Commands table covers every command, and the README's first steps work as written
in a fresh home (the First worker commands, then receiving a sample webhook)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest

from mecha.cli import cli
from mecha.testing.serve_process import ServeProcess
from tests.conftest import REPO
from tests.e2e.writing import writes_settled

MECHA = Path(sys.executable).parent / "mecha"
DOCS = sorted(
    [
        REPO / "README.md", REPO / "images" / "README.md", *(REPO / "docs").glob("*.md"),
        REPO / "src" / "mecha" / "samples" / "README.md", *(REPO / "examples").rglob("*.yml"),
    ]
)  # fmt: skip
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: an inline code span: a run of backticks, its text, the same run (```` ```diff ```` too)
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_MECHA = re.compile(r"(?:^|(?<=[\s(]))(?:\.venv/bin/)?mecha(?= |$)")
_STOP = {"#", "|", ">", "&&", ";", "2>&1", "\\"}


# ---------------------------------------------------------------- every `mecha …` in the docs


def invocations(text: str) -> list[str]:
    """Every ``mecha …`` in code blocks (a line each) and inline code spans of ``text``."""
    found = []
    for block in _FENCE.findall(text):
        found += [line for line in block.splitlines() if _MECHA.search(line)]
    for _, span in _SPAN.findall(_FENCE.sub("", text)):
        if _MECHA.search(span):
            found.append(" ".join(span.split()))
    return found


def _tokens(line: str) -> list[str]:
    start = _MECHA.search(line)
    assert start is not None
    rest = line[start.end() :]
    try:
        words = shlex.split(rest, comments=False)
    except ValueError:
        words = rest.split()
    kept = []
    for word in words:
        if word in _STOP or word.startswith("#"):
            break
        kept.append(word.strip("[]()"))
    return kept


def resolve(words: list[str]) -> tuple[click.Context, list[str], str]:
    """Walk the command tree along ``words``: (the context of the command reached, the words
    left, what was not found or "")."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="mecha")
    words = list(words)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        names = words[0].split("/")  # `mecha worker add/remove`
        found = [command.get_command(ctx, name) for name in names]
        if any(sub is None for sub in found):
            return ctx, words, f"no command {' or '.join(names)!r} under {ctx.command_path!r}"
        words.pop(0)
        command = found[0]  # type: ignore[assignment]
        ctx = click.Context(command, info_name=names[0], parent=ctx)
    return ctx, words, ""


def problems_with(line: str) -> list[str]:
    """What in ``line`` the CLI does not have: a command, or an option of that command."""
    ctx, words, missing = resolve(_tokens(line))
    if missing:
        return [f"{line!r}: {missing}"]
    options = {opt for param in ctx.command.get_params(ctx) for opt in param.opts}
    flags = [w.split("=", 1)[0] for w in words if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", w)]
    return [f"{line!r}: {ctx.command_path} has no option {flag}" for flag in flags
            if flag not in options]  # fmt: skip


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_mecha_command_in_the_docs_exists_with_its_flags(doc: Path) -> None:
    found = invocations(doc.read_text(encoding="utf-8"))
    wrong = [problem for line in found for problem in problems_with(line)]
    assert not wrong, "\n".join(wrong)


def test_the_doc_scanner_catches_a_wrong_command_and_a_wrong_flag() -> None:
    """The check above can fail: an unknown subcommand and an unknown flag are reported."""
    text = "Run `mecha worker frobnicate` or\n\n```sh\nmecha event send --smaple x  # no\n```\n"
    assert [len(problems_with(line)) for line in invocations(text)] == [1, 1]


def _path(ctx: click.Context) -> tuple[str, ...]:
    return tuple(ctx.command_path.split()[1:])


def _table_commands() -> list[tuple[str, ...]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].split("\n\n", 2)[1]
    paths = []
    for row in table.splitlines()[2:]:
        spans = [span for _, span in _SPAN.findall(row.split(" | ")[0])]
        ctx, _, missing = resolve(_tokens(spans[0]))
        assert not missing, row
        paths.append(_path(ctx))
        for sibling in spans[1:]:  # `mecha task retry <id>` / `cancel <id>`
            assert ctx.parent is not None
            paths.append((*_path(ctx.parent), sibling.split()[0]))
    return paths


def _leaf_commands(group: click.Group, ctx: click.Context) -> list[tuple[str, ...]]:
    leaves: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None
        if isinstance(sub, click.Group):
            inner = click.Context(sub, info_name=name, parent=ctx)
            leaves += [(name, *path) for path in _leaf_commands(sub, inner)]
        else:
            leaves.append((name,))
    return leaves


def test_the_readme_commands_table_has_every_command() -> None:
    listed = set(_table_commands())
    every = _leaf_commands(cli, click.Context(cli, info_name="mecha"))
    assert [" ".join(path) for path in every if path not in listed] == []


# ---------------------------------------------------------------- the README, run as written


def _section(title: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _run(line: str, home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A README line ``.venv/bin/mecha …`` with this environment's mecha, in a fresh HOME."""
    args = _tokens(line)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env["HOME"] = str(home)
    return subprocess.run(
        [str(MECHA), *args, *extra], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_the_first_worker_commands_work_as_written(tmp_path: Path) -> None:
    [block] = _FENCE.findall(_section("First worker"))[:1]
    lines = block.splitlines()
    commands = [line for line in lines if line.startswith(".venv/bin/mecha ")]
    assert [_tokens(c)[:2] for c in commands] == [
        ["worker", "validate"], ["worker", "add"], ["worker", "ls"], ["config", "local-review"],
        ["doctor"],
    ]  # fmt: skip
    for line in commands:
        done = _run(line, tmp_path)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
        if _tokens(line)[0] != "doctor":  # doctor may find no Docker here; the others must pass
            assert done.returncode == 0, f"{line}\n{done.stderr}"
        if _tokens(line)[:2] == ["worker", "ls"]:
            shown = lines[lines.index(line) + 1 : lines.index(line) + 3]
            assert [row.split() for row in done.stdout.splitlines()] == [
                row.removeprefix("# ").split() for row in shown
            ]
        if _tokens(line)[0] == "config":
            assert done.stdout.startswith("name: local-review\nadapter:\n  type: local\n")
        if _tokens(line)[0] == "doctor":
            assert "worker local-review (adapter)" in done.stdout


def test_receiving_the_readme_sample_reviews_it_on_the_embedded_model(tmp_path: Path) -> None:
    """README: add the first worker, write the secret as shown, serve, send the sample; the
    embedded model's review becomes a comment shown as a dry run (no token)."""
    added = _run(".venv/bin/mecha worker add examples/workers/local-review.yml", tmp_path)
    assert added.returncode == 0, added.stderr
    setup, sending = _FENCE.findall(_section("Receive webhooks"))[:2]
    shell = "\n".join(line for line in setup.splitlines() if "mecha serve" not in line)
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run(["bash", "-ec", shell], env=env, check=True, timeout=60)
    assert ((tmp_path / ".mecha" / "secrets.yml").stat().st_mode & 0o777) == 0o600
    [send] = [line for line in sending.splitlines() if "event send" in line]
    with ServeProcess(tmp_path / ".mecha") as server:
        sent = _run(send, tmp_path, "--addr", server.url.removeprefix("http://"))
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 "), sent.stdout
        event_id = re.findall(r'"id": "(\w+)"', sent.stdout)[0]
        shown = writes_settled(server.url, event_id, timeout=600)
        tasks = httpx.get(f"{server.url}/tasks", timeout=10).json()
    [write] = shown["writes"]
    assert (write["worker"], write["action"], write["state"]) == (
        "local-review", "comment", "dry-run"
    )  # fmt: skip
    assert tasks[0]["state"] == "completed" and tasks[0]["result"]["output"].strip()
    event_show = _run(f".venv/bin/mecha event show {event_id[:12]}", tmp_path)
    assert "local-review: matched → task" in event_show.stdout, event_show.stderr
