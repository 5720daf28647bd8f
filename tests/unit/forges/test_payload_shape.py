"""Wrong-shape payloads (issue 14, item 6): a GitHub or GitLab delivery of an event Mecha
reads whose fields are missing or of the wrong JSON type is refused with the JSON path;
unknown events are taken as before; every field the parsers read is in the shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecha.errors import WebhookError
from mecha.event import Delivery
from mecha.forges import payload_shape
from mecha.forges.github import webhook as github_webhook
from mecha.forges.github.webhook import parse_github
from mecha.forges.gitlab import webhook as gitlab_webhook
from mecha.forges.gitlab.webhook import parse_gitlab
from mecha.forges.payload_shape import Shape
from tests.sample_payloads import load_sample

GITLAB_EVENTS = {"merge_request.open": "Merge Request Hook", "note": "Note Hook",
                 "issue.open": "Issue Hook", "push": "Push Hook"}  # fmt: skip


def sample(forge: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    body, headers = load_sample(forge, name)
    payload: dict[str, Any] = json.loads(body)
    return payload, headers


def parse(forge: str, payload: Any, headers: dict[str, str]) -> Delivery:
    body = json.dumps(payload).encode()
    return (parse_github if forge == "github" else parse_gitlab)(body, headers)


def refusal(forge: str, payload: Any, headers: dict[str, str]) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        parse(forge, payload, headers)
    assert caught.value.status == 400
    return caught.value


def pull_request(**changes: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The pull_request.opened sample with top-level fields replaced (None: kept as null)."""
    payload, headers = sample("github", "pull_request.opened")
    return {**payload, **changes}, headers


# ---------------------------------------------------------------- the cases


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pull_request": None}, "$.pull_request: expected an object, got null"),
        ({"pull_request": [1]}, "$.pull_request: expected an object, got an array"),
        ({"repository": "x"}, "$.repository: expected an object, got a string"),
        ({"action": {}}, "$.action: expected a string, got an object"),
        ({"action": None}, "$.action: expected a string, got null"),
        ({"number": "2"}, "$.number: expected an integer, got a string"),
        ({"sender": {"login": 5}}, "$.sender.login: expected a string, got an integer"),
        ({"installation": {"id": 1.5}},
         "$.installation.id: expected an integer, got a number (not a 64-bit integer)"),
    ],
)  # fmt: skip
def test_a_github_field_of_the_wrong_type_is_refused_with_its_path(
    change: dict[str, Any], message: str
) -> None:
    payload, headers = pull_request(**change)
    error = refusal("github", payload, headers)
    assert error.message == message
    assert "GitHub sends pull_request deliveries" in error.hint
    assert "mecha event samples" in error.hint


def test_an_empty_github_pull_request_names_what_it_lacks() -> None:
    _, headers = pull_request()
    assert refusal("github", {}, headers).message == (
        "$.action: expected a string, got nothing (it is missing); "
        "$.pull_request: expected an object, got nothing (it is missing)"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("number", "2", "$.pull_request.number: expected an integer, got a string"),
        ("title", ["t"], "$.pull_request.title: expected a string, got an array"),
        ("draft", "false", "$.pull_request.draft: expected a boolean, got a string"),
        ("labels", {"name": "bug"}, "$.pull_request.labels: expected an array, got an object"),
        ("labels", [{"name": "bug"}, "ui"],
         "$.pull_request.labels[1]: expected an object, got a string"),
        ("head", {"sha": 1, "ref": "x", "repo": None},
         "$.pull_request.head.sha: expected a string, got an integer"),
        ("base", {"sha": "a", "ref": "x", "repo": None},
         "$.pull_request.base.repo: expected an object, got null"),
    ],
)  # fmt: skip
def test_a_nested_github_field_of_the_wrong_type_is_refused(
    field: str, value: Any, message: str
) -> None:
    payload, headers = pull_request()
    payload["pull_request"][field] = value
    assert refusal("github", payload, headers).message == message


def test_at_most_three_problems_are_listed() -> None:
    payload, headers = pull_request(action=1, number="1", repository=[], sender=True)
    message = refusal("github", payload, headers).message
    assert message.count("$.") == 3 and message.endswith("; and more")


