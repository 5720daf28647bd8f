"""Real model servers for tests, one of each per test session, in child processes.

* ``llama_server``: llama.cpp's server (xllamacpp) with SmolLM2, started through
  ``python -m mecha.runtimes.adapters.local_model``: OpenAI-style API, model name "smollm2".
  Its context is CTX tokens shared by PARALLEL slots, so a prompt over CTX/PARALLEL
  tokens overflows quickly.
* ``ollama_server``: ollama-proxy-plus in front of it: the Ollama API, model
  "local/smollm2" (its token counts are estimates).

Without a component the tests that need it are skipped with the reason, and fail when
the environment variable CI is "true" (CI installs everything: nothing may go untested).

A test module uses them with ``pytest_plugins = ["tests.llm_servers"]`` (and must not
import this module itself: pytest could no longer rewrite its asserts).
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.components import missing

CTX = 2048
PARALLEL = 2
#: tokens one request may use on llama_server
SLOT_CTX = CTX // PARALLEL
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class LlmServer:
    """A running model server: its base URL and the model name it answers to."""

    url: str
    model: str
    #: tokens one request may use (0 if unknown)
    slot_ctx: int = 0


def require_local_model() -> None:
    """xllamacpp and the SmolLM2 GGUF are installed (else missing())."""
    from mecha.errors import MechaError
    from mecha.runtimes.adapters.local_model import default_model_path

    if importlib.util.find_spec("xllamacpp") is None:
        missing("xllamacpp is not installed: pip install 'mecha-engine[local]'")
    try:
        default_model_path()
    except MechaError as exc:
        missing(f"{exc.message}: {exc.hint}")


def _free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_line(stream: IO[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline().strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _log_tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-2000:].strip() or "(no output)"


@pytest.fixture
def embedded_model() -> None:
    """Skip (fail under CI=true) unless xllamacpp and SmolLM2 are installed."""
    require_local_model()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmServer]:
    """llama.cpp's server with SmolLM2 on 127.0.0.1, for the whole session."""
    require_local_model()
    log = tmp_path_factory.mktemp("llama") / "stderr.log"
    command = [sys.executable, "-m", "mecha.runtimes.adapters.local_model", "--port", "0"]
    command += ["--ctx", str(CTX), "--parallel", str(PARALLEL)]
    with log.open("w") as errors:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert proc.stdout is not None
        url = _first_line(proc.stdout, START_TIMEOUT)
        if not url.startswith("http://"):
            pytest.fail(f"the llama.cpp server did not start: {_log_tail(log)}", pytrace=False)
        yield LlmServer(url=url, model="smollm2", slot_ctx=SLOT_CTX)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def ollama_server(
    llama_server: LlmServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlmServer]:
    """ollama-proxy-plus (the Ollama API) in front of llama_server."""
    program = shutil.which("ollama-proxy", path=str(Path(sys.executable).parent))
    program = program or shutil.which("ollama-proxy")
    if program is None:
        missing("ollama-proxy-plus is not installed: pip install ollama-proxy-plus")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PROVIDERS_LOCAL_API_KEY="EMPTY",
        PROVIDERS_LOCAL_BASE_URL=f"{llama_server.url}/v1",
        EXTRA_MODELS="local/smollm2",
    )
    log = tmp_path_factory.mktemp("ollama") / "output.log"
    command = [program, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as output:
        proc = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, text=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _answers(url + "/", proc):
            pytest.fail(f"ollama-proxy did not start: {_log_tail(log)}", pytrace=False)
        yield LlmServer(url=url, model="local/smollm2", slot_ctx=SLOT_CTX)
    finally:
        _stop(proc)


def _answers(url: str, proc: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.get(url).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return False
