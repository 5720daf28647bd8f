"""Each CLI backend: the command it runs and how its real output format becomes a result."""

from __future__ import annotations

import json

import pytest

from mecha.result import failure_of
from tests.images.conftest import StartWorker, contract

# ---------------------------------------------------------------- claude


def test_claude_success_gives_output_comment_and_usage(start_worker: StartWorker) -> None:
    answer = start_worker("claude").answer("review please")
    assert answer["output"] == "Looks good to me."
    assert answer["comment"] == {"body": "Looks good to me."}
    meta = answer["metadata"]
    assert meta["backend"] == "claude"
    assert meta["model"] == "claude-sonnet-4-5"  # the model that wrote the most
    assert meta["input_tokens"] == 12 + 100 + 200  # cached tokens count as input
    assert meta["output_tokens"] == 34
    assert meta["exit_code"] == 0
    assert meta["cost_usd"] == 0.0124
    assert meta["duration_ms"] >= 0
    assert not failure_of(contract(answer))


def test_claude_options_come_from_the_environment(start_worker: StartWorker) -> None:
    worker = start_worker(
        "claude",
        CLAUDE_MODEL="claude-opus-4-1",
        CLAUDE_EFFORT="high",
        CLAUDE_MAX_TURNS="5",
        CLAUDE_ALLOWED_TOOLS="Read, Grep,Bash(git diff:*)",
        CLAUDE_DISALLOWED_TOOLS="WebFetch",
        CLAUDE_SYSTEM_PROMPT="You review code.",
        CLAUDE_PERMISSION_MODE="acceptEdits",
    )
    worker.answer("-- a prompt that looks like --options")
    run = worker.runs()[0]
    argv = run["argv"]
    assert argv[:3] == ["-p", "--output-format", "json"]
    assert argv[-2:] == ["--", "-- a prompt that looks like --options"]
    for flag, value in [
        ("--model", "claude-opus-4-1"),
        ("--effort", "high"),
        ("--max-turns", "5"),
        ("--system-prompt", "You review code."),
        ("--permission-mode", "acceptEdits"),
        ("--disallowedTools", "WebFetch"),
    ]:
        assert argv[argv.index(flag) + 1] == value
    at = argv.index("--allowedTools")
    assert argv[at + 1 : at + 4] == ["Read", "Grep", "Bash(git diff:*)"]
    assert run["stdin"] == ""
    assert run["env"]["MECHA_TASK_ID"] == "task-1"


def test_claude_gets_a_huge_prompt_on_stdin(start_worker: StartWorker) -> None:
    worker = start_worker("claude")
    prompt = "review this diff\n" + "+ line\n" * 30_000
    worker.answer(prompt)
    run = worker.runs()[0]
    assert run["stdin"] == prompt
    assert "--" not in run["argv"]


