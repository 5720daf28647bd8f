"""The command line, run in-process through ``main`` exactly as the console script runs it."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mecha.cli import main
from tests.conftest import EXAMPLES

Write = Callable[[str, str], Path]


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def mecha(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``mecha ARGS`` in-process; return exit code, stdout and stderr."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(list(args))
        captured = capsys.readouterr()
        code = done.value.code
        return Run(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


def _worker(write_file: Write, name: str, extra: str = "endpoint: http://127.0.0.1:9\n") -> Path:
    return write_file(f"workers/{name}.yml", f"name: {name}\n{extra}")


def test_version_prints_name_and_version(mecha: Callable[..., Run]) -> None:
    """`mecha version` prints `mecha <version>`."""
    from mecha import __version__

    assert mecha("version").out == f"mecha {__version__}\n"


def test_add_then_ls_shows_the_worker(mecha: Callable[..., Run], write_file: Write) -> None:
    """An added worker is listed offline with its endpoint."""
    path = _worker(write_file, "alpha")
    assert mecha("worker", "add", str(path)).out == "added alpha (live)\n"
    listing = mecha("worker", "ls").out.splitlines()
    assert listing[0].split() == ["NAME", "TYPE", "STATE", "ENDPOINT", "HEALTH"]
    assert listing[1].split() == ["alpha", "live", "offline", "http://127.0.0.1:9", "-"]


def test_ls_json_is_for_scripts(mecha: Callable[..., Run], write_file: Write) -> None:
    """--json prints a list of objects."""
    mecha("worker", "add", str(_worker(write_file, "alpha")))
    rows = json.loads(mecha("worker", "ls", "--json").out)
    assert (
        rows[0]["name"] == "alpha" and rows[0]["type"] == "live" and rows[0]["state"] == "offline"
    )


def test_ls_with_no_workers_says_so(mecha: Callable[..., Run]) -> None:
    """An empty registry is not an empty table."""
    assert mecha("worker", "ls").out.startswith("no workers registered\nnext: mecha worker add ")


def test_add_folder_adds_every_file(mecha: Callable[..., Run], write_file: Write) -> None:
    """A folder adds all its worker files."""
    _worker(write_file, "a")
    folder = _worker(write_file, "b").parent
    assert mecha("worker", "add", str(folder)).out == "added a (live)\nadded b (live)\n"


def test_batch_with_a_broken_file_adds_nothing(
    mecha: Callable[..., Run], write_file: Write
) -> None:
    """All or nothing: one bad file, no worker added, the file and line named."""
    _worker(write_file, "good")
    bad = _worker(write_file, "zbad", "endpoint: http://h\ntimeout: soon\n")
    result = mecha("worker", "add", str(bad.parent))
    assert result.code == 1
    assert f"{bad}:3:10: timeout:" in result.err
    assert mecha("worker", "ls").out.startswith("no workers registered\nnext: mecha worker add ")


def test_batch_with_a_taken_name_adds_nothing(mecha: Callable[..., Run], write_file: Write) -> None:
    """A name already registered aborts the whole batch."""
    mecha("worker", "add", str(_worker(write_file, "b")))
    _worker(write_file, "a")
    result = mecha(
        "worker", "add", str(write_file("workers/a.yml", "name: a\nendpoint: http://h\n").parent)
    )
    assert result.code == 1 and "b" in result.err
    assert [r["name"] for r in json.loads(mecha("worker", "ls", "--json").out)] == ["b"]


def test_adding_the_same_worker_twice_is_an_error(
    mecha: Callable[..., Run], write_file: Write
) -> None:
    """Duplicate names are refused."""
    path = _worker(write_file, "alpha")
    mecha("worker", "add", str(path))
    result = mecha("worker", "add", str(path))
    assert result.code == 1 and result.err.startswith("error: ") and "alpha" in result.err


def test_add_replace_updates_an_edited_worker(mecha: Callable[..., Run], write_file: Write) -> None:
    """Edit the file, add --replace: the new definition is registered, and said so."""
    path = _worker(write_file, "alpha")
    mecha("worker", "add", str(path))
    path.write_text("name: alpha\nendpoint: http://127.0.0.1:7777\n")
    assert "mecha worker add --replace" in mecha("worker", "add", str(path)).err
    assert mecha("worker", "add", "--replace", str(path)).out == "updated alpha (live)\n"
    assert json.loads(mecha("worker", "ls", "--json").out)[0]["endpoint"] == "http://127.0.0.1:7777"


def test_remove_unregisters(mecha: Callable[..., Run], write_file: Write) -> None:
    """remove prints `removed NAME` and the worker is gone."""
    mecha("worker", "add", str(_worker(write_file, "alpha")))
    assert mecha("worker", "remove", "alpha").out == "removed alpha\n"
    assert mecha("worker", "ls").out.startswith("no workers registered\nnext: mecha worker add ")


def test_remove_unknown_worker_is_a_clean_error(mecha: Callable[..., Run]) -> None:
    """No traceback, a message and exit 1."""
    result = mecha("worker", "remove", "ghost")
    assert result.code == 1 and result.err.startswith("error: ") and "Traceback" not in result.err


def test_remove_refuses_an_online_unmanaged_worker(
    mecha: Callable[..., Run], write_file: Write, home: Path
) -> None:
    """Adapter and unmanaged workers must be offline to be removed."""
    mecha("worker", "add", str(_worker(write_file, "alpha")))
    with sqlite3.connect(home / ".mecha" / "mecha.db") as db:
        db.execute("UPDATE workers SET state = 'online'")
    db.close()
    result = mecha("worker", "remove", "alpha")
    assert result.code == 1 and "online" in result.err


def test_validate_checks_without_adding(mecha: Callable[..., Run]) -> None:
    """validate reports each file and registers nothing."""
    result = mecha("worker", "validate", str(EXAMPLES / "pr-reviewer.yml"))
    assert result.code == 0 and "ok " in result.out and "pr-reviewer (managed)" in result.out
    assert mecha("worker", "ls").out.startswith("no workers registered\nnext: mecha worker add ")


def test_validate_reports_problems_with_places(
    mecha: Callable[..., Run], write_file: Write
) -> None:
    """A misspelt key comes back with file:line:col and a suggestion."""
    path = write_file("w.yml", "name: w\ndocker:\n  imgae: x\n")
    result = mecha("worker", "validate", str(path))
    assert result.code == 1
    assert f'{path}:3:3: unknown key "imgae" in docker' in result.err
    assert 'did you mean "image"?' in result.err


def test_validate_and_add_warn_of_policy_mistakes(
    mecha: Callable[..., Run], write_file: Write
) -> None:
    """A typo'd policy key and ``allow: "yes"`` are warned of, located; the file still loads."""
    policy = 'policy:\n  labls: {allow: false}\n  comment:\n    allow: "yes"\n'
    path = _worker(write_file, "alpha", "endpoint: http://127.0.0.1:9\n" + policy)
    for command in ("validate", "add"):
        result = mecha("worker", command, str(path))
        assert result.code == 0, result.err
        assert f"warning: {path}:4:3: policy.labls: unknown key, ignored" in result.err
        assert f"warning: {path}:6:12: policy.comment.allow: expected true or false" in result.err
        assert "the policy is invalid and denies every action until this is fixed" in result.err
    assert "alpha" in mecha("worker", "ls").out


