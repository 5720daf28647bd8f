"""The result contract: parse_result, failure_of and result_json."""

from __future__ import annotations

from typing import Any

import pytest

from mecha.result import (
    QUOTE_LIMIT,
    STATUS_STATES,
    Comment,
    CommitSuggestion,
    Labels,
    ResultError,
    Status,
    TaskResult,
    failure_of,
    parse_result,
    quote,
    result_json,
)

FULL: dict[str, Any] = {
    "output": "reviewed",
    "comment": {"target": "pr:42", "body": "looks good"},
    "labels": {"add": ["bug"], "remove": ["needs-review"]},
    "status": {"state": "success", "description": "all fine", "context": "mecha/review"},
    "commit": {"message": "fix typo", "diff": "--- a/x\n+++ b/x\n"},
    "metadata": {"model": "m", "input_tokens": 3, "output_tokens": 4, "exit_code": 0},
}


def test_a_full_answer_is_read_into_typed_values() -> None:
    """Every field of the contract lands in its typed place."""
    result = parse_result(FULL)
    assert result == TaskResult(
        output="reviewed",
        comment=Comment(body="looks good", target="pr:42"),
        labels=Labels(add=("bug",), remove=("needs-review",)),
        status=Status(state="success", description="all fine", context="mecha/review"),
        commit=CommitSuggestion(diff="--- a/x\n+++ b/x\n", message="fix typo"),
        metadata=FULL["metadata"],
    )
    assert failure_of(result) == ""


def test_every_field_is_optional() -> None:
    """An empty object is a valid answer with nothing in it."""
    assert parse_result({}) == TaskResult()
    assert result_json(parse_result({})) == {}


def test_null_fields_count_as_absent() -> None:
    """``null`` for any field is read as if it were left out."""
    nulls = dict.fromkeys(("output", "comment", "labels", "status", "commit", "metadata", "error"))
    assert parse_result(nulls) == TaskResult()


def test_result_json_round_trips_a_full_answer() -> None:
    """What is stored reads back to the same result."""
    result = parse_result(FULL)
    assert parse_result(result_json(result)) == result
    assert result_json(result) == FULL


def test_result_json_keeps_only_given_fields() -> None:
    """Fields the worker did not give are not invented."""
    result = parse_result({"output": "hi", "comment": {"body": "b"}, "error": "boom"})
    assert result_json(result) == {"output": "hi", "comment": {"body": "b"}, "error": "boom"}


def test_labels_accept_a_bare_list_and_single_names() -> None:
    """A list means labels to add; a single name is a list of one; names are trimmed."""
    assert parse_result({"labels": ["bug", " ui "]}).labels == Labels(add=("bug", "ui"))
    assert parse_result({"labels": {"remove": "wip"}}).labels == Labels(remove=("wip",))


def test_empty_labels_are_no_labels() -> None:
    """Nothing to add or remove is the same as no labels section."""
    assert parse_result({"labels": {"add": [], "remove": []}}).labels is None


def test_status_state_is_read_case_insensitively() -> None:
    """``FAILURE`` is the state failure."""
    assert parse_result({"status": {"state": "FAILURE"}}).status == Status(state="failure")


def test_an_unknown_status_state_is_kept_for_the_policy_to_drop() -> None:
    """Upstream drops ``great`` at policy time (``status: invalid state``), so parsing keeps it."""
    status = parse_result({"status": {"state": " Great ", "description": "d"}}).status
    assert status == Status(state="great", description="d")
    assert "great" not in STATUS_STATES


