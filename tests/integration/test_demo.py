"""`mecha demo`, the README's first command: the whole pipeline on the embedded model.

It runs for real: a `mecha serve` child, a signed webhook, SmolLM2 on llama.cpp, the
policy, and a dry-run write-back; nothing of the user's own ~/.mecha is touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("embedded_model")


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env["MECHA_HOME"] = str(tmp_path / "users-own-home")  # must stay untouched
    env["TMPDIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "mecha", "demo", *args], env=env, capture_output=True,
        text=True, timeout=240, check=False,
    )  # fmt: skip


def test_the_demo_shows_an_event_become_a_dry_run_comment(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("received", "matched", "dispatched", "policy", "dry run", "completed"):
        assert re.search(rf"^\[\s*[\d.]+s\] {step} ", out, flags=re.MULTILINE), (step, out)
    assert "would POST /repos/octo-org/hello-world/issues/42/comments" in out
    answer = out.split("The model's answer:\n", 1)[1].split("\n\nWrite-back", 1)[0]
    assert len(answer.strip()) > 20  # the model really wrote something
    assert "    | " in out  # the comment that would have been posted is shown
    assert not (tmp_path / "users-own-home").exists()
    assert not list(tmp_path.glob("mecha-demo-*"))  # the scratch home is removed


def test_the_demo_can_keep_its_scratch_home(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    [home] = tmp_path.glob("mecha-demo-*")
    assert (home / "mecha.db").exists()
    assert f"MECHA_HOME={home} mecha event show " in done.stdout
    assert oct((home / "secrets.yml").stat().st_mode & 0o777) == "0o600"