def test_validate_is_quiet_about_a_clean_policy(
    mecha: Callable[..., Run], write_file: Write
) -> None:
    """A policy with every key right adds no warning."""
    policy = "policy:\n  comment: {allow: true}\n  labels: {allow: false}\n"
    path = _worker(write_file, "alpha", "endpoint: http://127.0.0.1:9\n" + policy)
    result = mecha("worker", "validate", str(path))
    assert result.code == 0 and result.err == ""


def test_policy_warnings_show_when_secrets_cannot_be_read(
    mecha: Callable[..., Run], write_file: Write, home: Path
) -> None:
    """A broken secrets file skips the token checks, not the file's own warnings."""
    (home / ".mecha").mkdir()
    (home / ".mecha" / "secrets.yml").write_text("tokens: [", encoding="utf-8")
    path = _worker(write_file, "alpha", "endpoint: http://127.0.0.1:9\npolicy: {labls: {}}\n")
    result = mecha("worker", "validate", str(path))
    assert result.code == 0
    assert "token references not checked" in result.err and "policy.labls" in result.err


def test_unset_variable_is_named(
    mecha: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vLLM example without VLLM_API_KEY names the variable."""
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    result = mecha("worker", "validate", str(EXAMPLES / "vllm-worker.yml"))
    assert result.code == 1 and "VLLM_API_KEY is not set" in result.err


def test_schema_is_json_schema(mecha: Callable[..., Run]) -> None:
    """worker schema prints a JSON Schema document."""
    schema = json.loads(mecha("worker", "schema").out)
    assert schema["title"] == "Mecha worker" and "docker" in schema["properties"]


def test_config_shows_resolved_yaml_with_keys_masked(
    mecha: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """config prints valid YAML with defaults, and the key as its ${VAR}, not its value."""
    monkeypatch.setenv("VLLM_API_KEY", "super-secret-123")
    mecha("worker", "add", str(EXAMPLES / "vllm-worker.yml"))
    mecha("worker", "add", str(EXAMPLES / "local-ollama.yml"))
    out = mecha("config").out
    assert "super-secret-123" not in out
    docs = list(yaml.safe_load_all(out))
    assert [d["name"] for d in docs] == ["local-ollama", "vllm-worker"]
    assert docs[1]["adapter"]["api_key"] == "${VLLM_API_KEY}" and docs[1]["timeout"] == "15m"


def test_config_masks_a_literal_key(mecha: Callable[..., Run], write_file: Write) -> None:
    """A key written literally is shown as [REDACTED]."""
    path = write_file(
        "w.yml",
        "name: w\nadapter: {type: openai, upstream: 'http://h', model: m, api_key: lit-key-999}\n",
    )
    mecha("worker", "add", str(path))
    out = mecha("config", "w").out
    assert "lit-key-999" not in out and "api_key: '[REDACTED]'" in out


def test_config_shows_the_good_workers_and_names_the_broken_one(
    mecha: Callable[..., Run], write_file: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose ${VAR} is no longer set is reported; the others still print; exit 1."""
    monkeypatch.setenv("VLLM_API_KEY", "k")
    mecha("worker", "add", str(EXAMPLES / "vllm-worker.yml"))
    mecha("worker", "add", str(_worker(write_file, "alpha")))
    monkeypatch.delenv("VLLM_API_KEY")
    result = mecha("config")
    assert result.code == 1
    assert [d["name"] for d in yaml.safe_load_all(result.out)] == ["alpha"]
    assert "worker vllm-worker:" in result.err and "VLLM_API_KEY is not set" in result.err


def test_config_of_unknown_worker_is_an_error(mecha: Callable[..., Run]) -> None:
    """Naming a worker that is not registered fails cleanly."""
    assert mecha("config", "ghost").code == 1


def test_mecha_home_moves_everything(
    mecha: Callable[..., Run], write_file: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MECHA_HOME puts the folder (0700) and database (0600) where it says."""
    monkeypatch.setenv("MECHA_HOME", str(tmp_path / "elsewhere"))
    mecha("worker", "add", str(_worker(write_file, "alpha")))
    assert (tmp_path / "elsewhere").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "elsewhere" / "mecha.db").stat().st_mode & 0o777 == 0o600


def test_mecha_db_path_moves_the_database(
    mecha: Callable[..., Run], write_file: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MECHA_DB_PATH overrides only the database."""
    monkeypatch.setenv("MECHA_DB_PATH", str(tmp_path / "db" / "x.db"))
    mecha("worker", "add", str(_worker(write_file, "alpha")))
    assert (tmp_path / "db" / "x.db").is_file()


def test_unsafe_secrets_file_is_refused_by_doctor(mecha: Callable[..., Run], home: Path) -> None:
    """A group-readable secrets.yml is a FAIL with the chmod fix."""
    folder = home / ".mecha"
    folder.mkdir(mode=0o700)
    secrets = folder / "secrets.yml"
    secrets.write_text("tokens: {claude: {default: sk-ant-oat01-abc}}\n")
    secrets.chmod(0o644)
    result = mecha("doctor")
    assert result.code == 1
    assert "[FAIL] secrets" in result.out and f"chmod 600 {secrets}" in result.out


def test_doctor_on_a_fresh_machine_warns_but_passes(mecha: Callable[..., Run]) -> None:
    """Nothing set up yet is not a failure."""
    result = mecha("doctor")
    assert result.code == 0, result.out
    assert "does not exist yet" in result.out and "[FAIL]" not in result.out


def test_doctor_checks_each_worker(
    mecha: Callable[..., Run], write_file: Write, home: Path
) -> None:
    """A worker whose token does not resolve is a FAIL; a good one is ok."""
    mecha("worker", "add", str(_worker(write_file, "good")))
    mecha("worker", "add", str(EXAMPLES / "pr-reviewer.yml"))
    (home / ".mecha" / "secrets.yml").write_text("tokens: {codex: {default: sk-abc}}\n")
    (home / ".mecha" / "secrets.yml").chmod(0o600)
    result = mecha("doctor")
    assert "[ok] worker good (live): definition valid" in result.out
    assert "[FAIL] worker pr-reviewer (managed): token claude.default" in result.out
    assert result.code == 1


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthy_url() -> Iterator[str]:
    """A real HTTP server on loopback answering GET /health with 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ls_probes_running_workers(
    mecha: Callable[..., Run], write_file: Write, home: Path, healthy_url: str
) -> None:
    """Online workers are probed: a live one is ok, a dead one turns to error."""
    mecha("worker", "add", str(_worker(write_file, "up", f"endpoint: {healthy_url}\n")))
    mecha(
        "worker",
        "add",
        str(_worker(write_file, "down", f"endpoint: http://127.0.0.1:{_closed_port()}\n")),
    )
    with sqlite3.connect(home / ".mecha" / "mecha.db") as db:
        db.execute("UPDATE workers SET state = 'online'")
    db.close()
    rows = {r["name"]: r for r in json.loads(mecha("worker", "ls", "--json").out)}
    assert rows["up"]["health"] == "ok" and rows["up"]["state"] == "online"
    assert rows["down"]["state"] == "error" and rows["down"]["health"] == "health check failed"


def test_unexpected_failure_is_one_line_not_a_traceback(
    mecha: Callable[..., Run], home: Path
) -> None:
    """A database path that is a folder gives a clean error."""
    os.environ["MECHA_DB_PATH"] = str(home)
    try:
        result = mecha("worker", "ls")
    finally:
        del os.environ["MECHA_DB_PATH"]
    assert result.code != 0 and "Traceback" not in result.err and result.err.startswith("error: ")


def test_log_lines_pass_through_the_redactor(home: Path) -> None:
    """Once secrets are loaded, their values and token shapes are masked in every log line."""
    import io
    import logging

    from mecha.cli.context import AppContext

    folder = home / ".mecha"
    folder.mkdir(mode=0o700)
    (folder / "secrets.yml").write_text("github: {webhook_secret: hook-secret-value}\n")
    (folder / "secrets.yml").chmod(0o600)
    app = AppContext({"HOME": str(home)})
    stream = io.StringIO()
    app.start_logging(stream)
    try:
        app.secrets()
        logging.getLogger("mecha.test").warning(
            "sent %s with ghp_abcdefghij123", "hook-secret-value"
        )
    finally:
        app.close()
    line = stream.getvalue()
    assert re.fullmatch(r"\S+ WARNING mecha.test: sent \[REDACTED\] with \[REDACTED\]\n", line)


def test_database_file_never_holds_a_worker_key(
    mecha: Callable[..., Run], write_file: Write, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither a ${VAR} key nor a literal key ends up anywhere in the database files."""
    monkeypatch.setenv("VLLM_API_KEY", "env-key-5f1c9a")
    mecha("worker", "add", str(EXAMPLES / "vllm-worker.yml"))
    literal = write_file(
        "lit.yml",
        "name: lit\nadapter: {type: openai, upstream: 'http://h', "
        "model: m, api_key: literal-key-77aa}\n",
    )
    mecha("worker", "add", str(literal))
    raw = b"".join(p.read_bytes() for p in (home / ".mecha").glob("mecha.db*"))
    assert b"${VLLM_API_KEY}" in raw
    assert b"env-key-5f1c9a" not in raw and b"literal-key-77aa" not in raw


def test_doctor_ends_with_a_summary_and_a_next_step(mecha: Callable[..., Run]) -> None:
    """The last lines count the findings and, with no workers, say what to do next."""
    lines = mecha("doctor").out.splitlines()
    assert lines[-2].endswith("failed") and " ok, " in lines[-2]
    assert lines[-1].startswith("next: mecha worker add")
