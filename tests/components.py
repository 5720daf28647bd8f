"""Parts of the machine some tests need (a Docker engine, a model): skip without them,
fail under CI=true, where everything is installed and nothing may go untested.

Services the test run can set up itself (the Docker engine) are in tests/services.py.
"""

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
    """A Docker engine with the base image (tests.services.docker_engine), else missing()."""
    from tests.services import docker_engine

    docker_engine()
