"""The installed ``mecha`` console script, run in a child process as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

MECHA = Path(sys.executable).parent / "mecha"


def run_mecha(
    home: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``mecha ARGS`` with HOME=``home``, no MECHA_* variables but those in ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ["HOME"] = str(home)
    environ.update(env or {})
    return subprocess.run(
        [str(MECHA), *args], capture_output=True, text=True, env=environ, timeout=120, check=False
    )
