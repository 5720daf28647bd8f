"""Where `mecha image build` finds its Dockerfiles, and what it says when it cannot build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import pytest

from mecha.runtimes.managed import image_build
from mecha.runtimes.managed.image_build import ImageBuildError, images_dir

REPO = Path(__file__).resolve().parents[3]


def test_a_checkout_reads_the_repositorys_images_folder() -> None:
    """Editable installs and PYTHONPATH=src have no mecha/images: the checkout's is used."""
    assert images_dir() == REPO / "images"


class _NoBase:
    class images:  # the SDK client's attribute
        @staticmethod
        def get(name: str) -> Any:
            raise docker.errors.ImageNotFound(f"No such image: {name}")


def test_a_missing_base_image_names_the_script_that_makes_it() -> None:
    """The hint names make-base.sh where this installation keeps it (a wheel's is inside
    site-packages), so it can be run as it is."""
    with pytest.raises(ImageBuildError) as caught:
        image_build._need_base(_NoBase())
    script = images_dir() / "make-base.sh"
    assert script.is_file()
    assert caught.value.hint.endswith(f"make it as root with debootstrap: bash {script}")
