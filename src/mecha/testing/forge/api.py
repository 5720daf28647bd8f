"""GitHub's and GitLab's REST APIs emulated on loopback, in their wire formats: ``ForgeEmulator``.

A real HTTP server on ``127.0.0.1`` (a free port) in a daemon thread. Seed it with pull
and merge requests, point a client at ``github_url`` (as ``GITHUB_API_URL``) or
``gitlab_url`` (an instance's base URL; API under ``/api/v4``), and assert on ``requests``::

    with ForgeEmulator(github_token="ghp_test") as forge:
        forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=[...])
        forge.push_pull("octo", "hello", 7, head_sha=NEW, files=[...])  # force=True: rewritten
        forge.fail(r"/pulls/7/files", 500, times=1)
        ...
        assert forge.requests[0].headers["accept"] == "application/vnd.github.diff"

Several clients (e.g. nodes of one deployment) can be told apart: point each at
``github_url_for(name)`` and read ``Recorded.caller``. ``hold`` makes a write happen at
once but keeps its answer until released: a client stuck between the forge's write and
its own record of it, for as long as the test wants.

What each forge serves is described in ``forge_github`` and ``forge_gitlab``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mecha.testing.forge.github.emulator import GitHubState, github_error
from mecha.testing.forge.gitlab.emulator import GitLabState, gitlab_error
from mecha.testing.forge.seeding import Seeding
from mecha.testing.forge.wire import Call, FileChange, Reply

__all__ = ["FileChange", "ForgeEmulator", "Recorded"]


@dataclass(frozen=True)
class Recorded:
    """One request the emulator received."""

    method: str
    #: the full path as sent (percent-encoded), e.g. /github/repos/o/r/pulls/7/files
    path: str
    query: dict[str, str]
    #: lowercase names
    headers: dict[str, str]
    body: bytes
    #: the name in the URL the client was given (``github_url_for(name)``), "" if none
    caller: str = ""
    #: every query parameter in order, repeated names too (``query`` keeps the last)
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int | None
    delay: float
    method: str = ""
    #: wait after the request was carried out, before answering (status 0 only)
    late: bool = False
    #: with ``late``: answer once this is set (or the emulator closes), not after ``delay``
    release: threading.Event | None = None


class ForgeEmulator(Seeding):
    """GitHub's and GitLab's REST APIs on one loopback port; a context manager."""

    def __init__(
        self,
        *,
        github_token: str = "",
        gitlab_token: str = "",
        token_ttl: float = 3600.0,
    ) -> None:
        self.github = GitHubState()
        self.gitlab = GitLabState()
        if github_token:
            self.github.tokens[github_token] = None
        if gitlab_token:
            self.gitlab.tokens.add(gitlab_token)
        self.github.token_ttl = token_ttl
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._log: list[Recorded] = []
        self._failures: list[_Failure] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ForgeEmulator:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Bind a free loopback port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="forge-api", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving, wake delayed answers, close the socket and join every thread."""
        self._closing.set()
        with self._lock:
            for failure in self._failures:
                if failure.release is not None:
                    failure.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("the forge emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def github_url(self) -> str:
        """Where GitHub's API is served: use it as ``GITHUB_API_URL``."""
        return f"{self.base_url}/github"

    def github_url_for(self, caller: str) -> str:
        """``github_url`` for one client: its requests are recorded with ``caller``."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", caller):
            raise ValueError(f"a caller's name is letters, digits, '_', '.' or '-': {caller!r}")
        return f"{self.base_url}/~{caller}/github"

    @property
    def gitlab_url(self) -> str:
        """The GitLab instance's base URL; its API is under ``/api/v4``."""
        return f"{self.base_url}/gitlab"

    def github_app(self, app_id: str | int, public_key: Any) -> None:
        """Accept App JWTs signed by the key whose public half (PEM or key object) is given."""
        with self._lock:
            self.github.app_id = str(app_id)
            self.github.app_key = public_key

    def fail(
        self,
        path_regex: str,
        status: int = 500,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        method: str = "",
    ) -> None:
        """Answer requests whose path matches ``path_regex`` with ``status``.

        ``body``: JSON data, text or bytes (default: the forge's error JSON); ``times``:
        how many requests (None: all); ``delay``: seconds to wait first (a slow or hung
        server); ``status`` 0 answers normally after the delay; ``method``: only requests
        of this method (default: any).
        """
        failure = _Failure(
            re.compile(path_regex), status, body, headers or {}, times, delay, method.upper()
        )
        with self._lock:
            self._failures.append(failure)

    def answer_late(
        self, path_regex: str, delay: float, *, method: str = "", times: int | None = 1
    ) -> None:
        """Carry out matching requests at once but answer only after ``delay`` seconds.

        The forge has made the change while the client still waits: what a client killed
        between the forge's write and its own record of it leaves behind.
        """
        late = _Failure(re.compile(path_regex), 0, None, {}, times, delay, method.upper(), True)
        with self._lock:
            self._failures.append(late)

    def hold(self, path_regex: str, *, method: str = "", times: int | None = 1) -> threading.Event:
        """Carry out matching requests at once but answer only once the event returned is set.

        Like ``answer_late``, for as long as the test wants: ``.set()`` it to let the
        answers go (closing the emulator lets them go too).
        """
        release = threading.Event()
        held = _Failure(
            re.compile(path_regex), 0, None, {}, times, 0.0, method.upper(), True, release
        )
        with self._lock:
            self._failures.append(held)
        return release

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._log)

    def paths(self, method: str = "") -> list[str]:
        """The paths (with ``?query`` when there is one) requested, optionally of one method."""
        return [
            r.path + (f"?{'&'.join(f'{k}={v}' for k, v in r.query.items())}" if r.query else "")
            for r in self.requests
            if not method or r.method == method
        ]

    @property
    def lock(self) -> threading.RLock:
        """Hold it to read or change ``github``/``gitlab`` state while the server runs."""
        return self._lock

    def issued_tokens(self) -> list[tuple[str, str]]:
        """``(installation id, token)`` for every GitHub App installation token handed out."""
        with self._lock:
            return list(self.github.issued)

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request: record it, apply injected failures, then route it."""
        parts = urlsplit(target)
        pairs = tuple(parse_qsl(parts.query, keep_blank_values=True))
        query = dict(pairs)
        path, caller = parts.path, ""
        if path.startswith("/~"):  # a URL from github_url_for(caller)
            caller, _, rest = path[2:].partition("/")
            path = "/" + rest
        with self._lock:
            self._log.append(Recorded(method, path, query, headers, body, caller, pairs))
            failure = self._failure(method, path)
        if failure is not None and failure.delay and not failure.late:
            self._closing.wait(failure.delay)
        if failure is not None and failure.status:
            return _failure_reply(failure, path)
        forge, _, rest = path.lstrip("/").partition("/")
        prefix = f"{self.base_url}/~{caller}" if caller else self.base_url
        call = Call(method, "/" + rest, query, headers, body, f"{prefix}/{forge}", pairs)
        with self._lock:
            if forge == "github":
                reply = self.github.handle(call)
            elif forge == "gitlab":
                reply = self.gitlab.handle(call)
            else:
                reply = github_error(404, "Not Found")
        if failure is not None and failure.late:
            if failure.release is not None:
                failure.release.wait()
            else:
                self._closing.wait(failure.delay)
        return reply

    def _failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method and failure.method != method:
                continue
            if failure.times != 0 and failure.pattern.search(path):
                if failure.times is not None:
                    failure.times -= 1
                return failure
        return None


def _failure_reply(failure: _Failure, path: str) -> Reply:
    if failure.body is None:
        if path.startswith("/gitlab"):
            reply = gitlab_error(failure.status, f"{failure.status} {_reason(failure.status)}")
        else:
            reply = github_error(failure.status, _reason(failure.status))
    elif isinstance(failure.body, bytes | str):
        raw = failure.body.encode("utf-8") if isinstance(failure.body, str) else failure.body
        reply = Reply(failure.status, raw, {"Content-Type": "text/plain; charset=utf-8"})
    else:
        body = json.dumps(failure.body).encode("utf-8")
        reply = Reply(failure.status, body, {"Content-Type": "application/json; charset=utf-8"})
    reply.headers.update(failure.headers)
    return reply


def _reason(status: int) -> str:
    return BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]


class _Server(ThreadingHTTPServer):
    # handler threads are joined on close (delayed answers wake when the emulator closes)
    daemon_threads = False
    block_on_close = True
    emulator: ForgeEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout, a read cap) is not an error worth printing."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: seconds a silent client may hold a connection (so closing never waits long)
    timeout = 10

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.emulator.dispatch(self.command, self.path, headers, body)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
