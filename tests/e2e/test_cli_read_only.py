"""Commands that only read never create Mecha's folder or database, and an empty registry
says what to do next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.console import run_mecha

READS = [
    ("worker", "ls"),
    ("worker", "ls", "--json"),
    ("worker", "logs", "ghost"),
    ("config",),
    ("config", "ghost"),
    ("doctor",),
    ("event", "ls"),
    ("event", "show", "abc123"),
    ("task", "ls"),
    ("task", "show", "abc123"),
    ("budget",),
    ("budget", "ghost"),
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_read_on_a_fresh_machine_creates_nothing(home: Path, args: tuple[str, ...]) -> None:
    """No ~/.mecha, no mecha.db after the command; an unknown id is a clean error."""
    done = run_mecha(home, *args)
    assert not (home / ".mecha").exists(), f"{args} created {home / '.mecha'}"
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    if "ghost" in args or "abc123" in args:
        assert done.returncode == 1 and done.stderr.startswith("error: "), done.stderr
    elif args != ("doctor",):  # doctor may FAIL on this host (Docker), which is fine here
        assert done.returncode == 0, done.stderr


def test_a_read_with_a_home_but_no_database_creates_no_database(home: Path) -> None:
    """A home holding only secrets.yml stays that way (MECHA_HOME elsewhere, too)."""
    folder = home / "elsewhere"
    folder.mkdir(mode=0o700)
    (folder / "secrets.yml").write_text("tokens: {claude: {default: sk-ant-oat01-x}}\n")
    (folder / "secrets.yml").chmod(0o600)
    for args in READS:
        run_mecha(home, *args, env={"MECHA_HOME": str(folder)})
    assert sorted(p.name for p in folder.iterdir()) == ["secrets.yml"]


def test_writing_commands_still_create_the_home(home: Path) -> None:
    """The contrast: `worker add` makes the folder (0700) and the database."""
    path = home / "w.yml"
    path.write_text("name: w\nendpoint: http://127.0.0.1:9\n")
    assert run_mecha(home, "worker", "add", str(path)).returncode == 0
    assert (home / ".mecha" / "mecha.db").is_file()
    assert json.loads(run_mecha(home, "worker", "ls", "--json").stdout)[0]["name"] == "w"


def test_empty_registry_names_the_next_step(home: Path) -> None:
    """`worker ls` and `config` say there are no workers and how to add and check one."""
    for args in (("worker", "ls"), ("config",)):
        out = run_mecha(home, *args).stdout.splitlines()
        assert out[0] == "no workers registered"
        assert out[1].startswith("next: mecha worker add examples/workers/")
        assert "mecha worker validate" in out[1]
        # the example named works as it is: a file of the repository, on the embedded model
        named = REPO / out[1].split()[4]
        validated = run_mecha(home, "worker", "validate", str(named))
        assert validated.returncode == 0 and "type: local" in named.read_text()
    assert json.loads(run_mecha(home, "worker", "ls", "--json").stdout) == []
