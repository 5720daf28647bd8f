"""The sensitive-path deny-list, decided on resolved paths without touching the disk."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest

from mecha.worker.rules import HOME_SECRET_DIRS, SYSTEM_DIRS, sensitive_path_reason

HOME = P("/home/me")


@pytest.mark.parametrize("system", SYSTEM_DIRS)
def test_system_folders_and_below_are_refused(system: str) -> None:
    """/etc, /proc, /sys, /dev, /boot and anything under them."""
    assert "system folder" in sensitive_path_reason(P(system), home=HOME)
    assert "system folder" in sensitive_path_reason(P(system) / "deeper", home=HOME)


def test_root_folder_is_refused() -> None:
    """/ would mount the whole machine."""
    assert sensitive_path_reason(P("/"), home=HOME) == "it is the root folder"


@pytest.mark.parametrize("top", [HOME, P("/root")])
def test_home_folders_themselves_are_refused(top: P) -> None:
    """The user's home and /root, but not projects inside them."""
    assert "home folder" in sensitive_path_reason(top, home=HOME)
    assert sensitive_path_reason(top / "project", home=HOME) == ""


@pytest.mark.parametrize("name", HOME_SECRET_DIRS)
def test_credential_folders_and_below_are_refused(name: str) -> None:
    """~/.ssh, ~/.mecha, ~/.config/gcloud … and anything under them."""
    assert "holds credentials" in sensitive_path_reason(HOME / name, home=HOME)
    assert "holds credentials" in sensitive_path_reason(HOME / name / "x", home=HOME)


def test_lookalike_names_are_allowed() -> None:
    """/etcetera and ~/.sshfoo are not /etc and ~/.ssh."""
    assert sensitive_path_reason(P("/etcetera"), home=HOME) == ""
    assert sensitive_path_reason(HOME / ".sshfoo", home=HOME) == ""
