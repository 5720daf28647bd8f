"""Parts of the machine some tests need (a Docker engine, a model): skip without them,
fail under CI=true, where everything is installed and nothing may go untested."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip the test because a component is not there; fail it when CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every test must run)", pytrace=False)
    pytest.skip(reason)


def require_docker() -> None:
    """A Docker engine answers (else missing())."""
    from mecha.errors import MechaError
    from mecha.runtimes.docker import DockerRuntime

    runtime = DockerRuntime()
    try:
        runtime.version()
    except MechaError as exc:
        missing(f"no Docker engine: {exc}")
    finally:
        runtime.close()
