"""Building the worker images from the project's Dockerfiles: ``build_on``.

The build context is the repository's ``images/`` folder: the wheel ships it as
``mecha/images`` (pyproject.toml), a checkout or an editable install reads it in place.
Nothing is pulled: ``FROM debian:bookworm-slim`` must be on the engine (``make-base.sh``
in that folder makes it where no registry is reachable), and each CLI image builds on
``mecha-worker-base``, which is
built first. Behind a TLS-intercepting proxy, ``ca_bundle`` (a CA file that trusts it)
is put into a copy of the context for the builder stages only; the final images never
hold it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecha.errors import MechaError

if TYPE_CHECKING:
    from mecha.runtimes.managed.docker import DockerRuntime

#: what `mecha image build` knows, in build order
TARGETS = ("base", "claude", "codex", "gemini")
BASE_IMAGE = "debian:bookworm-slim"
#: seconds one engine request of a build may take (a CLI layer downloads for a while)
BUILD_TIMEOUT = 600.0


class ImageBuildError(MechaError):
    """A worker image could not be built."""


def images_dir() -> Path:
    """Where the Dockerfiles are: in the installed package, else in the checkout."""
    shipped = Path(str(resources.files("mecha"))) / "images"
    if (shipped / "base" / "Dockerfile").is_file():
        return shipped
    checkout = Path(__file__).resolve().parents[4] / "images"
    if (checkout / "base" / "Dockerfile").is_file():
        return checkout
    raise ImageBuildError(
        f"the worker images' Dockerfiles are not in this installation ({shipped})",
        hint="reinstall mecha-engine (its wheel holds them), or build from a clone of the "
        "Mecha repository: its images/ folder holds them",
    )


def plan(which: str) -> list[str]:
    """The targets to build for ``which`` (a target or "all"): the base always comes first."""
    if which == "all":
        return list(TARGETS)
    if which not in TARGETS:
        raise ImageBuildError(
            f'"{which}" is not a worker image', hint=f"choose one of {', '.join(TARGETS)}, all"
        )
    return ["base"] if which == "base" else ["base", which]


def build_on(
    runtime: DockerRuntime,
    which: str,
    *,
    ca_bundle: Path | None = None,
    no_cache: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> list[str]:
    """Build ``which`` (and the base) on ``runtime``'s engine; the image tags built.

    ``progress`` gets each step. ``runtime`` is the caller's to close; it should allow
    ``BUILD_TIMEOUT`` per request (``mecha.app.docker.build_images`` makes it so).
    """
    targets = plan(which)
    client = runtime.client()
    _need_base(client)
    with _context(ca_bundle) as context:
        for target in targets:
            _build(client, context, target, no_cache=no_cache, progress=progress)
    return [f"mecha-worker-{target}" for target in targets]


def _build(
    client: Any, context: Path, target: str, *, no_cache: bool, progress: Callable[[str], None]
) -> None:
    tag = f"mecha-worker-{target}"
    progress(f"building {tag} ({target}/Dockerfile)")
    errors = _sdk().errors
    try:
        stream = client.api.build(
            path=str(context), dockerfile=f"{target}/Dockerfile", tag=tag, rm=True,
            forcerm=True, pull=False, nocache=no_cache, decode=True,
        )  # fmt: skip
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(
                    f"building {tag} failed: {str(chunk['error']).strip()}",
                    hint=_hint(str(chunk["error"])),
                )
            line = str(chunk.get("stream", "")).strip()
            if line.startswith(("Step ", "Successfully")):
                progress(f"  {line}")
    except errors.DockerException as exc:
        raise ImageBuildError(f"building {tag} failed: {exc}", hint=_hint(str(exc))) from None


def _hint(error: str) -> str:
    if "certificate" in error.lower() or "curl: (60)" in error or "SELF_SIGNED" in error:
        return (
            "the network intercepts TLS: pass its CA bundle with --ca-bundle "
            "/etc/ssl/certs/ca-certificates.crt"
        )
    return "see the build output above; fix the cause and run mecha image build again"


def _need_base(client: Any) -> None:
    errors = _sdk().errors
    try:
        client.images.get(BASE_IMAGE)
    except errors.ImageNotFound:
        raise ImageBuildError(
            f"the base image {BASE_IMAGE} is not on this Docker engine (nothing is pulled)",
            hint="load it (docker pull / docker load), or make it as root with debootstrap: "
            f"bash {images_dir() / 'make-base.sh'}",
        ) from None


@contextmanager
def _context(ca_bundle: Path | None) -> Iterator[Path]:
    """The build context: ``images/``, or a copy of it holding ``ca/extra-ca.crt``."""
    source = images_dir()
    if ca_bundle is None:
        yield source
        return
    if not ca_bundle.is_file():
        raise ImageBuildError(f"the CA bundle {ca_bundle} is not a file")
    with tempfile.TemporaryDirectory(prefix="mecha-images-") as scratch:
        context = Path(scratch) / "images"
        shutil.copytree(source, context, ignore=shutil.ignore_patterns("__pycache__"))
        (context / "ca").mkdir(exist_ok=True)
        shutil.copyfile(ca_bundle, context / "ca" / "extra-ca.crt")
        yield context


def _sdk() -> Any:
    import docker  # type: ignore[import-untyped]

    return docker
