"""What `mecha serve` writes to stderr with two adapter workers: every line timestamped,
one "Started server process", and the health probes (httpx per-request lines) at DEBUG."""

from __future__ import annotations

import re
import time
from pathlib import Path

from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST
from tests.e2e.serving import make_home
from tests.e2e.test_serve_adapters import adapter_worker, workers
from tests.llm_servers import LlmServer

#: 2026-12-06T22:41:58.123 INFO mecha.serve: …
LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)


def _serve_until_online(home: Path, env: dict[str, str] | None = None) -> str:
    """A real serve until both adapters were probed healthy; then stopped. Its stderr."""
    with ServeProcess(home, env=env) as server:
        deadline = time.monotonic() + 60
        while {w["state"] for w in workers(home).values()} != {"online"}:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
    return server.log()


def _home(tmp_path: Path, llama_server: LlmServer) -> Path:
    home = make_home(tmp_path, config=FAST)  # health every 200 ms
    adapter = f"  type: openai\n  upstream: {llama_server.url}\n  model: smollm2\n"
    adapter_worker(home, "one", adapter)
    adapter_worker(home, "two", adapter)
    return home


def test_log_is_timestamped_with_one_start_line_and_no_probe_lines(
    tmp_path: Path, llama_server: LlmServer
) -> None:
    log = _serve_until_online(_home(tmp_path, llama_server))
    lines = log.splitlines()
    assert [line for line in lines if not LINE.match(line)] == [], log
    assert sum("Started server process" in line for line in lines) == 1, log
    assert sum("Finished server process" in line for line in lines) == 1, log
    assert not [line for line in lines if "HTTP Request:" in line], log
    assert " INFO mecha.serve: listening on http://127.0.0.1:" in lines[0]
    assert lines[-1].endswith(" INFO mecha.serve: stopped")


def test_debug_level_shows_what_info_leaves_out(tmp_path: Path, llama_server: LlmServer) -> None:
    """The probes and each adapter's own server start are there, at DEBUG, named."""
    log = _serve_until_online(_home(tmp_path, llama_server), env={"MECHA_LOG_LEVEL": "DEBUG"})
    assert re.search(r" DEBUG httpx: HTTP Request: GET http://127\.0\.0\.1:\d+/health ", log)
    for name in ("one", "two"):
        assert f" DEBUG uvicorn.error: adapter {name}: Started server process" in log
    assert " INFO httpx:" not in log
    assert (
        sum(" INFO uvicorn.error: Started server process" in line for line in log.splitlines()) == 1
    )
