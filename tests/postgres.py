"""A real PostgreSQL for the tests: a throwaway cluster, and an empty database per test.

``pg_server`` (session): the URL of a running server. With ``MECHA_TEST_DATABASE_URL``
set, that server (one you run; the tests create and drop databases on it). Otherwise one
cluster per session, started by the test run itself:

``mecha.testing.postgres_cluster.PostgresCluster`` (Debian's ``postgresql`` installed
with apt-get when missing and we are root; initdb and pg_ctl in a temporary folder, on a
free loopback port; fsync off), stopped and removed at the end of the session.

``pg_url`` (per test): a database of its own on that server, dropped afterwards.
Without PostgreSQL the test is ``missing()``: skipped, or failed under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from mecha.testing.postgres_cluster import PostgresCluster
from tests.components import missing

URL_VARIABLE = "MECHA_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a running PostgreSQL server (its maintenance database)."""
    given = os.environ.get(URL_VARIABLE, "")
    if given:
        yield given
        return
    cluster = PostgresCluster()
    why = cluster.start()
    if why:
        cluster.remove()
        missing(why)
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A new, empty database on ``pg_server``, dropped after the test."""
    name = f"mecha_test_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_server, name)
    finally:
        _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead."""
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())  # a name made above, not input
