"""Go text/template prompts: every form, Go's printing, trimming, missing keys and mistakes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from mecha.errors import MissingKey, TemplateError
from mecha.template.prompt import compile_template

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
    "pr": {
        "title": "Fix login",
        "head": {"ref": "fix"},
        "files": [{"path": "a.py", "additions": 3}, {"path": "b.py", "additions": 0}],
    },
    "counts": {"b": 2, "a": 1},
    "empty": "",
    "zero": 0,
    "none": None,
    "ratio": 0.5,
}


def render(text: str, data: Mapping[str, Any] = EVENT) -> str:
    template = compile_template(text)
    assert template.syntax == "go"
    return template.render(data)


def missing(text: str, data: Mapping[str, Any] = EVENT) -> MissingKey:
    with pytest.raises(MissingKey) as caught:
        render(text, data)
    return caught.value


def refused(text: str) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        compile_template(text)
    return caught.value


# ---------------------------------------------------------------- text and values


@pytest.mark.parametrize("text", ["", "plain", "a } b {", "50% off", "{ {.x} }", "}}", "line\n"])
def test_text_without_actions_is_printed_as_it_is(text: str) -> None:
    assert render(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.title}}", "Fix login"),
        ("{{ .title }}", "Fix login"),
        ("#{{.number}}: {{.title}}", "#7: Fix login"),
        ("{{.pr.head.ref}}", "fix"),
        ("{{.labels}}", "bug, ui"),
        ("{{.draft}}", "false"),
        ("{{.zero}}", "0"),
        ("{{.ratio}}", "0.5"),
        ("{{.file_list}}", "[src/a.py src/b.py]"),
        ("{{.counts}}", "map[a:1 b:2]"),
        ("{{.pr.head}}", "map[ref:fix]"),
        ("{{.none}}", "<no value>"),
        ("{{.empty}}", ""),
    ],
)
def test_fields_print_as_go_prints_them(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
        ([1, "a", None, True], "[1 a <nil> true]"),
        ({"k": [1, 2]}, "map[k:[1 2]]"),
    ],
)
def test_numbers_and_collections_print_like_go_fmt(value: object, expected: str) -> None:
    assert render("{{.v}}", {"v": value}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{with .pr.head}}{{.}}{{end}}", "map[ref:fix]"),
        ("{{with .pr}}{{$.number}}{{end}}", "7"),
        ("{{with .pr.head}}{{$.pr.title}}{{end}}", "Fix login"),
        ("{{range .file_list}}{{$.actor}}:{{.}} {{end}}", "alice:src/a.py alice:src/b.py "),
        ("{{$.title}}", "Fix login"),
    ],
)
def test_dot_is_the_current_value_and_dollar_the_whole_event(text: str, expected: str) -> None:
    assert render(text) == expected


# ---------------------------------------------------------------- if / with


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"a": 1, "b": 1}, "A"),
        ({"a": 0, "b": 1}, "B"),
        ({"a": 0, "b": 0}, "neither"),
    ],
)
def test_if_else_if_else_picks_the_first_true_branch(data: dict[str, int], expected: str) -> None:
    assert render("{{if .a}}A{{else if .b}}B{{else}}neither{{end}}", data) == expected


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        ("", False),
        (0, False),
        (0.0, False),
        (False, False),
        (None, False),
        ([], False),
        ({}, False),
        ("x", True),
        ("false", True),
        (1, True),
        (-1, True),
        (0.1, True),
        (True, True),
        ([0], True),
        ({"a": 0}, True),
    ],
)
def test_truth_is_gos_empty_values_are_false(value: object, truth: bool) -> None:
    assert render("{{if .v}}yes{{else}}no{{end}}", {"v": value}) == ("yes" if truth else "no")


def test_with_rebinds_dot_when_the_value_is_not_empty() -> None:
    assert render("{{with .pr.head}}on {{.ref}}{{else}}none{{end}}") == "on fix"
    assert render("{{with .empty}}x{{else}}none{{end}}") == "none"


def test_else_with_chains_like_else_if() -> None:
    assert render("{{with .empty}}a{{else with .pr.head}}{{.ref}}{{end}}") == "fix"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{with $h := .pr.head}}{{$h.ref}}{{end}}", "fix"),
        ("{{if $n := .number}}{{$n}}{{end}}", "7"),
        ("{{$x := .title}}{{$x}}", "Fix login"),
        ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
        ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
        ("{{$x := 1}}{{if true}}{{$x := 3}}{{$x}}{{end}}{{$x}}", "31"),
    ],
)
def test_variables_are_declared_assigned_and_scoped_to_their_block(
    text: str, expected: str
) -> None:
    assert render(text) == expected


# ---------------------------------------------------------------- range


def test_range_over_a_list_rebinds_dot_to_each_item() -> None:
    assert render("{{range .file_list}}- {{.}}\n{{end}}") == "- src/a.py\n- src/b.py\n"


def test_range_over_a_mapping_goes_in_key_order() -> None:
    assert render("{{range .counts}}{{.}}{{end}}") == "12"
    assert render("{{range $k, $v := .counts}}{{$k}}={{$v}};{{end}}") == "a=1;b=2;"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{range $i, $f := .pr.files}}{{$i}}:{{$f.path}} {{end}}", "0:a.py 1:b.py "),
        ("{{range $f := .pr.files}}{{$f.path}} {{end}}", "a.py b.py "),
        ("{{range $i, $f := .file_list}}{{$i}}{{.}} {{end}}", "0src/a.py 1src/b.py "),
    ],
)
def test_range_variables_hold_index_and_item(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize("value", [[], {}, None])
def test_range_else_runs_when_there_is_nothing_to_range_over(value: object) -> None:
    assert render("{{range .v}}item{{else}}nothing{{end}}", {"v": value}) == "nothing"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{range .v}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", "12"),
        ("{{range .v}}{{if eq . 3}}{{continue}}{{end}}{{.}}{{end}}", "1245"),
    ],
)
def test_break_and_continue_leave_the_loop_or_the_item(text: str, expected: str) -> None:
    assert render(text, {"v": [1, 2, 3, 4, 5]}) == expected


def test_nested_range_and_if_work_together() -> None:
    text = (
        "{{range .pr.files}}{{if gt .additions 0}}{{.path}}:"
        "{{range $.file_list}}[{{.}}]{{end}}{{else}}({{.path}} unchanged){{end}} {{end}}"
    )
    assert render(text) == "a.py:[src/a.py][src/b.py] (b.py unchanged) "


def test_variables_declared_in_a_range_item_do_not_leak_to_the_next() -> None:
    text = "{{range .v}}{{$seen := .}}{{$seen}}{{end}}"
    assert render(text, {"v": ["a", "b"]}) == "ab"


# ---------------------------------------------------------------- comments and trimming


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a{{/* note */}}b", "ab"),
        ("a{{/* two\nlines */}}b", "ab"),
        ("a {{- /* note */ -}} b", "ab"),
        ("a{{/* {{.nope}} */}}b", "ab"),
    ],
)
def test_comments_print_nothing(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a  {{- .number}}", "a7"),
        ("{{.number -}}  \n\n b", "7b"),
        ("a \n\t{{- .number -}}\n\t b", "a7b"),
        ("x {{3 -}} y", "x 3y"),
        ("{{-3}}", "-3"),
        ("{{- 3}}", "3"),
        ("{{.x}}{{3 - 4}}", None),
        ("a\n{{- if .draft}}d{{- else}}\n  r\n{{- end}}\nz", "a\n  r\nz"),
        (
            "{{range .file_list -}}\n  {{.}}\n{{end -}}\ndone",
            "src/a.py\nsrc/b.py\ndone",
        ),
    ],
)
def test_trim_markers_remove_all_adjacent_space_as_go_does(text: str, expected: str | None) -> None:
    if expected is None:
        refused(text)
    else:
        assert render(text) == expected


def test_actions_may_span_lines() -> None:
    assert render("{{if\n  .title\n}}yes{{end}}") == "yes"


# ---------------------------------------------------------------- literals and functions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{"a\\tb\\u00e9\\x41\\101"}}', "a\tbéAA"),
        ("{{`raw \\n {{`}}", "raw \\n {{"),
        ("{{42}}", "42"),
        ("{{-3}}", "-3"),
        ("{{1.5}}", "1.5"),
        ("{{1e3}}", "1000"),
        ("{{0x1f}}", "31"),
        ("{{0o17}} {{017}} {{0b101}} {{1_000}}", "15 15 5 1000"),
        ("{{'a'}}", "97"),
        ("{{true}} {{false}}", "true false"),
    ],
)
def test_literals(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("not .draft", "true"),
        ("not .title", "false"),
        ("and .title .number", "7"),
        ("and .title .empty .number", ""),
        ("or .empty .zero", "0"),
        ('or .empty "fallback"', "fallback"),
        ("or .title .nope", "Fix login"),
        ("and .empty .nope", ""),
        ('eq .title "Fix login"', "true"),
        ('eq .type "push" "pull_request.opened"', "true"),
        ("eq .number 7", "true"),
        ("eq .none .none", "true"),
        ('eq .none "x"', "false"),
        ('ne .actor "bob"', "true"),
        ("lt .number 10", "true"),
        ("le .number 7", "true"),
        ("gt .number 7", "false"),
        ("ge .number 7", "true"),
        ('lt "a" "b"', "true"),
        ("len .file_list", "2"),
        ("len .title", "9"),
        ('len "é"', "2"),
        ("len .counts", "2"),
        ("index .file_list 1", "src/b.py"),
        ('index .counts "b"', "2"),
        ('index .pr "files" 0 "path"', "a.py"),
        ('print "a" "b" 1 2 true', "ab1 2 true"),
        ('println "a" 1', "a 1\n"),
        ('printf "%s (#%d)" .title .number', "Fix login (#7)"),
        ('printf "%s|" print', "|"),
    ],
)
def test_functions(expression: str, expected: str) -> None:
    assert render("{{" + expression + "}}") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{.title | printf "%q"}}', '"Fix login"'),
        ('{{.number | printf "%d files"}}', "7 files"),
        ('{{"x" | printf "%s-%s" "a"}}', "a-x"),
        ("{{.file_list | len}}", "2"),
        ('{{.title | len | printf "%03d"}}', "009"),
        ("{{.draft | not}}", "true"),
    ],
)
def test_pipelines_pass_each_result_as_the_last_argument(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{printf "%d" (len .file_list)}}', "2"),
        ("{{(index .pr.files 1).path}}", "b.py"),
        ("{{if and (gt .number 5) (not .draft)}}big{{end}}", "big"),
        ('{{(printf "%s" .title) | len}}', "9"),
    ],
)
def test_parentheses_group_a_pipeline(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('"%s|%v" "a" .file_list', "a|[src/a.py src/b.py]"),
        ('"%5s|%-5s|" "ab" "cd"', "   ab|cd   |"),
        ('"%.2s" "abc"', "ab"),
        ('"%05d|%+d|% d|%-4d|" 42 5 5 7', "00042|+5| 5|7   |"),
        ('"%x %X %o %b %#x" 255 255 8 5 255', "ff FF 10 101 0xff"),
        ('"%x" "hi"', "6869"),
        (
            '"%.2f|%8.3f|%e|%g|%g" 3.14159 3.14159 1234.5 0.5 1e6',
            "3.14|   3.142|1.234500e+03|0.5|1e+06",
        ),
        ('"%t %v" true false', "true false"),
        ('"%q" "a\\"b\\n"', '"a\\"b\\n"'),
        ('"%q" 97', "'a'"),
        ('"%c%c %U" 72 105 65', "Hi U+0041"),
        ('"%T %T %T %T %T" 1 1.5 "s" true .file_list', "int float64 string bool []interface {}"),
        ('"100%%"', "100%"),
        ('"%*d|%-*d|" 4 7 3 1', "   7|1  |"),
        ('"%d" "x"', "%!d(string=x)"),
        ('"%s" 5', "%!s(int=5)"),
        ('"%f" 1', "%!f(int=1)"),
        ('"%d %d" 1', "1 %!d(MISSING)"),
        ('"%d" 1 2', "1%!(EXTRA int=2)"),
        ('"%z" 1', "%!z(int=1)"),
        ('"%" ', "%!(NOVERB)"),
        ('"%s" .none', "%!s(<nil>)"),
        ('"%9999999d" 1', "%!(BADWIDTH)1"),
    ],
)
def test_printf_maps_go_verbs(arguments: str, expected: str) -> None:
    assert render("{{printf " + arguments + "}}") == expected


# ---------------------------------------------------------------- missing keys


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("{{.nope}}", ".nope", 1),
        ("a\nb\n{{.pr.nope}}", ".pr.nope", 3),
        ("{{.nope.deeper}}", ".nope.deeper", 1),
        ("{{.none.deeper}}", ".none.deeper", 1),
        ("{{range .nope}}{{end}}", ".nope", 1),
        ('{{printf "%s" .nope}}', ".nope", 1),
        ("{{len .nope}}", ".nope", 1),
        ("{{.nope | len}}", ".nope", 1),
        ("{{$x := .nope}}", ".nope", 1),
        ("{{with .pr}}\n{{.nope}}{{end}}", ".pr.nope", 2),
        ("{{range .pr.files}}{{.nope}}{{end}}", ".pr.files[0].nope", 1),
        ('{{range $k, $v := .pr}}{{if eq $k "head"}}{{.x}}{{end}}{{end}}', ".pr.head.x", 1),
        ("{{range $f := .pr.files}}{{$f.nope}}{{end}}", "$f.nope", 1),
        ("{{with .pr}}{{$.nope}}{{end}}", ".nope", 1),
        ('{{index .counts "z"}}', 'index .counts "z"', 1),
        ("{{if .title}}{{.nope}}{{end}}", ".nope", 1),
    ],
)
def test_a_missing_key_fails_naming_the_path_and_line(text: str, key: str, line: int) -> None:
    error = missing(text)
    assert error.key == key
    assert error.message.startswith(f"template line {line}: the template uses ")
    assert "which this event does not have" in error.message
    assert "guard it with {{if" in error.hint


def test_a_missing_key_message_says_where_the_relative_path_points() -> None:
    error = missing("{{range .pr.files}}{{.nope}}{{end}}")
    assert "uses .nope (that is .pr.files[0].nope)" in error.message


@pytest.mark.parametrize(
    "condition",
    [
        ".nope",
        ".nope.deeper",
        ".pr.nope",
        ".none.deeper",
        "not (not .nope)",
        "and .title .nope",
        "or .nope .empty",
        'eq .nope "x"',
        "gt .nope 3",
        "lt .nope 3",
        "len .nope",
        'index .counts "z"',
        'index .nope "z"',
        "$x := .nope",
    ],
)
def test_a_missing_key_in_a_condition_is_simply_false(condition: str) -> None:
    assert render("{{if " + condition + "}}yes{{else}}no{{end}}") == "no"
    assert render("{{with " + condition + "}}yes{{else}}no{{end}}") == "no"
    assert render("{{if .empty}}{{else if " + condition + "}}yes{{else}}no{{end}}") == "no"


def test_not_of_a_missing_key_is_true() -> None:
    assert render("{{if not .nope}}no diff{{end}}") == "no diff"


def test_if_guards_a_key_that_may_be_missing() -> None:
    text = "Review.{{if .diff}}\n{{.diff}}{{end}}"
    assert render(text) == "Review.\n+a\n-b\n"
    assert render(text, {"title": "t"}) == "Review."


def test_the_guard_covers_only_its_condition() -> None:
    assert missing("{{if .nope}}{{end}}{{.nope}}").key == ".nope"
    assert missing("{{with .nope}}{{else}}{{.nope}}{{end}}").key == ".nope"


# ---------------------------------------------------------------- mistakes found when rendering


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{.title.x}}", "can't read .x of string in .title.x"),
        ('{{eq .number "7"}}', "incompatible types for comparison: int and string"),
        ("{{eq .number 7.0}}", "incompatible types"),
        ("{{eq .file_list .file_list}}", "can't compare"),
        ("{{lt true false}}", "can't compare bool with bool"),
        ("{{range .title}}{{end}}", "range can't iterate over Fix login"),
        ("{{range .number}}{{end}}", "range can't iterate over 7"),
        ("{{index .file_list 5}}", "index out of range: 5"),
        ('{{index .file_list "a"}}', "cannot index []interface {} with string"),
        ("{{index .number 1}}", "can't index item of type int"),
        ("{{printf 3}}", "the format must be text"),
        ("{{len .number}}", "len of int"),
    ],
)
def test_type_mistakes_fail_when_rendering_with_the_line(text: str, fragment: str) -> None:
    template = compile_template("\n" + text)
    with pytest.raises(TemplateError) as caught:
        template.render(EVENT)
    assert not isinstance(caught.value, MissingKey)
    assert caught.value.message.startswith("template line 2: ")
    assert fragment in caught.value.message


def test_values_are_read_from_mappings_only_never_attributes() -> None:
    class Secretive:
        secret = "s3cr3t"

    with pytest.raises(TemplateError, match=r"can't read \.secret of Secretive"):
        render("{{.obj.secret}}", {"obj": Secretive()})


def test_rendering_leaves_the_data_unchanged() -> None:
    before = copy.deepcopy(EVENT)
    render("{{range $i, $v := .pr.files}}{{$v = 1}}{{$i}}{{end}}{{$x := .pr}}{{$x = 2}}")
    assert before == EVENT


# ---------------------------------------------------------------- the event's text is data


@pytest.mark.parametrize(
    "text",
    [
        "{{.secret}} {% for x in y %}{% endfor %} {{ name }}",
        "{{/* */}} {{- .x -}} {{end}} {{",
        "}} {{if}} {#",
    ],
)
def test_the_events_text_is_printed_never_run(text: str) -> None:
    data = {"body": text, "list": [text], "secret": "leaked"}
    assert render("{{.body}}", data) == text
    assert render('{{printf "%s" .body}}', data) == text
    assert render("{{range .list}}{{.}}{{end}}", data) == text


# ---------------------------------------------------------------- syntax mistakes


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("{{if .x}}no end", 1, "{{if}} has no {{end}}"),
        ("a\n{{range .x}}\n", 2, "{{range}} has no {{end}}"),
        ("a\n{{end}}", 2, "unexpected {{end}}"),
        ("{{.x}}\n{{else}}", 2, "unexpected {{else}}"),
        ("a\n\n{{.x", 3, "unclosed action"),
        ("{{/* x", 1, "unclosed comment"),
        ("{{/* x */ }}", 1, "comment ends before }}"),
        ("{{.x | }}", 1, "a | with no command after it"),
        ("{{.x .y}}", 1, ".x is not a function"),
        ("{{.x | .y}}", 1, ".y is not a function"),
        ('{{.x}}{{"a" "b"}}', 1, '"a" is not a function'),
        ("{{.x}}{{nosuch .x}}", 1, 'function "nosuch" not defined'),
        ("{{.x}}{{join .x}}", 1, 'function "join" not defined'),
        ("{{$x}}", 1, "undefined variable $x"),
        ("{{$x = 1}}", 1, "undefined variable $x"),
        ("{{if true}}{{$y := 1}}{{end}}{{$y}}", 1, "undefined variable $y"),
        ("{{.x}}\n{{not}}", 2, "wrong number of arguments for not: want 1, got 0"),
        ("{{.x}}{{eq 1}}", 1, "wrong number of arguments for eq: want at least 2, got 1"),
        ("{{.x | not 1}}", 1, "wrong number of arguments for not: want 1, got 2"),
        ('{{.x}}{{printf "%v" not}}', 1, "not needs arguments here"),
        ("{{if .a}}{{else}}{{else}}{{end}}", 1, "a second {{else}}"),
        ("{{with .a}}{{else if .b}}{{end}}", 1, "{{else if}} inside {{with}}"),
        ("{{range .a}}{{else if .b}}{{end}}", 1, "{{else if}} inside {{range}}"),
        ("{{break}}", 1, "{{break}} outside {{range}}"),
        ("{{range .a}}{{else}}{{continue}}{{end}}", 1, "{{continue}} outside {{range}}"),
        ("{{end 1}}", 1, "{{end}} takes nothing after it"),
        ('{{template "x"}}', 1, "{{template}} is not supported"),
        ('{{define "x"}}{{end}}', 1, "{{define}} is not supported"),
        ('{{.x "open}}', 1, "unterminated quoted string"),
        ("{{.x `open}}", 1, "unterminated raw string"),
        ("{{.x}}{{3x}}", 1, "bad syntax '3x'"),
        ("{{.a-}}", 1, "bad syntax"),
        ("{{.x}}{{nil}}", 1, "nil is not a command"),
        ("{{if}}{{end}}", 1, "missing value for {{if}}"),
        ("{{.x}}{{}}", 1, "missing value for the action"),
        ("{{range $i, $v, $w := .x}}{{end}}", 1, "too many declarations in {{range}}"),
        ("{{with $a, $b := .x}}{{end}}", 1, "too many declarations in {{with}}"),
        ("{{range $i, .x}}{{end}}", 1, "{{range}} can only declare variables here"),
        ('{{.x}}{{"\\q"}}', 1, "unknown escape \\q"),
        ('{{.x}}{{"\\ud800"}}', 1, "unknown escape"),
        ("{{.x}}{{09}}", 1, "bad number 09"),
        ("{{.x}}{{'ab'}}", 1, "bad number 'ab'"),
        ("{{ .x }}{{ @ }}", 1, "unexpected '@' in the action"),
        ("{{.}}{{(.x}}", 1, "unexpected '}}' in a parenthesized pipeline"),
        ("{{.x)}}", 1, "unexpected ')' in the action"),
        ("{{.x}}{{..y}}", 1, "unexpected . after ."),
        ("{{.x}}{{true.y}}", 1, "unexpected . after true"),
    ],
)
def test_syntax_mistakes_are_refused_naming_the_line(text: str, line: int, fragment: str) -> None:
    error = refused(text)
    assert not isinstance(error, MissingKey)
    assert error.message.startswith(f"template line {line}: "), error.message
    assert fragment in error.message
