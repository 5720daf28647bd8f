"""Worker files on a real filesystem: folders, host checks, registry records and back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mecha.errors import UsageError, WorkerFileError
from mecha.worker.files import from_record, read_workers, to_record, worker_paths

Write = Callable[[str, str], Path]


def _problems(paths: list[Path], home: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(WorkerFileError) as caught:
        read_workers(paths, environ=env or {}, home=home)
    return [str(p) for p in caught.value.problems]


def test_folder_gives_its_yaml_files_sorted_and_nothing_else(write_file: Write) -> None:
    """*.yml and *.yaml directly inside, sorted; other files and subfolders skipped."""
    write_file("w/b.yaml", "")
    write_file("w/a.yml", "")
    write_file("w/notes.txt", "")
    write_file("w/deeper/c.yml", "")
    folder = write_file("w/a.yml", "").parent
    assert [p.name for p in worker_paths(folder)] == ["a.yml", "b.yaml"]


def test_folder_without_worker_files_is_a_usage_error(tmp_path: Path) -> None:
    """An empty folder says so instead of adding nothing silently."""
    with pytest.raises(UsageError, match=r"no \*\.yml or \*\.yaml files"):
        worker_paths(tmp_path)


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    """A typo in the path is named."""
    with pytest.raises(UsageError, match="does not exist"):
        worker_paths(tmp_path / "nope.yml")


def test_problems_of_every_file_come_back_together(write_file: Write, home: Path) -> None:
    """A batch reports all broken files at once, each with its own path."""
    a = write_file("a.yml", "name: a\nendpoint: nope\n")
    b = write_file("b.yml", "name: b\nendpont: http://h\n")
    found = _problems([a, b], home)
    assert found[0].startswith(f"{a}:2:11: endpoint:")
    assert any(p.startswith(f'{b}:2:1: unknown key "endpont"') for p in found)


def test_same_name_in_two_files_is_refused(write_file: Write, home: Path) -> None:
    """Both places are named."""
    a = write_file("a.yml", "name: same\nendpoint: http://h\n")
    b = write_file("b.yml", "name: same\nendpoint: http://h\n")
    assert _problems([a, b], home) == [
        f'{b}:1:7: worker name "same" is used twice\n    hint: the first is at {a}:1:7; rename one'
    ]


def test_unreadable_bytes_are_reported(write_file: Write, home: Path) -> None:
    """A file that is not UTF-8 is named, not a traceback."""
    path = write_file("bin.yml", "")
    path.write_bytes(b"name: \xff\xfe\n")
    assert _problems([path], home) == [
        f"{path}:1:1: file is not UTF-8 text\n    hint: save it as UTF-8"
    ]


def test_workspace_folder_must_exist(write_file: Write, home: Path, tmp_path: Path) -> None:
    """docker.cwd is checked on this host."""
    path = write_file("w.yml", f"name: w\ndocker:\n  image: i\n  cwd: {tmp_path}/gone\n")
    assert _problems([path], home)[0].startswith(
        f'{path}:4:8: docker.cwd "{tmp_path}/gone" does not exist'
    )


def test_workspace_must_be_a_folder(write_file: Write, home: Path) -> None:
    """A file is not a workspace."""
    target = write_file("file.txt", "x")
    path = write_file("w.yml", f"name: w\ndocker:\n  image: i\n  cwd: {target}\n")
    assert "is not a folder" in _problems([path], home)[0]


@pytest.mark.parametrize("name", [".ssh", ".mecha", ".aws", ".config/gcloud", ".claude"])
def test_credential_folders_under_home_may_not_be_mounted(
    write_file: Write, home: Path, name: str
) -> None:
    """~/.ssh and friends are denied even when reached through a symlink."""
    (home / name).mkdir(parents=True)
    link = home / "innocent"
    link.symlink_to(home / name)
    path = write_file("w.yml", f"name: w\ndocker:\n  image: i\n  cwd: {link}\n")
    found = _problems([path], home)[0]
    assert "may not be mounted" in found and f"(→ {(home / name).resolve()})" in found


def test_home_folder_itself_may_not_be_mounted(write_file: Write, home: Path) -> None:
    """~ alone is refused; a project under it is fine."""
    path = write_file("w.yml", "name: w\ndocker:\n  image: i\n  cwd: '~'\n")
    assert "home folder" in _problems([path], home)[0]
    (home / "project").mkdir()
    ok = write_file("ok.yml", "name: w\ndocker:\n  image: i\n  cwd: ~/project\n")
    assert read_workers([ok], environ={}, home=home)[0].spec.docker is not None


@pytest.mark.parametrize("system", ["/etc", "/proc"])
def test_system_folders_may_not_be_mounted(write_file: Write, home: Path, system: str) -> None:
    """/etc and its kin are refused (each is covered in tests/unit/worker/test_worker_rules.py)."""
    path = write_file("w.yml", f"name: w\ndocker:\n  image: i\n  cwd: {system}\n")
    assert f"system folder {system}" in _problems([path], home)[0]


def test_credential_mount_needs_the_host_folder(write_file: Write, home: Path) -> None:
    """credentials: [claude] needs ~/.claude on this host."""
    path = write_file("w.yml", "name: w\ndocker:\n  image: i\n  credentials: [claude]\n")
    assert _problems([path], home)[0].startswith(
        f"{path}:4:17: credentials claude: {home}/.claude does not exist"
    )
    (home / ".claude").mkdir()
    assert read_workers([path], environ={}, home=home)


def test_record_keeps_variable_references_not_values(write_file: Write, home: Path) -> None:
    """The database gets ${VAR}, never what it expanded to."""
    path = write_file(
        "w.yml",
        "name: w\nadapter:\n  type: openai\n  upstream: http://h\n  model: m\n  api_key: ${KEY}\n",
    )
    parsed = read_workers([path], environ={"KEY": "very-secret-value"}, home=home)[0]
    record = to_record(parsed, source=path)
    assert "very-secret-value" not in json.dumps(record.definition)
    assert record.definition["worker"]["adapter"]["api_key"] == "${KEY}"
    again = from_record(record, environ={"KEY": "rotated"}, home=home)
    assert again.spec.adapter is not None and again.spec.adapter.api_key == "rotated"


def test_literal_key_is_withheld_and_read_back_from_its_file(write_file: Write, home: Path) -> None:
    """A key written in the file is not stored; resolving reads it from the file again."""
    path = write_file(
        "w.yml",
        "name: w\nadapter:\n  type: openai\n  upstream: http://h\n"
        "  model: m\n  api_key: literal-key-123\n",
    )
    record = to_record(read_workers([path], environ={}, home=home)[0], source=path)
    assert "literal-key-123" not in json.dumps(record.definition)
    assert record.definition["withheld"] == ["adapter.api_key"]
    again = from_record(record, environ={}, home=home)
    assert again.spec.adapter is not None and again.spec.adapter.api_key == "literal-key-123"


def test_withheld_key_with_its_file_gone_says_what_to_do(write_file: Write, home: Path) -> None:
    """Resolving fails clearly when the file that holds the key has gone."""
    path = write_file("w.yml", "name: w\ndocker:\n  image: i\n  api_key: abc-literal\n")
    record = to_record(read_workers([path], environ={}, home=home)[0], source=path)
    os.remove(path)
    with pytest.raises(WorkerFileError, match="can no longer be read") as caught:
        from_record(record, environ={}, home=home)
    assert "mecha worker add" in str(caught.value)


def test_registered_worker_is_checked_again_against_the_host(
    write_file: Write, home: Path, tmp_path: Path
) -> None:
    """A workspace deleted after add is caught when the worker is resolved."""
    project = tmp_path / "project"
    project.mkdir()
    path = write_file("w.yml", f"name: w\ndocker:\n  image: i\n  cwd: {project}\n")
    record = to_record(read_workers([path], environ={}, home=home)[0], source=path)
    project.rmdir()
    with pytest.raises(WorkerFileError, match="does not exist"):
        from_record(record, environ={}, home=home)


POLICY_MISTAKES = """\
name: w
endpoint: http://h
policy:
  labls:
    allow: false
  comment:
    allow: "yes"
