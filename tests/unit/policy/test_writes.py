"""Writes, their ledger keys and markers (pure)."""

from __future__ import annotations

from dataclasses import fields

from mecha.policy.writes import (
    Place,
    Write,
    ledger_key,
    marked_body,
    marked_worker,
    marked_write,
    write_from_json,
    write_json,
)

PLACE = Place(forge="gitlab", repo="group/sub/app", project_id="12", number=5, kind="pull",
              head_sha="a" * 40, base_sha="b" * 40, installation_id="")  # fmt: skip


def test_the_ledger_form_keeps_every_field_and_reads_back() -> None:
    write = Write(key="k" * 32, worker="w", action="labels", place=PLACE, add=("a", "b"),
                  remove=("c",), body="x", sticky=False)  # fmt: skip
    data = write_json(write)
    assert set(data) == {f.name for f in fields(Write)}
    assert set(data["place"]) == {f.name for f in fields(Place)}
    assert write_from_json(data) == write


def test_ledger_keys_are_deterministic_and_differ_by_each_part() -> None:
    parts = {"event_id": "e", "worker": "w", "action": "comment", "target": "o/r#1",
             "head_sha": "h"}  # fmt: skip
    key = ledger_key(**parts)
    assert key == ledger_key(**parts) and len(key) == 32
    for name in parts:
        assert ledger_key(**{**parts, name: "other"}) != key


def test_markers_name_the_worker_only_for_sticky_comments() -> None:
    sticky = Write(key="0" * 32, worker="rev", action="comment", place=PLACE)
    once = Write(key="1" * 32, worker="rev", action="comment", place=PLACE, sticky=False)
    assert marked_worker(marked_body(sticky, "hi")) == "rev"
    assert marked_write(marked_body(sticky, "hi")) == "0" * 32
    assert marked_worker(marked_body(once, "hi")) == ""
    assert marked_write(marked_body(once, "hi")) == "1" * 32
    assert PLACE.name == "group/sub/app!5"
