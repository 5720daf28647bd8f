"""YAML loading that keeps positions."""

from __future__ import annotations

import pytest

from mecha.errors import FileError
from mecha.yaml_doc import load_yaml


def _problem(text: str) -> str:
    with pytest.raises(FileError) as caught:
        load_yaml(text, file="w.yml")
    assert len(caught.value.problems) == 1
    return str(caught.value.problems[0])


def test_values_and_key_positions_are_recorded() -> None:
    """Each key and value knows its 1-based line and column."""
    doc = load_yaml("name: a\ndocker:\n  image: x\n  env: {A: b}\n", file="w.yml")
    assert doc.data == {"name": "a", "docker": {"image": "x", "env": {"A": "b"}}}
    assert str(doc.where(("docker", "image"), key=True)) == "w.yml:3:3"
    assert str(doc.where(("docker", "image"))) == "w.yml:3:10"
    assert str(doc.where(("docker", "env", "A"))) == "w.yml:4:12"


def test_where_falls_back_to_the_nearest_parent() -> None:
    """A path that is not in the file points at its closest existing parent."""
    doc = load_yaml("docker:\n  image: x\n", file="w.yml")
    assert str(doc.where(("docker", "missing", "deeper"))) == "w.yml:2:3"


def test_sequence_items_have_positions() -> None:
    """List items are addressed by index."""
    doc = load_yaml("events:\n  - source: github\n    on: [a, b]\n", file="w.yml")
    assert str(doc.where(("events", 0, "on", 1))) == "w.yml:3:13"


def test_on_stays_a_string_key() -> None:
    """YAML 1.2 booleans: on/off/yes/no are text, as Go's yaml.v3 read them."""
    doc = load_yaml("on: [push]\nauto: yes\nflag: off\nreal: false\n", file="w.yml")
    assert doc.data == {"on": ["push"], "auto": "yes", "flag": "off", "real": False}


def test_merge_keys_are_resolved() -> None:
    """``<<: *anchor`` copies the anchored mapping's keys."""
    doc = load_yaml("base: &b {a: 1}\nthing:\n  <<: *b\n  c: 2\n", file="w.yml")
    assert doc.data["thing"] == {"a": 1, "c": 2}


def test_duplicate_key_is_refused_with_both_places() -> None:
    """PyYAML would keep the last silently; we name both lines."""
    assert _problem("name: a\nname: b\n") == (
        'w.yml:2:1: key "name" appears twice\n    hint: keep one; the first is at w.yml:1:1'
    )


def test_syntax_error_points_at_the_spot() -> None:
    """A broken flow list is reported where the parser stopped."""
    assert _problem("on: [a, b\nx: 1\n").startswith("w.yml:2:")


def test_second_document_is_refused() -> None:
    """One worker per file."""
    assert _problem("name: a\n---\nname: b\n").startswith("w.yml:3:1: a second YAML document")


def test_non_string_key_is_refused() -> None:
    """Keys must be text."""
    assert _problem("1: a\n").startswith("w.yml:1:1: key 1 is not a string")


def test_empty_text_is_none() -> None:
    """An empty file parses to no data (the caller decides whether that is an error)."""
    assert load_yaml("", file="w.yml").data is None


@pytest.mark.parametrize("text", ["=", "a: !!python/object:os.system x\n", "k: !custom 1\n"])
def test_tags_a_safe_loader_cannot_build_are_located_problems(text: str) -> None:
    """Found by the property test: '=' is YAML's value tag, which no safe loader builds."""
    with pytest.raises(FileError) as caught:
        load_yaml(text, file="w.yml")
    assert caught.value.problems[0].location.file == "w.yml"
    assert "could not determine a constructor" in caught.value.problems[0].message


# ---------------------------------------------------------------- lines as editors count them

NEWLINES = pytest.mark.parametrize("nl", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])


@NEWLINES
def test_lines_end_at_lf_crlf_or_cr(nl: str) -> None:
    """Every editor breaks lines at \\n, \\r\\n and \\r; so does YAML; so do our positions."""
    doc = load_yaml(nl.join(["name: a", "docker:", "  image: x", ""]), file="w.yml")
    assert str(doc.where(("docker", "image"), key=True)) == "w.yml:3:3"
    assert str(doc.where(("docker", "image"))) == "w.yml:3:10"
    assert _problem(nl.join(["a: 1", "", "b: 2", "a: 3", ""])).startswith(
        'w.yml:4:1: key "a" appears twice\n    hint: keep one; the first is at w.yml:1:1'
    )


@NEWLINES
def test_an_error_at_the_end_of_the_text_is_on_its_last_line(nl: str) -> None:
    """libyaml puts the end of a text without a final newline one line past it (the
    property test found '-\\r0' reported at line 3): it is the end of the last line."""
    assert _problem(f"-{nl}0").startswith("w.yml:2:2: YAML syntax error")
    assert _problem(f"a: 1{nl}b: [").startswith("w.yml:2:5: YAML syntax error")
    # after a final newline the end is the start of the (empty) next line, as editors show
    assert _problem(f"-{nl}0{nl}").startswith("w.yml:3:1: YAML syntax error")


def test_a_blank_line_of_lf_then_cr_is_two_breaks() -> None:
    """\\n\\r is not one break (only \\r\\n is): an editor shows an empty line between."""
    assert _problem("a: 1\n\rb: 2\n\rb: 3").startswith('w.yml:5:1: key "b" appears twice')


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\u2029"], ids=["NEL", "LS", "PS"])
def test_yaml_1_1_line_breaks_do_not_start_a_line(odd: str) -> None:
    """PyYAML also breaks at NEL, LS and PS (YAML 1.1); YAML 1.2 and editors do not, so a
    place after one is further along the same line."""
    assert _problem(f"a: 1{odd}b: 2{odd}b: 3\n") == (
        'w.yml:1:11: key "b" appears twice\n    hint: keep one; the first is at w.yml:1:6'
    )
    assert _problem(f'x: "{odd}"\nb: [').startswith("w.yml:2:5: YAML syntax error")


def test_a_byte_order_mark_is_not_a_column() -> None:
    """Editors hide a leading BOM; libyaml leaves it out of its offsets, PyYAML does not."""
    assert _problem("\ufeffa: 1\na: 2\n").startswith('w.yml:2:1: key "a" appears twice')
    assert str(load_yaml("\ufeffname: a\n", file="w.yml").where(("name",))) == "w.yml:1:7"


@NEWLINES
def test_a_character_yaml_refuses_is_located(nl: str) -> None:
    """Control characters are named, with their place, instead of "not valid YAML"."""
    assert _problem(f"a: 1{nl}b: x\x07{nl}") == (
        "w.yml:2:5: the character U+0007 is not allowed in YAML\n"
        '    hint: remove it, or write it as "\\u0007" inside a double-quoted string'
    )
    assert _problem("a: \ud800").startswith("w.yml:1:4: the character U+D800 is not allowed")
