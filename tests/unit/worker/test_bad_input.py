"""Whatever a worker or secrets file holds, the answer is our error with a place, never a crash."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mecha.errors import FileError, SecretsFileError, WorkerFileError
from mecha.secrets import parse_secrets
from mecha.worker.files import read_worker
from mecha.worker.parser import parse_worker
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


def editor_lines(text: str) -> list[str]:
    """The lines an editor shows: broken at \r\n, \r and \n; a leading BOM hidden."""
    return re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))


def _check_places(error: FileError, text: str) -> None:
    """Every problem is at a place an editor can show: a line of the text, a column on it
    (at most one past its end)."""
    lines = editor_lines(text)
    for problem in error.problems:
        assert 1 <= problem.location.line <= len(lines), problem
        assert 1 <= problem.location.column <= len(lines[problem.location.line - 1]) + 1, problem
        assert problem.message, problem


@settings(max_examples=400)
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


@settings(max_examples=300)
@given(st.text(max_size=200))
@example("-\r0")  # libyaml said line 3 of a text an editor shows on 2
@example("a: 1\x85b: [\u2028")  # line breaks to YAML 1.1, not to editors
@example("\ufeffa: [")
def test_any_text_gives_a_worker_or_located_problems(text: str) -> None:
    """Arbitrary characters, broken YAML included: only FileError, with places."""
    try:
        parse_worker(load_yaml(text, file="w.yml"), environ={})
    except FileError as exc:
        _check_places(exc, text)


@settings(max_examples=300)
@given(_documents(SECRET_KEYS))
def test_any_structure_gives_secrets_or_located_problems(data: Any) -> None:
    """Random shapes of secrets keys and values: Secrets, or SecretsFileError with places."""
    text = yaml.safe_dump(data)
    try:
        parse_secrets(text, file="s.yml")
    except SecretsFileError as exc:
        _check_places(exc, text)


# ---------------------------------------------------------------- the same places as an editor

#: each break an editor (and YAML 1.2) ends a line at
NEWLINES = pytest.mark.parametrize("nl", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
#: a worker whose line 4 has a misspelt key at column 3 and line 5 a wrong type at column 10
WORKER = ["name: w", "docker:", "  image: img", "  imgae: x", "timeout: [1]", ""]


@NEWLINES
def test_a_worker_problem_is_where_an_editor_shows_it(nl: str) -> None:
    """parse_worker's places for LF, CRLF and CR files are the same line and column."""
    with pytest.raises(WorkerFileError) as caught:
        parse_worker(load_yaml(nl.join(WORKER), file="w.yml"), environ={})
    assert [str(p.location) for p in caught.value.problems] == ["w.yml:4:3", "w.yml:5:10"]


@NEWLINES
def test_a_worker_file_problem_is_where_an_editor_shows_it(nl: str, tmp_path: Path) -> None:
    """The same through the file as `mecha worker validate` reads it (bytes on disk)."""
    path = tmp_path / "w.yml"
    path.write_bytes(nl.join(WORKER).encode())
    with pytest.raises(WorkerFileError) as caught:
        read_worker(path, environ={}, home=tmp_path)
    assert [p.location.line for p in caught.value.problems] == [4, 5]
    path.write_bytes(f"-{nl}0".encode())  # what the property test found
    with pytest.raises(WorkerFileError) as caught:
        read_worker(path, environ={}, home=tmp_path)
    assert f"{path}:2:2: YAML syntax error" in str(caught.value)


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\u2029"], ids=["NEL", "LS", "PS"])
def test_a_yaml_1_1_line_break_leaves_the_place_on_its_line(odd: str) -> None:
    """PyYAML reads NEL, LS and PS as line breaks; an editor shows one line, and so do we."""
    text = f"name: w{odd}docker: {{image: img, imgae: x}}\n"
    with pytest.raises(WorkerFileError) as caught:
        parse_worker(load_yaml(text, file="w.yml"), environ={})
    [problem] = caught.value.problems
    assert str(problem.location) == "w.yml:1:30"
    assert editor_lines(text)[0][problem.location.column - 1 :].startswith("imgae")
