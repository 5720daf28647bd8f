"""`mecha db copy` as a user moving from SQLite to PostgreSQL runs it: a database filled by
a real `mecha serve` (`mecha worker add`, `mecha event send --sample`, a large webhook,
`mecha task cancel`) copied into a real PostgreSQL (``pg_url``), then read with
MECHA_DATABASE_URL set exactly as before; and what it refuses, leaving the target as it
was: a target with rows, a running serve, a source at an older schema, a failure or a
Ctrl-C mid-way."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from mecha.store.sqlite.migrations import MIGRATIONS, migrate
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import make_home, post_github, pr_payload

PASSWORD = "pw-Cq7Lm2xVr9"
WORKER = (
    "name: reviewer\nendpoint: http://127.0.0.1:9\nevents:\n"
    "  - source: github\n    on: [pull_request.opened]\n    prompt: Review {{ subject }}\n"
    "  - source: gitlab\n    on: [merge_request.open]\n    prompt: Review {{ subject }}\n"
)
DATA_TABLES = ("workers", "events", "event_matches", "tasks", "timeline", "writes")


def mecha(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``mecha ARGS`` with MECHA_HOME=``home``, no other MECHA_* variable but ``env``'s."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.update({"MECHA_HOME": str(home), "HOME": str(home.parent)}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=environ, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def with_password(url: str) -> str:
    """``postgresql://user@host…`` with a password (the test server trusts any)."""
    scheme, _, rest = url.partition("://")
    user, _, place = rest.partition("@")
    return f"{scheme}://{user}:{PASSWORD}@{place}"


def shown(url: str) -> str:
    """What Mecha calls the database at ``url`` (no password)."""
    return f"PostgreSQL {url}"


def pg_counts(url: str) -> dict[str, int]:
    """Rows of each data table in the target ({} when it has no Mecha tables)."""
    with psycopg.connect(url) as conn:
        found = {}
        for table in DATA_TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if exists and exists[0]:
                row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()  # noqa: S608
                found[table] = int(row[0]) if row else 0
        return found


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose SQLite database a real serve filled: a worker, events from the shipped
    samples (two matched, one not, one GitLab), a 60 KB webhook (kept compressed), and a
    task cancelled by hand. Serve is stopped afterwards."""
    home = make_home(tmp_path_factory.mktemp("copy"))
    (home / "reviewer.yml").write_text(WORKER)
    added = mecha(home, "worker", "add", str(home / "reviewer.yml"))
    assert added.returncode == 0, added.stderr
    with ServeProcess(home) as server:
        addr = server.url.removeprefix("http://")
        for sample, source in (("pull_request.opened", "github"), ("issues.opened", "github"),
                               ("merge_request.open", "gitlab")):  # fmt: skip
            sent = mecha(home, "event", "send", "--sample", sample, "--source", source,
                         "--addr", addr)  # fmt: skip
            assert sent.returncode == 0, sent.stderr
        big = post_github(server.url, pr_payload(number=9, padding=60_000))
        assert big.status_code == 202, big.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tasks = json.loads(mecha(home, "task", "ls", "--json").stdout)
            if len(tasks) == 3:
                break
            time.sleep(0.2)
        assert len(tasks) == 3, tasks
    cancelled = mecha(home, "task", "cancel", tasks[0]["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    return home


def timeless(text: str) -> str:
    """``text`` with relative ages (``3s``, ``2m ago``) and the padding they change as one."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\b\d+(?:\.\d+)?[smhd]\b", "AGE", text))