def test_the_commit_states_are_the_four_a_forge_accepts() -> None:
    """STATUS_STATES stays exported for the policy gate."""
    assert set(STATUS_STATES) == {"success", "failure", "pending", "error"}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([1, 2], "the worker's answer is a list [1, 2], not a JSON object"),
        ("done", "the worker's answer is a string 'done', not a JSON object"),
        (None, "the worker's answer is null, not a JSON object"),
        (7, "the worker's answer is a number 7, not a JSON object"),
        ({"output": 5}, '"output" is a number 5; expected a string'),
        ({"output": True}, '"output" is a boolean true; expected a string'),
        ({"comment": "hi"}, "\"comment\" is a string 'hi'; expected an object"),
        ({"comment": {"body": ["x"]}}, '"comment.body" is a list ["x"]; expected a string'),
        ({"comment": {"target": "pr:1"}}, '"comment" has no body: {"target": "pr:1"}'),
        ({"comment": {"body": "  "}}, '"comment" has no body: {"body": "  "}'),
        ({"labels": "bug"}, "\"labels\" is a string 'bug'; expected an object"),
        ({"labels": {"add": 3}}, '"labels.add" is a number 3; expected a list of label names'),
        ({"labels": ["ok", ""]}, "\"labels.add[1]\" is a string ''; expected a non-empty label"),
        ({"labels": {"remove": [{}]}}, '"labels.remove[0]" is an object {}; expected a non-empty'),
        ({"status": {}}, '"status" has no state: {}'),
        ({"status": {"state": " "}}, '"status" has no state: {"state": " "}'),
        ({"status": {"state": 1}}, '"status.state" is a number 1; expected a string'),
        ({"status": {"state": "success", "context": 2}}, '"status.context" is a number 2'),
        ({"commit": {"message": "m"}}, '"commit" has no diff: {"message": "m"}'),
        ({"commit": []}, '"commit" is a list []; expected an object'),
        ({"metadata": "x"}, "\"metadata\" is a string 'x'; expected an object"),
        (
            {"metadata": {"exit_code": "1"}},
            "\"metadata.exit_code\" is a string '1'; expected a whole",
        ),
        (
            {"metadata": {"exit_code": 1.5}},
            '"metadata.exit_code" is a number 1.5; expected a whole',
        ),
        ({"metadata": {"exit_code": True}}, '"metadata.exit_code" is a boolean true; expected'),
    ],
)
def test_a_malformed_answer_is_refused_quoting_the_fault(answer: Any, message: str) -> None:
    """Each wrong shape is refused; the message names the field and quotes the value."""
    with pytest.raises(ResultError) as caught:
        parse_result(answer)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.hint


def test_a_long_bad_value_is_quoted_shortened() -> None:
    """A huge wrong value is cut to QUOTE_LIMIT characters with an ellipsis."""
    with pytest.raises(ResultError) as caught:
        parse_result({"output": ["x" * 1000]})
    quoted = caught.value.message.split(" is a list ", 1)[1].split("; expected")[0]
    assert len(quoted) == QUOTE_LIMIT
    assert quoted.endswith("…")


def test_quote_leaves_short_values_whole() -> None:
    """Strings are quoted with repr, other values as JSON, non-ASCII kept."""
    assert quote("é") == "'é'"
    assert quote({"a": "é"}) == '{"a": "é"}'
    assert quote(None) == "null"


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        ({"error": "model unavailable"}, "the worker reported an error: model unavailable"),
        ({"error": {"message": "quota"}}, "the worker reported an error: quota"),
        ({"error": {"code": 9}}, 'the worker reported an error: {"code": 9}'),
        (
            {"output": " task timed out\n", "metadata": {"exit_code": 1}},
            "the worker reported exit code 1: task timed out",
        ),
        ({"metadata": {"exit_code": 137}}, "the worker reported exit code 137"),
        ({"output": "x", "metadata": {"exit_code": 1}, "error": "e"}, "the worker reported an "),
    ],
)
def test_failure_of_says_why_a_well_formed_answer_failed(answer: Any, failure: str) -> None:
    """An error field or an exit code other than 0 is a failure, described in words."""
    assert failure_of(parse_result(answer)).startswith(failure)


@pytest.mark.parametrize(
    "answer",
    [
        {"output": "fine"},
        {"metadata": {"exit_code": 0}},
        {"metadata": {"exit_code": None}},
        {"error": ""},
        {"error": False},
    ],
)
def test_failure_of_is_empty_for_a_success(answer: Any) -> None:
    """Exit code 0, no exit code, or an empty error are not failures."""
    assert failure_of(parse_result(answer)) == ""


def test_failure_of_shortens_a_long_output() -> None:
    """The output quoted after an exit code is cut to QUOTE_LIMIT characters."""
    failure = failure_of(parse_result({"output": "y" * 500, "metadata": {"exit_code": 2}}))
    assert failure == "the worker reported exit code 2: " + "y" * QUOTE_LIMIT


def test_the_error_field_is_kept_in_the_result() -> None:
    """A failure's own report is stored, as text."""
    assert parse_result({"error": {"message": "quota"}}).error == "quota"
    assert result_json(parse_result({"error": ["a"]})) == {"error": '["a"]'}
