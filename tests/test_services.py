"""The services the test run sets up itself (tests/services.py) say what is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.services import docker_engine


def open_sockets() -> set[str]:
    """This process's open sockets, as /proc/self/fd names them."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            names.add(target)
    return names


def test_an_engine_nobody_answers_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DOCKER_HOST at a socket nothing serves: one line naming it (no dockerd is started for
    an engine other than the local one), and no socket left behind, as the SDK left one."""
    host = f"unix://{tmp_path}/nobody.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    before = open_sockets()
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception)) as caught:
        docker_engine()
    message = str(caught.value)
    assert f"no Docker engine answers at DOCKER_HOST={host}" in message
    assert "\n" not in message
    assert open_sockets() <= before


def test_each_test_gets_an_empty_postgresql_database_of_its_own(pg_url: str) -> None:
    """The throwaway cluster answers, on loopback, with a database no other test uses."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        [[name, tables]] = conn.execute(
            "SELECT current_database(), (SELECT count(*) FROM pg_tables "
            "WHERE schemaname = 'public')"
        ).fetchall()
        [[address]] = conn.execute("SELECT inet_server_addr()::text").fetchall()
    assert name.startswith("mecha_test_")
    assert tables == 0
    assert address.startswith("127.0.0.1")
