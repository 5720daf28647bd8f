"""The README's promises: two set-up commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands() -> None:
    """One to install and run Mecha, one to install and run the tests."""
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("mecha demo") and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run contains the README's test command, character for character."""
    assert _setup_commands()[1] in (REPO / ".ci" / "run").read_text()
