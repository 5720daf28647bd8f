"""A real coding CLI in a real container, end to end: signed webhook → `mecha serve` →
disposable worker container (Claude Code, Codex) → the local model → result → policy →
the GitHub emulator.

A CLI's system prompt is thousands of tokens, which the 2-core test machine reads at
about 190 tokens/s when idle and several times slower when busy: the worker's timeout and
the wait are generous (20 min, 25 min), so only a hung CLI fails them.

The model (SmolLM2 on llama.cpp) serves on the docker0 bridge, where only the host and
its containers reach it. Its answers ramble: the tests check the shape (a real answer,
token usage from the CLI, the comment GitHub received), not the wording. Slow: the images
are built once per session and each task runs a CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.e2e.writing import BASE, GITHUB_TOKEN, HEAD, body, forge_writes, writes_settled

pytestmark = pytest.mark.slow

RULE = """  - source: github
    on: [pull_request.*]
    prompt: "In one short sentence: is a pull request titled '{{.title}}' risky?"
"""
POLICY = "policy:\n  comment: {allow: true, max_length: 2000}\n"


#: the tiny CPU model now and then rambles past the CLI's output cap: that run is repeated
#: (what is tested is the pipeline through the real CLI, not the model's brevity)
RAMBLED = "output token maximum"


def run_once(
    tmp_path: Path, worker_yaml: str, *, prepare: Callable[[Path], None] = print
) -> dict[str, Any]:
    """One pull request event through serve; the task, and the comment GitHub received."""
    for attempt in (1, 2):
        try:
            return _run(tmp_path / f"run{attempt}", worker_yaml, prepare=prepare)
        except Rambled as rambled:
            print(f"run {attempt}: the model rambled ({rambled}); once more")
    raise AssertionError("the model rambled past the output cap twice")


class Rambled(Exception):
    """The task failed because the model's answer passed the CLI's output cap."""


def _run(tmp_path: Path, worker_yaml: str, *, prepare: Callable[[Path], None]) -> dict[str, Any]:
    tmp_path.mkdir()
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge:
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        home = make_home(
            tmp_path, config=FAST, github_token=GITHUB_TOKEN,
            extra_secrets="tokens:\n  claude: {default: sk-ant-api03-local-model-key}\n",
        )  # fmt: skip
        prepare(Path(os.environ["HOME"]))  # the `home` fixture's: the CLI's and serve's
        path = home / "cli-worker.yml"
        path.write_text(worker_yaml + f"events:\n{RULE}{POLICY}", encoding="utf-8")
        added = mecha_cli(home, "worker", "add", str(path))
        assert added.returncode == 0, added.stderr
        env = {"GITHUB_API_URL": forge.github_url}
        with ServeProcess(home, env=env) as server:
            answer = post_github(server.url, pr_payload(number=7))
            assert answer.status_code == 202, answer.text
            shown = writes_settled(server.url, answer.json()["id"], timeout=1500)
            log = server.log()
        [task] = shown["tasks"]
        if task["state"] == "failed" and RAMBLED in task["error"]:
            raise Rambled(task["error"])
        assert task["state"] == "completed", (task, log[-3000:])
        [post] = forge_writes(forge)
        return {"task": task, "comment": body(post)["body"], "path": post.path}


def test_claude_code_in_a_container_reviews_a_pull_request(
    tmp_path: Path, home: Path, worker_image: Callable[[str], str], bridge_model: str
) -> None:
    image = worker_image("claude")
    worker = f"""name: claude-reviewer
timeout: 20m
max_retries: 0
docker:
  image: {image}
  lifecycle: disposable
  token: claude.default
  env:
    ANTHROPIC_BASE_URL: {bridge_model}
    CLAUDE_MODEL: smollm2
    CLAUDE_BARE: "true"
    CLAUDE_SYSTEM_PROMPT: Answer in one short sentence.
    CLAUDE_CODE_MAX_OUTPUT_TOKENS: "1024"
"""
    done = run_once(tmp_path, worker)
    result = done["task"]["result"]
    assert result["output"].strip()
    meta = result["metadata"]
    assert meta["backend"] == "claude" and meta["exit_code"] == 0
    assert meta["input_tokens"] > 0 and meta["output_tokens"] > 0
    assert done["path"] == "/github/repos/octo/app/issues/7/comments"
    assert done["comment"].startswith(result["comment"]["body"].strip()[:40])


def test_codex_in_a_container_reviews_a_pull_request(
    tmp_path: Path, home: Path, worker_image: Callable[[str], str], bridge_model: str
) -> None:
    image = worker_image("codex")

    def codex_config(user_home: Path) -> None:
        folder = user_home / ".codex"
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
        config = (
            'model = "smollm2"\nmodel_provider = "local"\n\n[model_providers.local]\n'
            f'name = "local"\nbase_url = "{bridge_model}/v1"\nwire_api = "responses"\n'
            'env_key = "LOCAL_MODEL_KEY"\n'
        )
        (folder / "config.toml").write_text(config, encoding="utf-8")
        (folder / "config.toml").chmod(0o644)

    worker = f"""name: codex-reviewer
timeout: 20m
max_retries: 0
docker:
  image: {image}
  lifecycle: disposable
  credentials: [codex]
  env:
    LOCAL_MODEL_KEY: local
"""
    done = run_once(tmp_path, worker, prepare=codex_config)
    result = done["task"]["result"]
    assert result["output"].strip(), json.dumps(result)[:2000]
    meta = result["metadata"]
    assert meta["backend"] == "codex" and meta["exit_code"] == 0
    assert done["comment"].strip()
