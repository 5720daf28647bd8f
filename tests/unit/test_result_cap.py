"""The stored result's cap: long texts cut with a note, the full sizes kept (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mecha.engine.task_outcome import completed
from mecha.result import Comment, TaskResult
from mecha.result_cap import DEFAULT_MAX_RESULT, cap_result, stored_size
from mecha.task import Task

MB = 1_000_000


def test_a_result_within_the_cap_is_kept_as_it_is() -> None:
    data = {"output": "x" * 1000, "comment": {"body": "hello"}, "metadata": {"model": "m"}}
    assert cap_result(data, MB) == data


def test_a_9_mb_answer_is_stored_cut_with_its_note_and_full_size() -> None:
    data = {
        "output": "o" * 6_400_000, "comment": {"body": "c" * 2_700_000, "target": "pr:7"},
        "labels": {"add": ["bug"], "remove": []}, "status": {"state": "success",
        "description": "fine"}, "metadata": {"model": "m", "output_tokens": 9},
    }  # fmt: skip
    capped = cap_result(data, MB)
    assert stored_size(capped) <= MB
    assert capped["truncated"]["bytes"] == stored_size(data)
    assert capped["truncated"]["fields"] == {"output": 6_400_000, "comment.body": 2_700_000}
    assert "more than max_result (1,000,000) in config.yml" in capped["truncated"]["note"]
    for text in (capped["output"], capped["comment"]["body"]):
        assert len(text) > 300_000  # a fair share each, not a token amount
        assert "(cut by Mecha:" in text[-100:]
    assert capped["output"].startswith("oooo") and capped["comment"]["body"].startswith("cccc")
    assert "6,400,000 bytes in all" in capped["output"]
    # what is short stays whole
    assert capped["labels"] == data["labels"] and capped["status"] == data["status"]
    assert capped["metadata"] == data["metadata"] and capped["comment"]["target"] == "pr:7"


def test_a_short_text_is_kept_whole_next_to_a_long_one() -> None:
    capped = cap_result({"output": "o" * 3 * MB, "error": "it broke"}, MB)
    assert capped["error"] == "it broke"
    assert list(capped["truncated"]["fields"]) == ["output"]


def test_multibyte_text_and_escapes_are_counted_as_stored() -> None:
    data = {"output": 'é\n"' * 800_000, "commit": {"diff": "日本" * 400_000, "message": "m"}}
    capped = cap_result(data, 200_000)
    assert stored_size(capped) <= 200_000
    assert capped["commit"]["message"] == "m"


def test_huge_metadata_alone_keeps_only_its_short_values() -> None:
    data = {"output": "fine", "metadata": {"model": "m", "trace": "t" * 2 * MB}}
    capped = cap_result(data, MB)
    assert stored_size(capped) <= MB
    assert capped["metadata"] == {"model": "m"} and capped["output"] == "fine"
    assert "labels and metadata keep only short values" in capped["truncated"]["note"]


def test_completing_a_task_stores_the_capped_result_and_summarises_the_whole() -> None:
    task = Task(id="t1", worker="w", event_id="e1", dedup_key="e1:w", prompt="p")
    result = TaskResult(output="o" * 6_400_000, comment=Comment(body="c" * 2_700_000))
    update = completed(task, result)
    assert update.result is not None and stored_size(update.result) <= DEFAULT_MAX_RESULT
    assert update.result["truncated"]["fields"]["output"] == 6_400_000
    assert "output 6400000 chars" in update.detail


@given(
    texts=st.dictionaries(
        st.sampled_from(["output", "error"]), st.text(min_size=0, max_size=3000), min_size=1
    ),
    cap=st.integers(min_value=1_000, max_value=6_000),
)
def test_whatever_the_answer_the_stored_result_fits(texts: dict[str, str], cap: int) -> None:
    data: dict[str, Any] = dict(texts)
    capped = cap_result(data, cap)
    assert stored_size(capped) <= cap
    if stored_size(data) <= cap:
        assert capped == data
