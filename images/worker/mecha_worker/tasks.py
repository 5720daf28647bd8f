"""Doing one task: single flight, the chosen backend, the time limit, the answer.

``Worker.try_start`` takes the one slot (False while a task runs: the server answers
429), ``Worker.run`` does the task and returns the answer, ``Worker.finish`` frees the
slot. The ``echo`` backend answers with the prompt itself and runs no process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mecha_worker import answer, backends
from mecha_worker.config import Config
from mecha_worker.process import Runner

log = logging.getLogger("mecha_worker")


@dataclass(frozen=True)
class Task:
    """A task as posted: ``{"id", "prompt", "context"}``."""

    prompt: str
    id: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


class Worker:
    """One backend, one task at a time."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.runner = Runner()
        self._slot = threading.Lock()
        self._backend = None if config.backend == "echo" else backends.get(config.backend)

    @property
    def busy(self) -> bool:
        """Whether a task runs now."""
        return self._slot.locked()

    def try_start(self) -> bool:
        """Take the slot; False when a task already runs."""
        return self._slot.acquire(blocking=False)

    def finish(self) -> None:
        """Free the slot taken by ``try_start``."""
        self._slot.release()

    def run(self, task: Task) -> dict[str, Any]:
        """Do ``task`` (the slot must be held) and return its answer."""
        name = self.config.backend
        if self.config.dry_run:
            command = [] if self._backend is None else self._command(task.prompt)
            return answer.dry_run(task.prompt, backend=name, command=command)
        if self._backend is None:
            return _echo(task.prompt)
        call = self._backend.invocation(task.prompt, self.config.env)
        env = {**self._backend.environment(self.config.env), "MECHA_TASK_ID": task.id}
        done = self.runner.run(
            call.argv,
            env=env,
            cwd=self.config.cwd,
            timeout=self.config.timeout,
            stdin_text=call.stdin_text,
        )
        if done.timed_out:
            log.warning("task %s: timed out after %g s, killed", task.id, self.config.timeout)
            return answer.timed_out(self.config.timeout, backend=name, duration_ms=done.duration_ms)
        outcome = self._backend.parse(done, self.config.env)
        if outcome.error:
            log.warning("task %s: %s failed with exit code %d", task.id, name, done.exit_code)
        return answer.from_outcome(outcome, backend=name, duration_ms=done.duration_ms)

    def _command(self, prompt: str) -> list[str]:
        """The argv a run would use, the prompt shown as <prompt>."""
        assert self._backend is not None
        call = self._backend.invocation(prompt, self.config.env)
        shown = {prompt: "<prompt>", f"--prompt={prompt}": "--prompt=<prompt>"}
        return [shown.get(part, part) for part in call.argv]


def _echo(prompt: str) -> dict[str, Any]:
    started = time.monotonic()
    words = len(prompt.split())
    outcome = backends.Outcome(text=prompt, model="echo", input_tokens=words, output_tokens=words)
    took = int((time.monotonic() - started) * 1000)
    return answer.from_outcome(outcome, backend="echo", duration_ms=took)
