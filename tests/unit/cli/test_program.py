"""The command a hint suggests: `mecha` when that is the one running, else its real path."""

from __future__ import annotations

import os
from pathlib import Path

from mecha.cli.program import program


def venv(root: Path) -> Path:
    """A folder like a venv's bin: an executable `mecha` and a `python`."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("mecha", "python"):
        (bin_dir / name).write_text("#!/bin/sh\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_mecha_on_path_is_the_one_running(tmp_path: Path) -> None:
    bin_dir = venv(tmp_path)
    env = {"PATH": f"/nonexistent{os.pathsep}{bin_dir}"}
    assert program(env, argv0=str(bin_dir / "mecha"), cwd=tmp_path) == "mecha"
    assert program(env, argv0=".venv/bin/mecha", cwd=tmp_path) == "mecha"


def test_a_venv_not_on_path_is_named_relative_to_the_folder(tmp_path: Path) -> None:
    bin_dir = venv(tmp_path)
    env = {"PATH": "/nonexistent"}
    assert program(env, argv0=str(bin_dir / "mecha"), cwd=tmp_path) == ".venv/bin/mecha"
    absolute = str(bin_dir / "mecha")
    deep = tmp_path.joinpath(*["d"] * (len(absolute) // 3 + 1))
    deep.mkdir(parents=True)
    # from far away the absolute path is shorter than ../../…/.venv/bin/mecha
    assert program(env, argv0=absolute, cwd=deep) == absolute


def test_another_mecha_on_path_is_not_the_one_running(tmp_path: Path) -> None:
    mine = venv(tmp_path / "project")
    other = venv(tmp_path / "elsewhere")
    env = {"PATH": str(other)}
    assert program(env, argv0=str(mine / "mecha"), cwd=tmp_path / "project") == ".venv/bin/mecha"


def test_run_as_a_module(tmp_path: Path) -> None:
    bin_dir = venv(tmp_path)
    main = tmp_path / "site-packages" / "mecha" / "__main__.py"
    python = str(bin_dir / "python")
    with_path = {"PATH": str(bin_dir)}
    assert program(with_path, argv0=str(main), executable=python, cwd=tmp_path) == "mecha"
    without = {"PATH": "/nonexistent"}
    shown = program(without, argv0=str(main), executable=python, cwd=tmp_path)
    assert shown == ".venv/bin/python -m mecha"


def test_a_path_with_spaces_is_quoted(tmp_path: Path) -> None:
    bin_dir = venv(tmp_path / "my project")
    shown = program({"PATH": ""}, argv0=str(bin_dir / "mecha"), cwd=tmp_path)
    assert shown == "'my project/.venv/bin/mecha'"


def test_a_script_in_the_current_folder_is_not_looked_up_on_path(tmp_path: Path) -> None:
    bin_dir = venv(tmp_path)
    assert program({"PATH": ""}, argv0="mecha", cwd=bin_dir) == "./mecha"
