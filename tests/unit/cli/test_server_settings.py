"""`mecha config --server`'s rows: every setting resolved, where it came from, secrets masked,
and no store opened."""

from __future__ import annotations

from pathlib import Path

from mecha.cli.context import AppContext
from mecha.cli.server_settings import Row, server_rows

KEY = "env-key-0123456789abcdef"


def rows(home: Path, config: str = "", **environ: str) -> dict[str, Row]:
    home.mkdir(mode=0o700, exist_ok=True)
    if config:
        (home / "config.yml").write_text(config, encoding="utf-8")
        (home / "config.yml").chmod(0o600)
    app = AppContext({"HOME": str(home.parent), "MECHA_HOME": str(home), **environ})
    return {row.setting: row for row in server_rows(app)}


def test_defaults_are_shown_with_their_values(tmp_path: Path) -> None:
    shown = rows(tmp_path / "h")
    assert (shown["addr"].value, shown["addr"].source) == ("127.0.0.1:21212", "default")
    assert shown["addr"].variable == "MECHA_ADDR"
    assert shown["api_key"].value.startswith("(none")
    assert shown["max_diff"].value == "500KB" and shown["max_result"].value == "1MB"
    assert shown["dispatch.concurrency"].value == "16"
    assert shown["dispatch.retry_cap"].value == "30m"
    assert shown["dispatch.lease"].variable == "MECHA_DISPATCH_LEASE (MECHA_LEASE)"
    assert shown["writeback.attempts"].value == "5"
    assert shown["retention.events"].value == "30 days"
    assert shown["retention.events"].variable == "MECHA_RETENTION_EVENTS (MECHA_RETENTION)"
    assert shown["budget.tokens_per_day"].value == "(no limit)"
    assert shown["budget.budget_wait"].value == "24h"
    assert shown["database"].value == f"SQLite {tmp_path / 'h' / 'mecha.db'}"
    assert shown["database"].source == "env MECHA_HOME"
    assert not (tmp_path / "h" / "mecha.db").exists()  # no store opened, none created


def test_each_value_names_where_it_came_from(tmp_path: Path) -> None:
    config = "addr: 127.0.0.1:9000\nretention: off\ndispatch:\n  concurrency: 3\n" \
        "sources:\n  alerts: {auth: api_key}\n"  # fmt: skip
    shown = rows(tmp_path / "h", config, MECHA_API_KEY=KEY, MECHA_DISPATCH_CONCURRENCY="8",
                 MECHA_MAX_DIFF="2MB")  # fmt: skip
    file = str(tmp_path / "h" / "config.yml")
    assert (shown["addr"].value, shown["addr"].source) == ("127.0.0.1:9000", f"{file}:1")
    assert (shown["api_key"].value, shown["api_key"].source) == ("[REDACTED]", "env MECHA_API_KEY")
    assert shown["dispatch.concurrency"].value == "8"
    assert shown["dispatch.concurrency"].source == "env MECHA_DISPATCH_CONCURRENCY"
    assert (shown["max_diff"].value, shown["max_diff"].source) == ("2MB", "env MECHA_MAX_DIFF")
    assert shown["retention.writes"].value == "off (kept for ever)"
    assert shown["retention.writes"].source == f"{file}:2"
    assert shown["sources.alerts"].value == "auth=api_key"
    assert shown["sources.alerts"].source == f"{file}:6"


def test_no_secret_is_in_any_row(tmp_path: Path) -> None:
    url = "postgresql://mecha:pg-s3cret-pw@db.internal:6543/mecha"
    shown = rows(tmp_path / "h", "api_key: file-key-0123456789ab\n", MECHA_DATABASE_URL=url)
    text = repr(shown)
    assert "pg-s3cret-pw" not in text and "file-key-0123456789ab" not in text
    assert shown["api_key"].value == "[REDACTED]"
    database = shown["database_url"]
    assert database.value == "PostgreSQL postgresql://mecha@db.internal:6543/mecha"
    assert database.source == "env MECHA_DATABASE_URL"
    assert shown["database password"].value == "[REDACTED]"
    assert "MECHA_DATABASE_URL" in shown["database password"].source


def test_a_database_url_from_the_file_names_its_line(tmp_path: Path) -> None:
    shown = rows(tmp_path / "h", "addr: :1\ndatabase_url: postgresql://mecha@db/mecha\n")
    assert shown["database_url"].source == f"{tmp_path / 'h' / 'config.yml'}:2"
    assert shown["database password"].value.startswith("(none")


def test_the_environment_s_api_key_is_masked_in_every_command_s_output(tmp_path: Path) -> None:
    app = AppContext({"HOME": str(tmp_path), "MECHA_API_KEY": KEY})
    assert KEY not in app.redact(f"Authorization: Bearer {KEY}")
    short = AppContext({"HOME": str(tmp_path), "MECHA_API_KEY": "review"})
    assert short.redact("review the diff") == "review the diff"  # refused as a key anyway
