"""`mecha image build`: the worker images, from the project's Dockerfiles."""

from __future__ import annotations

import time
from pathlib import Path

import click

from mecha.cli.context import AppContext, pass_app


@click.group()
def image() -> None:
    """Build the managed workers' images (mecha-worker-base, -claude, -codex, -gemini)."""


@image.command()
@click.argument(
    "which", default="all", type=click.Choice(["all", "base", "claude", "codex", "gemini"])
)
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A CA file the build trusts for https (networks that intercept TLS), "
    "e.g. /etc/ssl/certs/ca-certificates.crt. Never left in an image.",
)
@click.option("--no-cache", is_flag=True, help="Build every step again (e.g. a newer CLI).")
@click.option("--host", default="", help="Docker engine URL (default: DOCKER_HOST or the socket).")
@pass_app
def build(app: AppContext, which: str, ca_bundle: Path | None, no_cache: bool, host: str) -> None:
    """Build WHICH image (claude, codex, gemini, base, or all); the base comes first."""
    from mecha.app.docker import build_images

    began = time.monotonic()
    built = build_images(
        which, host=host, ca_bundle=ca_bundle, no_cache=no_cache, progress=app.echo
    )
    app.echo(f"built {', '.join(built)} in {time.monotonic() - began:.0f}s")
