"""Prompt templates: syntax detection, Jinja2 in its sandbox, missing keys, the load-time check."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mecha.errors import MissingKey, TemplateError, WorkerFileError
from mecha.template.prompt import PromptTemplate, compile_template
from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml
from tests.conftest import EXAMPLES

EVENT: dict[str, Any] = {
    "actor": "alice",
    "subject": "acme/app#7",
    "source": "github",
    "type": "pull_request.opened",
    "number": 7,
    "title": "Fix login",
    "body": "Closes #3",
    "diff": "+a\n-b\n",
    "file_list": ["src/a.py", "src/b.py"],
    "labels": "bug, ui",
    "draft": False,
    "pr": {"title": "Fix login", "head": {"ref": "fix"}},
}


def render(text: str, data: dict[str, Any] = EVENT) -> str:
    return compile_template(text).render(data)


def refused(text: str) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        compile_template(text)
    return caught.value


def render_error(text: str, data: dict[str, Any] = EVENT) -> TemplateError:
    template = compile_template(text)
    with pytest.raises(TemplateError) as caught:
        template.render(data)
    return caught.value


# ---------------------------------------------------------------- which syntax


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ("", "go"),
        ("plain text, no actions", "go"),
        ("Review:\n\n{{.diff}}", "go"),
        ("{{ .pr.title }}", "go"),
        ("{{if .draft}}draft{{end}}", "go"),
        ('{{printf "%s" .title}}', "go"),
        ("{{ true }}", "go"),
        ("{{ title }}", "jinja"),
        ("{{ pr.title }}", "jinja"),
        ("{{- title -}}", "jinja"),
        ("{{ title | upper }}", "jinja"),
        ("{{ file_list | length }}", "jinja"),
        ("{% if draft %}d{% endif %}", "jinja"),
        ("{# a note #}plain", "jinja"),
        ("{# {{.title}} #}{{ title }}", "jinja"),
    ],
)
def test_the_syntax_is_detected(text: str, syntax: str) -> None:
    assert compile_template(text).syntax == syntax


def test_a_go_looking_template_with_a_mistake_reports_the_go_mistake() -> None:
    """Jinja2 would accept {{if .x}} as the attribute x of a variable called if."""
    error = refused("{{if .x}}no end")
    assert error.message == "template line 1: {{if}} has no {{end}}"
    assert error.hint == "close it with {{end}}"


@pytest.mark.parametrize(
    "text",
    ["{{.x}}{{ name }}", "{{- .x}}{{ y | upper }}", "{{$}}{{ name }}", "{{/* c */}}{{ name }}"],
)
def test_go_and_jinja_actions_cannot_be_mixed(text: str) -> None:
    assert 'function "' in refused(text).message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("{{ name }", 1, "unexpected '}'"),
        ("a\n{% if x %}", 2, "Unexpected end of template"),
        ("a\n{% for %}", 2, "Expected an expression"),
        ("a\nb\n{% endif %}", 3, "unknown tag 'endif'"),
        ("{{ x | nosuchfilter }}", 1, "No filter named 'nosuchfilter'"),
        ("{{ x }}\n{{ y ", 2, "unexpected end of template"),
    ],
)
def test_jinja_mistakes_are_refused_naming_the_line(text: str, line: int, fragment: str) -> None:
    error = refused(text)
    assert error.message.startswith(f"template line {line}: ")
    assert fragment in error.message
    assert "Jinja2" in error.hint


def test_a_compiled_template_is_frozen_and_keeps_its_text() -> None:
    template = compile_template("{{.title}}")
    assert isinstance(template, PromptTemplate)
    assert (template.source, template.syntax) == ("{{.title}}", "go")
    with pytest.raises(dataclasses.FrozenInstanceError):
        template.syntax = "jinja"  # type: ignore[misc]


def test_compiling_the_same_text_again_gives_an_equal_template() -> None:
    assert compile_template("{{ title }}") == compile_template("{{ title }}")


def test_one_compiled_template_renders_many_events() -> None:
    """Compile once, render a thousand times: every render sees only its own event."""
    template = compile_template(
        "#{{.number}} {{.title}}\n{{range .file_list}}- {{.}}\n{{end}}{{if .draft}}(draft){{end}}"
    )
    for n in range(1000):
        data = {"number": n, "title": f"t{n}", "file_list": [f"f{n}"], "draft": n % 2 == 0}
        expected = f"#{n} t{n}\n- f{n}\n" + ("(draft)" if n % 2 == 0 else "")
        assert template.render(data) == expected


# ---------------------------------------------------------------- Jinja2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ title }}", "Fix login"),
        ("{{ pr.title }} on {{ pr['head']['ref'] }}", "Fix login on fix"),
        ("{% for f in file_list %}{{ f }};{% endfor %}", "src/a.py;src/b.py;"),
        ("{% if draft %}d{% elif number > 5 %}big{% else %}r{% endif %}", "big"),
        ("{{ title | upper }}", "FIX LOGIN"),
        ("{{ file_list | join(', ') }}", "src/a.py, src/b.py"),
        ("{{ number + 1 }}", "8"),
        ("{{ labels.split(', ') | length }}", "2"),
        ("{{ nope | default('none') }}", "none"),
        ("{{ nope is defined }} {{ title is defined }}", "False True"),
        ("{% if nope %}y{% else %}n{% endif %}", "n"),
        ("{% if nope.deeper %}y{% else %}n{% endif %}", "n"),
        ("{% if pr.nope %}y{% else %}n{% endif %}", "n"),
        ("{{ nope or 'fallback' }}", "fallback"),
        ("{{ body }}\n", "Closes #3\n"),
        ("<b>{{ '<i>&' }}</b>", "<b><i>&</b>"),
    ],
)
def test_jinja_forms(text: str, expected: str) -> None:
    template = compile_template(text)
    assert template.syntax == "jinja"
    assert template.render(EVENT) == expected


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("{{ nope }}", "nope", 1),
        ("a\n{{ pr.nope }}", "nope", 2),
        ("{{ nope.deeper }}", "nope", 1),
        ("{% for x in nope %}{% endfor %}", "nope", 1),
        ("{{ nope | length }}", "nope", 1),
        ("{{ nope | upper }}", "nope", 1),
        ("{{ nope + 1 }}", "nope", 1),
        ("{{ 1 + nope }}", "nope", 1),
        ("a\nb\n{{ nope() }}", "nope", 3),
    ],
)
def test_jinja_missing_names_fail_naming_them(text: str, key: str, line: int) -> None:
    error = render_error(text)
    assert isinstance(error, MissingKey)
    assert error.key == key
    assert error.message == (
        f"template line {line}: the template uses {key!r}, which this event does not have"
    )
    assert "is defined" in error.hint


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ title.__class__ }}",
        "{{ pr.__class__.__base__ }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ joiner.__init__ }}",
        "{{ self.__init__ }}",
        "{{ title | attr('__class__') }}",
        "{{ '{0.__class__}'.format(title) }}",
        "{{ file_list.append('x') }}",
        "{{ pr.update({'title': 'x'}) }}",
        "{{ pr.pop('title') }}",
    ],
)
def test_jinja_cannot_reach_python_internals_or_change_the_data(text: str) -> None:
    data = {"title": "t", "file_list": ["a"], "pr": {"title": "t"}}
    error = render_error(text, data)
    assert not isinstance(error, MissingKey)
    assert "the template tried something unsafe" in error.message
    assert data == {"title": "t", "file_list": ["a"], "pr": {"title": "t"}}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("a\n{{ title + 1 }}", "TypeError"),
    ],
)
def test_jinja_runtime_errors_are_template_errors_with_the_line(text: str, fragment: str) -> None:
    error = render_error(text)
    assert error.message.startswith(f"template line {text.count(chr(10)) + 1}: {fragment}")


@pytest.mark.parametrize(
    "text",
    [
        "{{.secret}} {% for x in y %}{% endfor %} {{ name }}",
        "{{ secret }} {# #} {% raw %}",
        "{{ '{{' }} }} {%",
    ],
)
def test_the_events_text_is_printed_never_run_by_jinja(text: str) -> None:
    data = {"body": text, "secret": "leaked", "list": [text]}
    assert render("{{ body }}", data) == text
    assert render("{% for x in list %}{{ x }}{% endfor %}", data) == text
    assert render("{{ body | safe }}", data) == text


# ---------------------------------------------------------------- every input


def _compiles_and_renders_or_is_refused(text: str) -> None:
    try:
        template = compile_template(text)
    except TemplateError:
        return
    with contextlib.suppress(TemplateError):
        assert isinstance(template.render(EVENT), str)


@given(st.text(max_size=60))
def test_any_text_compiles_or_is_refused_with_a_template_error(text: str) -> None:
    _compiles_and_renders_or_is_refused(text)


_GO_WORDS = "{{ }} . .title .pr.head $ $x := ( ) if else end range with not and eq len index printf"
_GO_PIECES = st.sampled_from(
    [*_GO_WORDS.split(), "{{- ", " -}}", "|", '"%s"', "3", " ", "\n", "/*", "*/"]
)


@given(st.lists(_GO_PIECES, max_size=20).map("".join))
def test_any_go_like_text_compiles_or_is_refused_with_a_template_error(text: str) -> None:
    _compiles_and_renders_or_is_refused(text)


# ---------------------------------------------------------------- worker files


MANAGED = "name: w\ndocker:\n  image: img\n"


def _worker(prompt: str) -> str:
    return MANAGED + "events:\n  - source: github\n    on: [push]\n    prompt: " + prompt + "\n"


def test_a_worker_file_with_a_broken_prompt_is_refused_with_a_located_problem() -> None:
    with pytest.raises(WorkerFileError) as caught:
        parse_worker(load_yaml(_worker('"{{if .x}}no end"'), file="w.yml"), environ={})
    [problem] = caught.value.problems
    assert str(problem) == (
        "w.yml:7:13: events[0].prompt: template line 1: {{if}} has no {{end}}\n"
        "    hint: close it with {{end}}"
    )


@pytest.mark.parametrize(
    "prompt",
    ['"{{.diff}}"', '"{{ diff }}"', '"{% if diff %}{{ diff }}{% endif %}"', "|\n      a\n      b"],
)
def test_worker_files_take_prompts_in_either_syntax(prompt: str) -> None:
    parsed = parse_worker(load_yaml(_worker(prompt), file="w.yml"), environ={})
    assert parsed.spec.events[0].prompt


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.name)
def test_every_example_prompt_compiles(path: Path) -> None:
    for rule in yaml.safe_load(path.read_text()).get("events", []):
        compile_template(rule["prompt"])