def test_nulls_github_sends_are_taken() -> None:
    payload, headers = pull_request()
    payload["pull_request"].update(body=None)
    payload["pull_request"]["head"]["repo"] = None  # a deleted fork
    attrs = parse("github", payload, headers).attrs
    assert (attrs["body"], attrs["head_repo"], attrs["is_fork"]) == ("", "", True)


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        ("issues", {"action": "opened", "issue": "x"}, "$.issue: expected an object, got a string"),
        ("issue_comment", {"action": "created", "issue": {"number": 1}},
         "$.comment: expected an object, got nothing (it is missing)"),
        ("pull_request_review", {"action": "submitted", "pull_request": {}, "review": []},
         "$.review: expected an object, got an array"),
        ("push", {"ref": "refs/heads/main", "commits": [{"id": 7}]},
         "$.commits[0].id: expected a string, got an integer"),
    ],
)  # fmt: skip
def test_other_github_events_are_checked_too(
    event: str, payload: dict[str, Any], message: str
) -> None:
    headers = {"x-github-event": event, "x-github-delivery": "d-1"}
    assert refusal("github", payload, headers).message == message


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("star", {"action": {}, "repository": "x"}),
        ("pull_request_new_kind", {}),
        ("ping", {"zen": "Keep it logically awesome.", "hook": None}),
    ],
)
def test_an_unknown_github_event_is_taken_as_before(event: str, payload: dict[str, Any]) -> None:
    headers = {"x-github-event": event, "x-github-delivery": "d-1"}
    assert parse("github", payload, headers).type == event


def test_an_unknown_action_of_a_known_event_is_taken() -> None:
    payload, headers = pull_request(action="some_future_action")
    assert parse("github", payload, headers).type == "pull_request.some_future_action"


# ---------------------------------------------------------------- GitLab


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("merge_request.open", {"object_attributes": None},
         "$.object_attributes: expected an object, got null"),
        ("merge_request.open", {"object_attributes": [1]},
         "$.object_attributes: expected an object, got an array"),
        ("merge_request.open", {"project": "x"}, "$.project: expected an object, got a string"),
        ("merge_request.open", {"labels": {}}, "$.labels: expected an array, got an object"),
        ("issue.open", {"object_attributes": "x"},
         "$.object_attributes: expected an object, got a string"),
        ("push", {"commits": None}, "$.commits: expected an array, got null"),
        ("push", {"user_username": None}, "$.user_username: expected a string, got null"),
        ("note", {"merge_request": 3}, "$.merge_request: expected an object, got an integer"),
    ],
)  # fmt: skip
def test_a_gitlab_field_of_the_wrong_type_is_refused(
    name: str, change: dict[str, Any], message: str
) -> None:
    payload, headers = sample("gitlab", name)
    error = refusal("gitlab", {**payload, **change}, headers)
    assert error.message == message
    assert f"GitLab sends {GITLAB_EVENTS[name]} deliveries" in error.hint


def test_an_empty_merge_request_hook_lacks_its_object() -> None:
    _, headers = sample("gitlab", "merge_request.open")
    assert refusal("gitlab", {}, headers).message == (
        "$.object_attributes: expected an object, got nothing (it is missing)"
    )


def test_nested_gitlab_fields_are_checked() -> None:
    payload, headers = sample("gitlab", "merge_request.open")
    payload["object_attributes"]["last_commit"] = {"id": None}
    assert refusal("gitlab", payload, headers).message == (
        "$.object_attributes.last_commit.id: expected a string, got null"
    )


def test_nulls_gitlab_sends_are_taken() -> None:
    payload, headers = sample("gitlab", "merge_request.open")
    payload["object_attributes"].update(
        description=None, last_commit=None, source=None, source_project_id=None, action=None
    )
    attrs = parse("gitlab", payload, headers).attrs
    assert (attrs["body"], attrs["head_sha"], attrs["head_repo"]) == ("", "", "")


def test_a_note_is_checked_for_the_object_it_is_on_only() -> None:
    payload, headers = sample("gitlab", "note")
    note = {**payload["object_attributes"], "noteable_type": "Issue"}
    changed = {**payload, "object_attributes": note, "issue": {"iid": 4}, "merge_request": None}
    assert parse("gitlab", changed, headers).attrs["number"] == 4
    changed["issue"] = {"iid": "4"}
    assert refusal("gitlab", changed, headers).message == (
        "$.issue.iid: expected an integer, got a string"
    )


def test_the_actor_falls_back_to_user_username_when_it_is_missing() -> None:
    payload, headers = sample("gitlab", "push")
    del payload["user_username"]
    payload["user"] = {"username": "mike"}
    assert parse("gitlab", payload, headers).actor == "mike"


def test_an_unknown_gitlab_hook_is_taken_as_before() -> None:
    _, headers = sample("gitlab", "push")
    headers["x-gitlab-event"] = "Pipeline Hook"
    delivery = parse("gitlab", {"object_attributes": None, "project": "x"}, headers)
    assert delivery.type == "pipeline_hook"


# ---------------------------------------------------------------- every read field is shaped


class Reads(dict[str, Any]):
    """A payload object that records the paths the parser reads with ``get``."""

    def __init__(self, data: dict[str, Any], path: str, seen: set[str]) -> None:
        super().__init__({k: _wrap(v, f"{path}.{k}".lstrip("."), seen) for k, v in data.items()})
        self.path, self.seen = path, seen

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(f"{self.path}.{key}".lstrip("."))
        return super().get(key, default)


