"""Recorded webhook deliveries (``tests/samples/<forge>/<name>.json`` + ``.headers.json``).

Import it as ``from tests.sample_payloads import load_sample`` (the repository root is on
``sys.path`` because ``tests`` is a package, as ``from tests.conftest import ...`` relies on).
"""

from __future__ import annotations

import json
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"


def load_sample(forge: str, name: str) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes of sample ``forge/name`` and its headers, names in lowercase.

    The headers carry no signature: sign the body at replay time.
    """
    folder = SAMPLES / forge
    body = (folder / f"{name}.json").read_bytes()
    recorded = json.loads((folder / f"{name}.headers.json").read_text(encoding="utf-8"))
    return body, {str(key).lower(): str(value) for key, value in recorded.items()}


def sample_names(forge: str) -> list[str]:
    """Every sample recorded for ``forge``, sorted."""
    return sorted(
        path.name.removesuffix(".json")
        for path in (SAMPLES / forge).glob("*.json")
        if not path.name.endswith(".headers.json")
    )
