"""Fake coding CLIs that print exactly what the real ones print (run as a program).

``python fake_cli.py claude|codex|gemini ARGS...`` behaves like ``claude -p --output-format
json``, ``codex exec --json`` or ``gemini --output-format json``. The output shapes were
taken from real runs of Claude Code 2.1.330, Codex CLI 0.169.0 and Gemini CLI 0.61.0 (a
model served by llama.cpp on this machine) and from their documentation.

What it does is chosen by a word in the prompt:

* ``REPLY:<text>``: answer ``<text>`` (else "Looks good to me.");
* ``FAIL``: the CLI's own failure report, exit 1 (Gemini: 41, error JSON on stderr);
* ``ERROR_EXIT0``: the failure report with exit 0 (Claude: is_error true, exit 0);
* ``EXIT3``: a normal answer, then exit 3;
* ``GARBAGE``: text that is not the documented format, exit 0;
* ``RETRIED`` (codex): an ``error`` event, then a completed turn;
* ``NOTURN`` (codex): thread started, no turn completed, exit 0;
* ``NOISE``: a log line before the JSON on stdout, a stack trace on stderr;
* ``SLOW``: sleep 1.5 s first;
* ``HANG``: start a grandchild ``sleep``, ignore SIGTERM, sleep for ever;
* ``SECRET``: answer with the value of ``$ANTHROPIC_API_KEY``.

Every run appends ``{"cli", "argv", "stdin", "cwd", "pid", "child", "env"}`` as one
JSON line to ``$FAKE_CLI_RECORD`` when that is set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

#: environment variables a record keeps (to check what the worker passes on)
RECORDED_ENV = ("WORKER_API_KEY", "ANTHROPIC_API_KEY", "MECHA_TASK_ID", "HOME", "CODEX_HOME")


def prompt_of(cli: str, argv: list[str], stdin: str) -> str:
    """The prompt as the real CLI would read it."""
    if cli == "gemini":
        given = next((arg[len("--prompt=") :] for arg in argv if arg.startswith("--prompt=")), "")
        return f"{stdin}\n\n{given}" if stdin else given
    if "--" in argv:
        return argv[argv.index("--") + 1]
    return stdin


def reply_of(prompt: str) -> str:
    if "SECRET" in prompt:
        return os.environ.get("ANTHROPIC_API_KEY", "")
    if "REPLY:" in prompt:
        return prompt.split("REPLY:", 1)[1]
    return "Looks good to me."


def claude(prompt: str, text: str) -> tuple[str, str, int]:
    failing = "FAIL" in prompt or "ERROR_EXIT0" in prompt
    result = (
        "API Error: Claude's response exceeded the 64 output token maximum." if failing else text
    )
    usage = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 200,
        "output_tokens": 34,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
    }
    model_usage = {
        "claude-haiku-4-5": {"inputTokens": 300, "outputTokens": 5, "costUSD": 0.0001},
        "claude-sonnet-4-5": {
            "inputTokens": 12,
            "outputTokens": 34,
            "cacheReadInputTokens": 200,
            "cacheCreationInputTokens": 100,
            "webSearchRequests": 0,
            "costUSD": 0.0123,
            "contextWindow": 200000,
        },
    }
    data: dict[str, Any] = {
        "type": "result",
        "subtype": "success",  # says success even when is_error is true, as the real one does
        "is_error": failing,
        "duration_ms": 2345,
        "duration_api_ms": 2000,
        "num_turns": 2,
        "result": result,
        "stop_reason": "end_turn",
        "session_id": "a4c2ddd2-dc82-4a67-8a85-fd2cf111c63f",
        "total_cost_usd": 0.0124,
        "usage": usage,
        "modelUsage": model_usage,
        "permission_denials": [],
        "uuid": "3bda2985-9b3d-4af7-aa9b-bc2260615bcf",
    }
    code = 1 if "FAIL" in prompt else 0
    stderr = '[claude-code:unrecognized_model] {"model":"x"}\n' if failing else ""
    return json.dumps(data, separators=(",", ":")) + "\n", stderr, code


def codex(prompt: str, text: str) -> tuple[str, str, int]:
    events: list[dict[str, Any]] = [
        {"type": "thread.started", "thread_id": "01a2004e-32c8-7e52-b394-83cafa60503e"},
        {
            "type": "item.completed",
            "item": {"id": "item_0", "type": "error", "message": "Model metadata not found."},
        },
    ]
    if "NOTURN" in prompt:
        return _lines(events), "", 0
    events.append({"type": "turn.started"})
    if "FAIL" in prompt or "ERROR_EXIT0" in prompt:
        body = {"error": {"code": 400, "message": "request exceeds the context size"}}
        message = json.dumps(body)
        events += [
            {"type": "error", "message": message},
            {"type": "turn.failed", "error": {"message": message}},
        ]
        return _lines(events), "Reading additional input from stdin...\n", int("FAIL" in prompt)
    if "RETRIED" in prompt:
        events.append({"type": "error", "message": "Reconnecting... 1/5"})
    events += [
        {
            "type": "item.completed",
            "item": {"id": "item_1", "type": "reasoning", "text": "**Thinking**"},
        },
        {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "x"}},
        {"type": "item.completed", "item": {"id": "item_3", "type": "agent_message", "text": text}},
        {
            "type": "turn.completed",
            "usage": {
                "input_tokens": 4544,
                "cached_input_tokens": 1024,
                "cache_write_input_tokens": 0,
                "output_tokens": 53,
                "reasoning_output_tokens": 0,
            },
        },
    ]
    return _lines(events), "Reading additional input from stdin...\n", 0


def gemini(prompt: str, text: str) -> tuple[str, str, int]:
    session = "59521161-a191-4a6e-a144-29dec8746f62"
    if "FAIL" in prompt or "ERROR_EXIT0" in prompt:
        error = {"type": "Error", "message": "File Not Found", "code": 1}
        trace = (
            "ModelNotFoundError: File Not Found\n    at classifyGoogleError (file:///x.js:1:1)\n"
        )
        body = json.dumps({"session_id": session, "error": error}, indent=2)
        return "", trace + body + "\n", 41 if "FAIL" in prompt else 0
    tokens = {"prompt": 100, "candidates": 20, "total": 130, "cached": 10, "thoughts": 10}
    models = {
        "gemini-2.5-flash-lite": {
            "api": {"totalRequests": 1, "totalErrors": 0, "totalLatencyMs": 300},
            "tokens": {"input": 40, "prompt": 40, "candidates": 2, "total": 42, "cached": 0},
        },
        "gemini-2.5-flash": {
            "api": {"totalRequests": 1, "totalErrors": 0, "totalLatencyMs": 800},
            "tokens": {"input": 90, **tokens, "tool": 0},
        },
    }
    stats = {
        "models": models,
        "tools": {"totalCalls": 0, "totalSuccess": 0, "totalFail": 0, "byName": {}},
        "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
    }
    data = {"session_id": session, "response": text, "stats": stats}
    return json.dumps(data, indent=2) + "\n", "", 0


def _lines(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events)


def hang(record: dict[str, Any]) -> None:
    """Start a grandchild, record both pids, ignore SIGTERM and never end."""
    child = subprocess.Popen(["sleep", "300"])
    record["child"] = child.pid
    _record(record)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)


def _record(record: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_CLI_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def main() -> int:
    cli, argv = sys.argv[1], sys.argv[2:]
    stdin = sys.stdin.read() if not sys.stdin.closed else ""
    prompt = prompt_of(cli, argv, stdin)
    record: dict[str, Any] = {
        "cli": cli,
        "argv": argv,
        "stdin": stdin,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "env": {name: os.environ.get(name) for name in RECORDED_ENV},
    }
    if "HANG" in prompt:
        hang(record)
    _record(record)
    if "SLOW" in prompt:
        time.sleep(1.5)
    if "GARBAGE" in prompt:
        sys.stdout.write("Segmentation fault? not JSON at all\n")
        return 0
    out, err, code = {"claude": claude, "codex": codex, "gemini": gemini}[cli](
        prompt, reply_of(prompt)
    )
    if "NOISE" in prompt:
        out = "Loaded cached credentials.\n" + out
        err = "Error: something noisy\n    at somewhere (file.js:1:1)\n" + err
    if "EXIT3" in prompt:
        code = 3
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
