"""``mecha serve``: the webhook receiver and API, until SIGINT or SIGTERM."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable, Mapping
from types import FrameType

import click

from mecha.cli.context import AppContext, pass_app
from mecha.errors import ServerError

log = logging.getLogger("mecha.serve")


@click.command()
@click.option(
    "--addr", help="host:port to listen on (over MECHA_ADDR, config.yml addr:; 127.0.0.1:21212)."
)
@click.option(
    "--api-key", help="Key API callers must send (over MECHA_API_KEY, config.yml api_key:)."
)
@click.option("--insecure", is_flag=True, help="Open the API beyond loopback without an API key.")
@pass_app
def serve(app: AppContext, addr: str | None, api_key: str | None, insecure: bool) -> None:
    """Receive webhooks, store them durably, and match them to workers."""
    import uvicorn

    from mecha.app.serve import Ingest, resolve_listen

    _GracefulServer = _graceful_server_class()
    from mecha.config.settings import ensure_home, load_server_config

    if "MECHA_LOG_LEVEL" not in app.environ:
        logging.getLogger().setLevel(logging.INFO)
    ensure_home(app.settings)
    flags = {"addr": addr, "api_key": api_key}  # over MECHA_ADDR / MECHA_API_KEY, config.yml
    config = load_server_config(app.settings, app.environ, flags=flags)
    listen = resolve_listen(addr=None, api_key=None, insecure=insecure, config=config)
    app.known.add({listen.api_key})
    secrets = app.secrets()
    store = app.store()  # chooses the database first: Ingest's settings carry the choice
    ingest = Ingest(
        settings=app.settings, config=config, secrets=secrets, environ=app.environ,
        api_key=listen.api_key, api_closed=listen.api_closed, store=store,
        reload_secrets=app.reload_secrets, known=app.known,
    )  # fmt: skip
    sock = _bind(listen.host, listen.port)
    host, port = sock.getsockname()[:2]
    sources = ", ".join(f"/webhook/{name}" for name in sorted(ingest.sources))
    from mecha.server.app import serve_app
    from mecha.server.header_limit import HeaderCappedHttpTools

    asgi = serve_app(ingest)
    # the access log at INFO, GET /health and /metrics (probes) at DEBUG (cli/log_format)
    uv = uvicorn.Config(
        asgi, log_config=None, access_log=True, lifespan="on",
        timeout_graceful_shutdown=30, server_header=False,
        http=HeaderCappedHttpTools,
    )  # fmt: skip
    server = _GracefulServer(uv)
    server.on_exit = asgi.state.mecha.stopping.set  # the dashboard's live streams end
    app.announce(log.name, f"listening on http://{_shown(host)}:{port} ({sources})")
    app.announce(log.name, f"storing in {app.database_name()}")
    if given := _from_environment(config.origins):
        app.announce(log.name, f"settings from the environment: {given}")
    if listen.api_closed:
        app.announce(log.name, _closed_line(host))
    server.run(sockets=[sock])
    if not server.started:
        raise ServerError("the server did not start", hint="see the log lines above")
    app.announce(log.name, "stopped")
    sys.stderr.flush()


def _from_environment(origins: Mapping[str, str]) -> str:
    """``MECHA_ADDR, MECHA_API_KEY`` (the variables that set something; values not shown),
    "" if none did."""
    names = sorted({origin.removeprefix("env ") for origin in origins.values()
                    if origin.startswith("env ")})  # fmt: skip
    return ", ".join(names)


def _graceful_server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Stops on SIGINT/SIGTERM like uvicorn, then exits 0 instead of re-raising the signal."""

        on_exit: Callable[[], None] = staticmethod(lambda: None)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.on_exit()
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return GracefulServer


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(
                f"{_shown(host)}:{port} is already in use",
                hint="is another `mecha serve` running? stop it, or choose --addr host:port",
            ) from None
        raise ServerError(
            f"cannot listen on {_shown(host)}:{port}: {exc.strerror}",
            hint="check the address; ports below 1024 need privileges",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _closed_line(host: str) -> str:
    from mecha.server.state import OPEN_API_HINT

    return (
        f"webhooks open, API closed: {_shown(host)} is beyond loopback and there is no API key, "
        f"so /events, /event, /task, /tasks, /workers and /metrics answer 403; to open it, "
        f"{OPEN_API_HINT}"
    )


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
