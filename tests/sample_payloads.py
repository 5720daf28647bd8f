"""The recorded webhook deliveries Mecha ships (``mecha.samples``), as tests replay them.

Import it as ``from tests.sample_payloads import load_sample`` (the repository root is on
``sys.path`` because ``tests`` is a package, as ``from tests.conftest import ...`` relies on).
"""

from __future__ import annotations

from mecha import samples


def load_sample(forge: str, name: str) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes of sample ``forge/name`` and its headers, names in lowercase.

    The headers carry no signature: sign the body at replay time.
    """
    sample = samples.load(forge, name)
    return sample.body, {key.lower(): value for key, value in sample.headers.items()}


def sample_names(forge: str) -> list[str]:
    """Every sample recorded for ``forge``, sorted."""
    return samples.names(forge)
