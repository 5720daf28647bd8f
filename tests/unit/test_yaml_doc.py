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