def _wrap(value: Any, path: str, seen: set[str]) -> Any:
    if isinstance(value, dict):
        return Reads(value, path, seen)
    if isinstance(value, list):
        return [_wrap(item, f"{path}[]", seen) for item in value]
    return value


def shaped_paths(shape: Shape, path: str = "") -> Iterator[str]:
    for key, field in shape.fields:
        where = f"{path}.{key}".lstrip(".")
        yield where
        yield from shaped_paths(field, where)
    if shape.items is not None:
        yield from shaped_paths(shape.items, f"{path}[]")


def _variants() -> Iterator[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """Each sample, plus the events and fallbacks the samples do not reach."""
    for name in ("pull_request.opened", "issues.opened", "issue_comment.created", "push"):
        payload, headers = sample("github", name)
        yield "github", headers["x-github-event"], payload, headers
    payload, headers = sample("github", "pull_request.opened")
    payload["repository"]["full_name"] = ""  # owner.login and name are read instead
    for event in ("pull_request", "pull_request_review_comment", "pull_request_review"):
        extra = {"comment": {"body": "b"}, "review": {"body": "b"}}
        yield "github", event, {**payload, **extra}, {**headers, "x-github-event": event}
    for name, event in GITLAB_EVENTS.items():
        payload, headers = sample("gitlab", name)
        yield "gitlab", event, {**payload, "user_username": ""}, headers
    payload, headers = sample("gitlab", "note")
    for noteable in ("Issue", "Commit"):
        note = {**payload["object_attributes"], "noteable_type": noteable}
        yield "gitlab", "Note Hook", {**payload, "object_attributes": note,
                                      "issue": {}, "commit": {}}, headers  # fmt: skip
    payload, headers = sample("gitlab", "issue.open")
    payload["object_attributes"]["labels"] = []  # the top-level labels are read instead
    yield "gitlab", "Issue Hook", payload, headers


@pytest.mark.parametrize(("forge", "event", "payload", "headers"), list(_variants()))
def test_every_field_a_parser_reads_is_in_the_shape(
    forge: str, event: str, payload: dict[str, Any], headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seen: set[str] = set()
    module = github_webhook if forge == "github" else gitlab_webhook
    monkeypatch.setattr(module, "load_json_object", lambda body, what: Reads(payload, "", seen))
    parse(forge, {}, headers)
    if forge == "github":
        shape = payload_shape.GITHUB[event]
    else:
        kind = gitlab_webhook.EVENT_KINDS[event]
        shape = payload_shape.gitlab_shape(kind, payload)
    assert seen, "the recording saw no reads"
    assert seen - set(shaped_paths(shape)) == set()


# ---------------------------------------------------------------- any value in a read field

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def _shape_of(forge: str, name: str) -> Shape:
    payload, headers = sample(forge, name)
    if forge == "github":
        return payload_shape.GITHUB[headers["x-github-event"]]
    return payload_shape.gitlab_shape(gitlab_webhook.EVENT_KINDS[GITLAB_EVENTS[name]], payload)


SAMPLES = [("github", "pull_request.opened"), ("github", "issue_comment.created"),
           ("github", "push"), *(("gitlab", name) for name in GITLAB_EVENTS)]  # fmt: skip
#: (forge, sample, a dotted path in its shape outside arrays)
CASES = [
    (forge, name, path)
    for forge, name in SAMPLES
    for path in shaped_paths(_shape_of(forge, name))
    if "[]" not in path
]


def _field(shape: Shape, path: str) -> Shape:
    for key in path.split("."):
        shape = dict(shape.fields)[key]
    return shape


@settings(max_examples=1000)
@given(case=st.sampled_from(CASES), value=JSON)
def test_any_json_in_a_read_field_is_taken_or_refused_with_its_path(
    case: tuple[str, str, str], value: Any
) -> None:
    """Never a crash; a value of the wrong JSON type there is refused, naming that path."""
    forge, name, path = case
    payload, headers = sample(forge, name)
    *parents, last = path.split(".")
    holder = payload
    for key in parents:
        if not isinstance(holder.get(key), dict):
            holder[key] = {}
        holder = holder[key]
    holder[last] = value
    field = _field(_shape_of(forge, name), path)
    kind = payload_shape.json_kind(value)
    wrong = kind != field.kind and not (kind == "null" and field.null)
    try:
        parse(forge, payload, headers)
    except WebhookError as error:
        assert error.status == 400 and error.hint
        assert error.message.startswith("$."), error.message
        assert not wrong or error.message.startswith(f"$.{path}: expected "), error.message
    else:
        assert not wrong