"""


def test_policy_mistakes_are_located_warnings(write_file: Write, home: Path) -> None:
    """A typo'd key and a non-bool allow are reported at their place; the file still loads."""
    path = write_file("w.yml", POLICY_MISTAKES)
    (parsed,) = read_workers([path], environ={}, home=home)
    typo, allow = (str(w) for w in parsed.warnings)
    assert typo.startswith(f"{path}:4:3: policy.labls: unknown key, ignored; did you mean labels?")
    assert "invalid" not in typo
    assert allow.startswith(
        f'{path}:7:12: policy.comment.allow: expected true or false, got a string "yes"; '
        "the policy is invalid and denies every action until this is fixed\n    hint: "
    )


def test_policy_list_item_is_located(write_file: Write, home: Path) -> None:
    """A bad item of a list is located at the item; a non-mapping section at its key."""
    path = write_file(
        "w.yml",
        "name: w\nendpoint: http://h\npolicy:\n  status: false\n  labels:\n    allowed: [bug, 3]\n",
    )
    (parsed,) = read_workers([path], environ={}, home=home)
    section, item = (str(w) for w in parsed.warnings)
    assert section.startswith(f"{path}:4:3: policy.status: expected a mapping of rules")
    assert item.startswith(f"{path}:6:20: policy.labels.allowed[1]: expected a label name")


