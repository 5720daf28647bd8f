"""Hints name the files really in use: ``~/.mecha/secrets.yml`` only when that is where the
secrets file is; with MECHA_HOME set, its real path."""

from __future__ import annotations

from pathlib import Path

from mecha.config.settings import Settings
from tests.conftest import EXAMPLES
from tests.e2e.console import run_mecha

LITERAL_KEY = "name: lit\nadapter: {type: openai, upstream: 'http://h', model: m, api_key: k-123}\n"
TOKEN_IN_ENV = "name: envtok\ndocker:\n  image: i\n  env: {MY_KEY: sk-ant-api03-abcdefghijklmnop}\n"
TOKEN_AS_REF = "name: reftok\ndocker:\n  image: i\n  token: sk-ant-oat01-abcdefghijklmnop\n"


def test_shown_abbreviates_only_the_default_folder(tmp_path: Path) -> None:
    """`Settings.shown`: ~/.mecha/… where it is that, else the full real path."""
    home = tmp_path / "me"
    default = Settings.from_env({"HOME": str(home)})
    assert default.shown(default.secrets_path) == "~/.mecha/secrets.yml"
    assert default.shown(default.db_path) == "~/.mecha/mecha.db"
    moved = Settings.from_env({"HOME": str(home), "MECHA_HOME": str(tmp_path / "m")})
    assert moved.shown(moved.secrets_path) == str(tmp_path / "m" / "secrets.yml")
    spelled = Settings.from_env({"HOME": str(home), "MECHA_HOME": str(home / ".mecha")})
    assert spelled.shown(spelled.secrets_path) == "~/.mecha/secrets.yml"
    db = Settings.from_env({"HOME": str(home), "MECHA_DB_PATH": str(tmp_path / "x.db")})
    assert db.shown(db.db_path) == str(tmp_path / "x.db")


def _hints(home: Path, env: dict[str, str]) -> str:
    """Everything the hint-giving commands print about the secrets file."""
    for name, text in (("lit", LITERAL_KEY), ("envtok", TOKEN_IN_ENV), ("reftok", TOKEN_AS_REF)):
        (home / f"{name}.yml").write_text(text, encoding="utf-8")
    out = []
    added = run_mecha(home, "worker", "add", str(EXAMPLES / "pr-reviewer.yml"), env=env)
    out.append(added.stderr)  # the token does not resolve: no secrets file
    out.append(run_mecha(home, "doctor", env=env).stdout)
    for name in ("lit", "envtok", "reftok"):
        out.append(run_mecha(home, "worker", "validate", str(home / f"{name}.yml"), env=env).stderr)
    return "\n".join(out)


def _assert_named(text: str, path: str) -> None:
    assert f"hint: create {path} (chmod 600)" in text  # worker add's warning
    assert f"create {path} (chmod 600)" in text.split("[FAIL] worker pr-reviewer")[1]  # doctor
    assert f"token: backend.name from {path}" in text  # a literal api_key
    assert f"docker.token: backend.name (from {path})" in text  # a token in docker.env
    assert f"put the token in {path} under tokens:" in text  # a token where a reference goes


def test_hints_name_the_moved_secrets_file(home: Path, tmp_path: Path) -> None:
    """With MECHA_HOME elsewhere, every hint names that folder's secrets.yml."""
    moved = tmp_path / "elsewhere"
    text = _hints(home, {"MECHA_HOME": str(moved)})
    _assert_named(text, str(moved / "secrets.yml"))
    assert "~/.mecha" not in text


def test_hints_say_the_default_path_when_it_is_the_real_one(home: Path) -> None:
    """Without MECHA_HOME the same hints say ~/.mecha/secrets.yml (copyable as is)."""
    _assert_named(_hints(home, {}), "~/.mecha/secrets.yml")
