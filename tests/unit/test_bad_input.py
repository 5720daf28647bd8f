"""Whatever a worker or secrets file holds, the answer is our error with a place, never a crash."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mecha.errors import FileError, SecretsFileError, WorkerFileError
from mecha.secrets import parse_secrets
from mecha.worker_parser import parse_worker
from mecha.yaml_doc import load_yaml

WORKER_KEYS = [
    "name",
    "endpoint",
    "docker",
    "adapter",
    "events",
    "policy",
    "timeout",
    "image",
    "host",
    "cwd",
    "credentials",
    "resources",
    "cpu",
    "memory",
    "pids",
    "lifecycle",
    "env",
    "token",
    "api_key",
    "expose",
    "labels",
    "plugins",
    "type",
    "upstream",
    "model",
    "source",
    "on",
    "filter",
    "prompt",
    "auto",
    "HOME",
    "imgae",
]
SECRET_KEYS = [
    "tokens",
    "github",
    "gitlab",
    "slack",
    "telegram",
    "sources",
    "claude",
    "token",
    "webhook_secret",
    "signing_token",
    "url",
    "default",
    "secret_token",
    "tokns",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "",
            "x",
            "10m",
            "-1G",
            "http://h",
            "unix:///s",
            "claude.default",
            "${X}",
            "${1}",
            "169.254.169.254",
            "sk-" + "a" * 30,
            "persistent",
            "ollama",
            "~",
        ]
    ),
    st.text(max_size=12),
)


def _documents(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(keys), inner, max_size=6),
        ),
        max_leaves=25,
    )


def _check_places(error: FileError, text: str) -> None:
    lines = text.count("\n") + 2
    for problem in error.problems:
        assert 1 <= problem.location.line <= lines, problem
        assert problem.location.column >= 1, problem
        assert problem.message, problem


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents(WORKER_KEYS))
def test_any_structure_gives_a_worker_or_located_problems(data: Any) -> None:
    """Random shapes of worker keys and values: a spec, or WorkerFileError with places."""
    text = yaml.safe_dump(data)
    try:
        parse_worker(load_yaml(text, file="w.yml"), environ={"X": "v"})
    except WorkerFileError as exc:
        _check_places(exc, text)
    except FileError as exc:  # load_yaml's own (e.g. non-text keys) is fine too
        _check_places(exc, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_worker_or_located_problems(text: str) -> None:
    """Arbitrary characters, broken YAML included: only FileError, with places."""
    try:
        parse_worker(load_yaml(text, file="w.yml"), environ={})
    except FileError as exc:
        _check_places(exc, text)


@settings(max_examples=300, deadline=None)
@given(_documents(SECRET_KEYS))
def test_any_structure_gives_secrets_or_located_problems(data: Any) -> None:
    """Random shapes of secrets keys and values: Secrets, or SecretsFileError with places."""
    text = yaml.safe_dump(data)
    try:
        parse_secrets(text, file="s.yml")
    except SecretsFileError as exc:
        _check_places(exc, text)
