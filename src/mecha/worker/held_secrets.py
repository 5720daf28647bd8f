"""The secret values a worker holds once resolved, so the store and the logs can mask them."""

from __future__ import annotations

import contextlib

from mecha.errors import MechaError
from mecha.secrets import Secrets
from mecha.worker.spec import WorkerSpec


def worker_secret_values(spec: WorkerSpec, secrets: Secrets | None = None) -> set[str]:
    """The secret values worker ``spec`` holds once resolved: its keys (literal or from
    ``${VAR}``) and, given ``secrets``, the tokens its ``token:`` references name."""
    found: set[str] = set()
    for section in (spec.adapter, spec.docker):
        if section is None:
            continue
        found.add(section.api_key)
        if section.token and secrets is not None:
            with contextlib.suppress(MechaError):  # an unresolved reference holds nothing
                found.add(secrets.resolve(section.token))
    found.discard("")
    return found
