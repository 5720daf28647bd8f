"""Wake-ups between nodes: ``Listener`` LISTENs on ``mecha_tasks`` on a connection of its own.

A node's transactions notify the channel when a task leaves ``running`` (a slot of a
worker limited across nodes may be free), becomes ``pending`` again, is taken back from a
dead node, or is made through the API (``mecha.store.postgres.tasks``). Every listening
node is told at the commit and looks for due tasks at once instead of at its next poll; a
burst of notifications is one look. A notification about one node's own tasks (its
completions, its retries) names that node, and that node's listener ignores it: its
dispatcher saw the change as it made it (on one node, each completion would otherwise
cost a second look at the database).

The listener runs on a thread (psycopg's ``notifies`` blocks). If its connection breaks it
says so once, calls ``heard`` (a notification may have been missed meanwhile: the poll
finds what it was about anyway) and connects again with a growing pause; the node keeps
working on its polls alone until then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from mecha.errors import StoreError
from mecha.store.postgres.server import Server
from mecha.store.postgres.tasks import CHANNEL

log = logging.getLogger(__name__)

#: seconds between looks at whether the listener should stop
_TICK = 0.5
#: the longest pause between attempts to connect again
_MOST_PAUSE = 10.0


class Listener:
    """Calls ``heard`` (on its own thread) whenever another transaction notifies the channel."""

    def __init__(self, server: Server, heard: Callable[[], None], node: str = "") -> None:
        self._server = server
        self._heard = heard
        self._node = node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set once the first LISTEN is in place (tests wait on it)
        self.listening = threading.Event()
        #: notifications heard so far
        self.count = 0

    def start(self) -> None:
        """Begin listening on a thread of its own; returns at once."""
        self._thread = threading.Thread(target=self._run, name="mecha-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and close the connection (within about half a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        pause = 0.5
        while not self._stop.is_set():
            try:
                self._listen()
                return
            except psycopg.Error as exc:
                why = self._server.store_error(exc, "listening for other nodes' tasks").message
                log.warning("%s; polling only, connecting again in %.1f s", why, pause)
            except StoreError as exc:
                log.warning("%s; polling only, connecting again in %.1f s", exc.message, pause)
            self._heard()  # what was missed meanwhile
            if self._stop.wait(pause):
                return
            pause = min(_MOST_PAUSE, pause * 2)

    def _listen(self) -> None:
        with self._server.connect("listening for other nodes' tasks") as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            while not self._stop.is_set():
                for notice in conn.notifies(timeout=_TICK):
                    if self._node and notice.payload == self._node:
                        continue  # this node's own change
                    self.count += 1
                    self._heard()  # cheap: the dispatcher coalesces a burst into one look