def test_prompt_with_a_nul_goes_on_stdin_and_ids_are_printable(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("claude")
    response = worker.post({"id": "t\n1", "prompt": "before\x00after"})
    assert response.status_code == 200
    contract(response.json())
    run = worker.runs()[0]
    assert run["stdin"] == "before\x00after"
    assert run["env"]["MECHA_TASK_ID"] == "t?1"


def test_claude_is_error_is_a_failure(start_worker: StartWorker) -> None:
    answer = start_worker("claude").answer("FAIL")
    assert "claude reported an error: API Error" in answer["error"]
    assert answer["metadata"]["exit_code"] == 1
    assert "comment" not in answer
    assert failure_of(contract(answer))


def test_claude_is_error_fails_even_with_exit_code_0(start_worker: StartWorker) -> None:
    answer = start_worker("claude").answer("ERROR_EXIT0")
    assert answer["error"].startswith("claude reported an error")
    assert answer["metadata"]["exit_code"] == 1
    assert "comment" not in answer


def test_claude_non_zero_exit_is_a_failure(start_worker: StartWorker) -> None:
    answer = start_worker("claude").answer("EXIT3")
    assert answer["error"] == "claude exited with code 3"
    assert answer["metadata"]["exit_code"] == 3
    assert "comment" not in answer


def test_unparseable_output_is_a_failure(start_worker: StartWorker) -> None:
    for backend in ("claude", "codex", "gemini"):
        answer = start_worker(backend).answer("GARBAGE")
        assert answer["error"], backend
        assert answer["metadata"]["exit_code"] != 0, backend
        assert failure_of(contract(answer))


def test_a_missing_cli_is_a_failure(start_worker: StartWorker) -> None:
    worker = start_worker("claude", PATH="/nonexistent")
    answer = worker.answer("hello")
    assert answer["metadata"]["exit_code"] == 127
    assert "claude" in answer["error"]


def test_log_lines_around_the_json_are_skipped(start_worker: StartWorker) -> None:
    for backend in ("claude", "gemini"):
        answer = start_worker(backend).answer("NOISE REPLY:fine")
        assert answer["output"] == "fine", backend
        assert answer["metadata"]["exit_code"] == 0


# ---------------------------------------------------------------- codex


def test_codex_success_takes_the_last_agent_message(start_worker: StartWorker) -> None:
    worker = start_worker("codex", CODEX_MODEL="gpt-5-codex", CODEX_EFFORT="high")
    answer = worker.answer("REPLY:All tests pass.")
    assert answer["output"] == "All tests pass."
    assert answer["comment"] == {"body": "All tests pass."}
    meta = answer["metadata"]
    assert (meta["input_tokens"], meta["output_tokens"]) == (4544, 53)
    assert meta["cached_input_tokens"] == 1024
    assert meta["model"] == "gpt-5-codex"
    assert meta["thread_id"].startswith("01a2004e")
    argv = worker.runs()[0]["argv"]
    assert argv[:3] == ["exec", "--json", "--skip-git-repo-check"]
    assert argv[argv.index("--model") + 1] == "gpt-5-codex"
    assert argv[argv.index("-c") + 1] == 'model_reasoning_effort="high"'
    assert argv[-2:] == ["--", "REPLY:All tests pass."]
    assert worker.runs()[0]["stdin"] == ""


def test_codex_huge_prompt_is_read_from_stdin(start_worker: StartWorker) -> None:
    worker = start_worker("codex")
    prompt = "x " * 60_000
    worker.answer(prompt)
    run = worker.runs()[0]
    assert run["argv"][-1] == "-"
    assert run["stdin"] == prompt


def test_gemini_huge_prompt_is_read_from_stdin(start_worker: StartWorker) -> None:
    worker = start_worker("gemini")
    prompt = "y " * 60_000
    worker.answer(prompt)
    run = worker.runs()[0]
    assert run["argv"][-1] == "--prompt=Follow the instructions above."
    assert run["stdin"] == prompt


def test_codex_turn_failed_is_a_failure(start_worker: StartWorker) -> None:
    answer = start_worker("codex").answer("FAIL")
    assert answer["error"] == "codex turn failed: request exceeds the context size"
    assert answer["metadata"]["exit_code"] == 1
    assert "comment" not in answer


def test_codex_turn_failed_fails_even_with_exit_code_0(start_worker: StartWorker) -> None:
    answer = start_worker("codex").answer("ERROR_EXIT0")
    assert answer["error"].startswith("codex turn failed")
    assert answer["metadata"]["exit_code"] == 1


def test_codex_error_then_completed_turn_is_a_success(start_worker: StartWorker) -> None:
    answer = start_worker("codex").answer("RETRIED REPLY:ok")
    assert answer["output"] == "ok"
    assert answer["metadata"]["exit_code"] == 0


def test_codex_without_a_completed_turn_is_a_failure(start_worker: StartWorker) -> None:
    answer = start_worker("codex").answer("NOTURN")
    assert answer["error"] == "codex did not complete its turn: no turn completed"
    assert answer["metadata"]["exit_code"] == 1


def test_codex_non_zero_exit_is_a_failure(start_worker: StartWorker) -> None:
    answer = start_worker("codex").answer("EXIT3")
    assert answer["error"].startswith("codex exited with code 3")
    assert answer["metadata"]["exit_code"] == 3


# ---------------------------------------------------------------- gemini


def test_gemini_success_reads_response_and_stats(start_worker: StartWorker) -> None:
    worker = start_worker("gemini", GEMINI_MODEL="gemini-2.5-flash")
    answer = worker.answer("-REPLY:Ship it.")
    assert answer["output"] == "Ship it."
    assert answer["comment"] == {"body": "Ship it."}
    meta = answer["metadata"]
    assert meta["model"] == "gemini-2.5-flash"
    assert (meta["input_tokens"], meta["output_tokens"]) == (140, 22)  # summed over models
    argv = worker.runs()[0]["argv"]
    assert argv[:2] == ["--output-format", "json"]
    assert argv[-1] == "--prompt=-REPLY:Ship it."


def test_gemini_error_json_on_stderr_is_a_failure(start_worker: StartWorker) -> None:
    answer = start_worker("gemini").answer("FAIL")
    assert answer["error"] == "gemini reported an error: Error: File Not Found"
    assert answer["metadata"]["exit_code"] == 41
    assert failure_of(contract(answer))


def test_gemini_error_fails_even_with_exit_code_0(start_worker: StartWorker) -> None:
    answer = start_worker("gemini").answer("ERROR_EXIT0")
    assert answer["error"].startswith("gemini reported an error")
    assert answer["metadata"]["exit_code"] == 1


# ---------------------------------------------------------------- structured answers

FENCED = """Here is my review.

```json
{"comment": {"body": "Two nits, see below."},
 "labels": {"add": ["reviewed"], "remove": ["needs-review"]},
 "status": {"state": "Success", "description": "no blocking issues"}}
```
"""


@pytest.mark.parametrize("backend", ["claude", "codex", "gemini", "echo"])
def test_fenced_json_becomes_comment_labels_and_status(
    start_worker: StartWorker, backend: str
) -> None:
    prompt = FENCED if backend == "echo" else "REPLY:" + FENCED
    answer = start_worker(backend).answer(prompt)
    assert answer["output"] == FENCED
    assert answer["comment"] == {"body": "Two nits, see below."}
    assert answer["labels"] == {"add": ["reviewed"], "remove": ["needs-review"]}
    assert answer["status"] == {"state": "success", "description": "no blocking issues"}
    assert answer["metadata"]["structured"] == ["comment", "labels", "status"]
    result = contract(answer)
    assert result.labels is not None
    assert result.labels.add == ("reviewed",)


def test_whole_json_answer_maps_commit_and_shorthands(start_worker: StartWorker) -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    text = (
        '{"comment": "Fixed the typo.", "labels": ["typo"],'
        f' "commit": {{"message": "fix typo", "diff": {_json(diff)}}}}}'
    )
    answer = start_worker("claude").answer("REPLY:" + text)
    assert answer["comment"] == {"body": "Fixed the typo."}
    assert answer["labels"] == {"add": ["typo"], "remove": []}
    assert answer["commit"] == {"message": "fix typo", "diff": diff}
    assert contract(answer).commit is not None


def test_bad_structured_fields_are_dropped_with_a_note(start_worker: StartWorker) -> None:
    text = '{"comment": {"body": ""}, "labels": {"add": [1]}, "status": {"state": "failure"}}'
    answer = start_worker("codex").answer("REPLY:" + text)
    assert answer["status"] == {"state": "failure", "description": ""}
    assert "comment" not in answer
    assert "labels" not in answer
    notes = answer["metadata"]["structured_notes"]
    assert [note.split(" ")[0] for note in notes] == ["comment", "labels"]
    contract(answer)


def test_long_comment_is_cut_to_what_a_forge_accepts(start_worker: StartWorker) -> None:
    text = "word " * 20_000
    answer = start_worker("claude").answer("REPLY:" + text)
    assert answer["output"] == text
    assert len(answer["comment"]["body"]) == 65_536
    assert answer["metadata"]["comment_truncated"] is True


def test_json_without_result_fields_stays_plain_text(start_worker: StartWorker) -> None:
    text = '{"name": "x", "version": 2}'
    answer = start_worker("claude").answer("REPLY:" + text)
    assert answer["comment"] == {"body": text}
    assert "structured" not in answer["metadata"]


def _json(text: str) -> str:
    return json.dumps(text)
