"""`mecha config` prints worker files as Mecha reads them (YAML 1.2): ``on:`` unquoted, and
the output parses back to the same worker."""

from __future__ import annotations

from pathlib import Path

from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml
from tests.conftest import EXAMPLES, REPO
from tests.e2e.console import run_mecha

#: texts YAML 1.1 reads as booleans; Mecha (YAML 1.2) reads them as text
WORKER = """name: yes-man
endpoint: http://127.0.0.1:9
events:
  - source: github
    on: [pull_request.opened]
    prompt: "no"
  - source: gitlab
    on: [merge_request.open]
    prompt: "off"
  - source: github
    on: [issues.opened]
    prompt: "trailing spaces  \n  then indented\n\n"
policy:
  comment: { allow: true }
"""


def _config(home: Path, *files: Path) -> str:
    for path in files:
        added = run_mecha(home, "worker", "add", str(path))
        assert added.returncode == 0, added.stderr
    done = run_mecha(home, "config")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_on_is_printed_as_the_plain_key(home: Path) -> None:
    """No `'on':` (PyYAML's YAML 1.1 quoting) anywhere in the output."""
    out = _config(home, REPO / "src/mecha/demo/reviewer.yml", EXAMPLES / "pr-reviewer.yml")
    assert "'on'" not in out and '"on"' not in out
    assert "  on:\n" in out or "  on: [" in out


def test_each_worker_parses_back_to_itself(home: Path, tmp_path: Path) -> None:
    """Each printed document, read by Mecha's own parser and by `worker validate`, is the
    same worker as the file it came from."""
    files = [REPO / "src/mecha/demo/reviewer.yml", EXAMPLES / "pr-reviewer.yml"]
    files.append(tmp_path / "yes-man.yml")
    files[-1].write_text(WORKER, encoding="utf-8")
    docs = _config(home, *files).split("\n---\n")
    originals = {
        spec.name: spec
        for spec in (
            parse_worker(load_yaml(p.read_text(), file=str(p)), environ={}).spec for p in files
        )
    }
    assert len(docs) == len(files)
    for i, text in enumerate(docs):
        spec = parse_worker(load_yaml(text, file=f"doc{i}"), environ={}).spec
        assert spec == originals[spec.name]
        printed = tmp_path / f"printed-{i}.yml"
        printed.write_text(text, encoding="utf-8")
        checked = run_mecha(home, "worker", "validate", str(printed))
        assert checked.returncode == 0, checked.stderr
    yes_man = originals["yes-man"]
    assert [rule.prompt for rule in yes_man.events][:2] == ["no", "off"]
