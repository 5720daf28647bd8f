"""The real Claude Code CLI in mecha-worker-claude, against a real model (SmolLM2 on llama.cpp).

The image is built once per session and the model server shared with the other
container tests (``tests/worker_images.py``); without Docker or the model the test is
skipped, and fails under CI=true. About 20 s: the answer is rambling but real, so the test checks
the shape (the result contract, usage from Claude Code's JSON), not the wording.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest

from mecha.result import failure_of
from tests.images.conftest import contract

pytestmark = pytest.mark.docker

IMAGE = "mecha-worker-claude"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def model_url(worker_image: Callable[[str], str], bridge_model: str) -> str:
    """The model server (shared with the other container tests), once the image is built."""
    worker_image("claude")
    return bridge_model


def test_claude_image_answers_a_task_with_the_real_cli(model_url: str) -> None:
    port = _free_port()
    # room to ramble: SmolLM2 samples at the CLI's temperature and now and then runs past
    # a small cap, which the CLI reports as an error (it did at 200 tokens)
    started = _docker(
        "run", "-d", "--network", "host", "--user", "4321:4321", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--label", "mecha.test=images",
        "-e", "HOME=/tmp", "-e", "WORKER_HOST=127.0.0.1", "-e", f"WORKER_PORT={port}",
        "-e", f"ANTHROPIC_BASE_URL={model_url}", "-e", "ANTHROPIC_API_KEY=sk-ant-api03-test",
        "-e", "CLAUDE_CODE_MAX_OUTPUT_TOKENS=1024", "-e", "CLAUDE_MODEL=smollm2",
        "-e", "CLAUDE_BARE=true", "-e", "CLAUDE_TOOLS=",
        "-e", "CLAUDE_SYSTEM_PROMPT=Answer in one short sentence.",
        IMAGE,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        response = httpx.post(
            f"{url}/task", json={"id": "t1", "prompt": "What is the capital of France?"},
            timeout=300,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        answer = response.json()
        result = contract(answer)
        assert not failure_of(result), (answer, _docker("logs", name).stderr[-2000:])
        assert result.output.strip()
        meta = answer["metadata"]
        assert meta["backend"] == "claude"
        assert meta["model"] == "smollm2"
        assert meta["input_tokens"] > 0
        assert meta["output_tokens"] > 0
    finally:
        _docker("rm", "-f", name)


def _wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("the claude worker never became healthy", pytrace=False)
