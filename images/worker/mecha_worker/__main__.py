"""``python3 -m mecha_worker``: read the environment, serve until SIGTERM or SIGINT.

On SIGTERM (``docker stop``) the running CLI's process group is killed and the server
stops. A bad WORKER_* variable exits with code 2 and says which one.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from mecha_worker import __version__
from mecha_worker.config import ConfigError, from_env
from mecha_worker.server import serve
from mecha_worker.tasks import Worker

log = logging.getLogger("mecha_worker")


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def main() -> int:
    """Run the worker; the exit code."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = from_env()
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    worker = Worker(config)
    try:
        server = serve(worker)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
        return 1
    signal.signal(signal.SIGTERM, _on_term)
    host, port = server.server_address[:2]
    log.info(
        "mecha-worker %s: backend %s on %s:%s%s%s",
        __version__,
        config.backend,
        host,
        port,
        " (dry run)" if config.dry_run else "",
        ", API key required" if config.api_key else "",
    )
    try:
        server.serve_forever()
    except (_Stop, KeyboardInterrupt):
        log.info("stopping")
    finally:
        worker.runner.kill()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