def test_a_clean_policy_adds_no_warnings(write_file: Write, home: Path) -> None:
    """Every key used correctly: nothing to report, from the file or from the registry."""
    path = write_file(
        "w.yml",
        "name: w\nendpoint: http://h\npolicy:\n  comment: {allow: true, max_length: 9}\n"
        "  labels: {allow: true, allowed: [bug], max: 2}\n  dry_run: false\n",
    )
    (parsed,) = read_workers([path], environ={}, home=home)
    assert parsed.warnings == ()
    assert from_record(to_record(parsed, source=path), environ={}, home=home).warnings == ()


@pytest.mark.parametrize(
    ("value", "shown", "column"),
    [("0", "a number 0", 19), ("-3", "a number -3", 19), ("2.5", "a number 2.5", 19),
     ('"10"', 'a string "10"', 19), ("true", "a boolean true", 19), ("", "null", 18)],
)  # fmt: skip
def test_a_bad_max_per_hour_is_located_and_explained(
    write_file: Write, home: Path, value: str, shown: str, column: int
) -> None:
    """0, negative and non-whole caps are mistakes at their place, saying what the key means."""
    path = write_file(
        "w.yml",
        f"name: w\nendpoint: http://h\npolicy:\n  comment:\n    max_per_hour: {value}\n"
        "  reactions: {allow: true}\n",
    )
    (parsed,) = read_workers([path], environ={}, home=home)
    (problem,) = (str(w) for w in parsed.warnings)
    assert problem.startswith(
        f"{path}:5:{column}: policy.comment.max_per_hour: expected a whole number above 0, got "
        f"{shown} (the most comments the worker writes on one pull request or issue in an hour; "
        "write comment: {allow: false} to post none); the policy is invalid"
    ), problem


def test_reactions_that_are_not_a_mapping_are_a_warning(write_file: Write, home: Path) -> None:
    path = write_file("w.yml", "name: w\nendpoint: http://h\npolicy:\n  reactions: true\n")
    (parsed,) = read_workers([path], environ={}, home=home)
    (problem,) = (str(w) for w in parsed.warnings)
    assert problem.startswith(
        f"{path}:4:3: policy.reactions: expected a mapping of rules, got a boolean true; the "
        "section is ignored, so no reaction is made (write reactions: {allow: true} to react)"
    )