def reads(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """What `mecha event ls`, `task ls`, `event show` and `task show` print (the text
    without relative ages, which the time between the two reads changes)."""
    events = json.loads(mecha(home, "event", "ls", "--json", env=env).stdout)
    tasks = json.loads(mecha(home, "task", "ls", "--json", env=env).stdout)
    out = {
        "event ls": timeless(mecha(home, "event", "ls", env=env).stdout),
        "event ls --json": json.dumps(events),
        "task ls": timeless(mecha(home, "task", "ls", env=env).stdout),
        "task ls --json": json.dumps(tasks),
        "worker show": timeless(mecha(home, "worker", "show", "reviewer", env=env).stdout),
        "node ls": timeless(mecha(home, "node", "ls", env=env).stdout),
    }
    for event in events:
        for args in ((), ("--json",)):
            done = mecha(home, "event", "show", event["id"], *args, env=env)
            assert done.returncode == 0, done.stderr
            out[f"event show {event['id']} {args}"] = (
                timeless(done.stdout) if not args else done.stdout
            )
    for task in tasks:
        shown_task = mecha(home, "task", "show", task["id"], env=env).stdout
        out[f"task show {task['id']}"] = timeless(shown_task)
    return out


def test_the_copy_reads_the_same_on_postgresql(filled: Path, pg_url: str) -> None:
    before = reads(filled)
    events = json.loads(before["event ls --json"])
    assert len(events) == 4
    assert "stopped" in before["node ls"]  # the serve that filled it, stopped since
    copied = mecha(filled, "db", "copy", "--to", with_password(pg_url))
    assert copied.returncode == 0, copied.stderr
    assert PASSWORD not in copied.stdout + copied.stderr
    assert copied.stderr.startswith(
        f"copying {filled / 'mecha.db'} into {shown(pg_url)}\n"
    )  # fmt: skip
    assert "  events: 4 rows copied\n" in copied.stderr
    table = copied.stdout.splitlines()
    assert re.fullmatch(r"TABLE\s+SQLITE\s+POSTGRESQL", table[0])
    assert any(re.fullmatch(r"events\s+4\s+4", line) for line in table)
    assert any(re.fullmatch(r"tasks\s+3\s+3", line) for line in table)
    assert any(re.fullmatch(r"workers\s+1\s+1", line) for line in table)
    assert "every table holds as many rows in both" in copied.stdout
    assert f"next: set MECHA_DATABASE_URL={pg_url} " in copied.stdout
    after = reads(filled, env={"MECHA_DATABASE_URL": pg_url})
    assert after == before
    raw = [json.loads(text)["raw"] for key, text in after.items() if "--json" in key
           and key.startswith("event show")]  # fmt: skip
    assert any(len(body) > 60_000 for body in raw)  # the big body, whole


def test_a_target_with_rows_is_refused_and_left_as_it_was(filled: Path, pg_url: str) -> None:
    first = mecha(filled, "db", "copy", "--to", pg_url)
    assert first.returncode == 0, first.stderr
    counts = pg_counts(pg_url)
    again = mecha(filled, "db", "copy", "--to", pg_url)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.splitlines()[1].startswith(
        f"error: {shown(pg_url)} holds Mecha data already (1 row in workers, 4 rows in events,"
    )
    assert "copies into an empty database only, so nothing was copied and it is left as it was" \
        in again.stderr  # fmt: skip
    assert "hint: name a new, empty database with --to" in again.stderr
    assert pg_counts(pg_url) == counts


def test_a_running_serve_on_the_source_is_refused(tmp_path: Path, pg_url: str) -> None:
    home = make_home(tmp_path)
    with ServeProcess(home):
        done = mecha(home, "db", "copy", "--to", pg_url)
    assert done.returncode == 1
    assert re.search(
        r"error: mecha serve \(pid \d+\) runs on .*mecha\.db: it would go on", done.stderr
    )
    assert "hint: stop it first" in done.stderr
    assert pg_counts(pg_url) == {}  # not even migrated


def test_without_to_it_copies_into_the_database_the_settings_choose(
    filled: Path, pg_url: str
) -> None:
    done = mecha(filled, "db", "copy", env={"MECHA_DATABASE_URL": with_password(pg_url)})
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "next: set" not in done.stdout  # it is set already
    assert pg_counts(pg_url)["events"] == 4


def test_from_names_another_sqlite_file(filled: Path, tmp_path: Path, pg_url: str) -> None:
    other = make_home(tmp_path)
    done = mecha(other, "db", "copy", "--from", str(filled / "mecha.db"), "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert pg_counts(pg_url)["tasks"] == 3


def test_a_failure_mid_way_leaves_the_target_empty(filled: Path, pg_url: str) -> None:
    """The target refuses the tasks (after workers and events were copied)."""
    migrated = mecha(filled, "db", "migrate", env={"MECHA_DATABASE_URL": pg_url})
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE tasks ADD CONSTRAINT no_reviews CHECK (worker <> 'reviewer')")
    done = mecha(filled, "db", "copy", "--to", pg_url)
    assert done.returncode == 1
    assert "  events: 4 rows copied\n" in done.stderr
    assert "failed and was rolled back, nothing of it is in the target" in done.stderr
    assert "no_reviews" in done.stderr
    assert pg_counts(pg_url) == dict.fromkeys(DATA_TABLES, 0)


#: ``python -m mecha`` with Ctrl-C doing what it does at a terminal: a test run started in
#: the background of a script (``… &``) has SIGINT ignored, which its children inherit, and
#: Python then never turns it into KeyboardInterrupt
CTRL_C_HEARD = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'mecha'; runpy.run_module('mecha', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_mid_way_leaves_the_target_empty(tmp_path: Path, pg_url: str) -> None:
    home = make_home(tmp_path)
    assert mecha(home, "db", "migrate").returncode == 0
    with sqlite3.connect(home / "mecha.db") as conn:
        conn.executemany(
            "INSERT INTO timeline (at, step, detail) VALUES (?, 'policy', ?)",
            ((float(n), "x" * 200) for n in range(200_000)),
        )
    migrated = mecha(home, "db", "migrate", env={"MECHA_DATABASE_URL": pg_url})
    assert migrated.returncode == 0, migrated.stderr
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ["MECHA_HOME"] = str(home)
    # the copy's last step updates the registry row: held here until the Ctrl-C is sent,
    # the copy cannot commit before it, however late a busy machine lets this test send it
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT version FROM registry WHERE id = 1 FOR UPDATE").fetchall()
        proc = subprocess.Popen(
            [sys.executable, "-c", CTRL_C_HEARD, "db", "copy", "--to", pg_url], env=environ,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "timeline: " in line and " of 200,000 rows" in line:
                proc.send_signal(signal.SIGINT)
                # a copy already waiting on the row acts on the Ctrl-C once its wait ends
                # (psycopg's wait does not return on a signal): let it end now
                holder.rollback()
                break
        _, rest = proc.communicate(timeout=60)
    assert proc.returncode != 0, "".join(seen) + rest
    assert f"interrupted: the copy was rolled back, {shown(pg_url)} is as it was" in rest
    assert pg_counts(pg_url) == dict.fromkeys(DATA_TABLES, 0)


def test_a_source_at_an_older_schema_is_refused(tmp_path: Path, pg_url: str) -> None:
    home = make_home(tmp_path)
    with sqlite3.connect(home / "mecha.db", isolation_level=None) as conn:
        migrate(conn, migrations=MIGRATIONS[:4])
    done = mecha(home, "db", "copy", "--to", pg_url)
    assert done.returncode == 1
    assert "mecha.db is at schema v4; this mecha copies databases at v" in done.stderr
    assert f"MECHA_DB_PATH={home / 'mecha.db'} mecha db migrate" in done.stderr


def test_mistakes_are_named(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    nowhere = mecha(home, "db", "copy")
    assert nowhere.returncode == 2
    assert "name the PostgreSQL database to copy into: mecha db copy --to" in nowhere.stderr
    wrong = mecha(home, "db", "copy", "--to", "mysql://u:secret-pw@db/x")
    assert wrong.returncode == 2
    assert '--to has the scheme "mysql"' in wrong.stderr
    assert "secret-pw" not in wrong.stderr
    missing = mecha(home, "db", "copy", "--to", "postgresql://u@127.0.0.1:9/x")
    assert missing.returncode == 1
    assert "there is no SQLite database at" in missing.stderr


def test_counts_that_differ_are_printed_and_an_error(filled: Path, pg_url: str) -> None:
    """A trigger of the target's own drops the timeline's `received` steps silently."""
    assert mecha(filled, "db", "migrate", env={"MECHA_DATABASE_URL": pg_url}).returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION drop_received() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.step = 'received' THEN RETURN NULL; END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER drop_received BEFORE INSERT ON timeline "
            "FOR EACH ROW EXECUTE FUNCTION drop_received()"
        )
    done = mecha(filled, "db", "copy", "--to", pg_url)
    assert done.returncode == 1
    assert re.search(r"^timeline\s+\d+\s+\d+\s+DIFFERS$", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^events\s+4\s+4$", done.stdout, re.MULTILINE)
    assert "was rolled back: the row counts differ (timeline " in done.stderr
    assert pg_counts(pg_url) == dict.fromkeys(DATA_TABLES, 0)


def test_the_password_of_database_password_serves_to_for_the_same_server(
    filled: Path, tmp_path: Path, pg_url: str
) -> None:
    """config.yml names the server with database_password: (secrets.yml); --to names a
    database there without a password: the copy runs, and the password is shown nowhere."""
    home = make_home(
        tmp_path,
        config=f"database_url: {pg_url}\ndatabase_password: postgres.main\n",
        extra_secrets=f"tokens:\n  postgres:\n    main: {PASSWORD}\n",
    )
    done = mecha(home, "db", "copy", "--from", str(filled / "mecha.db"), "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert pg_counts(pg_url)["events"] == 4
