"""A warm pool whose container fails to start tries again, with a growing wait.

The engine is replaced at its one seam (``Disposables._start``): what is checked here is
the pool's bookkeeping, the real containers are in tests/e2e/test_serve_managed.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mecha.runtimes.contract import WorkerFailure
from mecha.runtimes.managed import pools as managed
from mecha.runtimes.managed.docker import Started
from mecha.runtimes.managed.pools import Disposables
from mecha.secrets import Secrets
from mecha.worker.parser import parse_worker
from mecha.worker.spec import WorkerSpec
from mecha.yaml_doc import load_yaml


def pooled(size: int = 1, image: str = "img:1") -> WorkerSpec:
    text = (
        f"name: warm\ndocker:\n  image: {image}\n  lifecycle: disposable\n  pool: {size}\n"
        "events:\n  - source: github\n    on: pull_request.opened\n    prompt: hi\n"
    )
    return parse_worker(load_yaml(text, file="w.yml"), environ={}).spec


class Engine:
    """Fails the first ``failures`` starts, transiently unless told otherwise."""

    def __init__(self, failures: int, *, transient: bool = True) -> None:
        self.failures = failures
        self.transient = transient
        self.starts = 0

    async def start(self, name: str, spec: WorkerSpec) -> Started:
        self.starts += 1
        if self.starts <= self.failures:
            raise WorkerFailure("its container did not start: boom", transient=self.transient)
        return Started(f"id{self.starts}", f"c{self.starts}", "http://127.0.0.1:1", 0.1)


def disposables(tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Disposables:
    monkeypatch.setattr(managed, "POOL_RETRY_FIRST", 0.01)
    made = Disposables(home=tmp_path, secrets=Secrets.empty)
    monkeypatch.setattr(made, "_start", engine.start)
    monkeypatch.setattr(made, "_discard", lambda spec, started: None)
    return made


async def until(made: Disposables, count: int) -> None:
    for _ in range(2000):  # a generous deadline, in loop turns
        if made.ready("warm") >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the pool never held {count}")


def test_a_pool_start_that_fails_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(failures=3)

    async def scenario() -> None:
        made = disposables(tmp_path, engine, monkeypatch)
        made.fill_soon("warm", pooled())
        await until(made, 1)
        await made.close()

    asyncio.run(scenario())
    assert engine.starts == 4  # three failures, then the pool is full: no more starts


def test_the_wait_doubles_and_a_success_resets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(failures=2)

    async def scenario() -> list[float]:
        made = disposables(tmp_path, engine, monkeypatch)
        made.fill_soon("warm", pooled())
        seen: list[float] = []
        for _ in range(2000):
            wait = made._backoff.get("warm")
            if wait is not None and (not seen or seen[-1] != wait):
                seen.append(wait)
            if made.ready("warm"):
                break
            await asyncio.sleep(0.001)
        assert "warm" not in made._backoff  # filled: the next failure starts short again
        await made.close()
        return seen

    assert asyncio.run(scenario()) == [0.02, 0.04]


def test_a_permanent_failure_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(failures=1, transient=False)  # e.g. the image is missing

    async def scenario() -> None:
        made = disposables(tmp_path, engine, monkeypatch)
        made.fill_soon("warm", pooled())
        for _ in range(50):
            await asyncio.sleep(0.01)
        assert made.ready("warm") == 0
        await made.close()

    asyncio.run(scenario())
    assert engine.starts == 1


def test_close_does_not_wait_for_a_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(failures=1)

    async def scenario() -> None:
        made = disposables(tmp_path, engine, monkeypatch)
        monkeypatch.setattr(managed, "POOL_RETRY_FIRST", 3600.0)
        made.fill_soon("warm", pooled())
        while engine.starts == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await asyncio.wait_for(made.close(), 600)  # a retry an hour away would hang here

    asyncio.run(scenario())
    assert engine.starts == 1  # and the retry never ran


def test_a_new_definition_cancels_the_retry_of_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(failures=1)
    made_from: list[str] = []

    async def scenario() -> None:
        made = disposables(tmp_path, engine, monkeypatch)
        monkeypatch.setattr(managed, "POOL_RETRY_FIRST", 0.2)
        real_start = engine.start

        async def start(name: str, spec: WorkerSpec) -> Started:
            assert spec.docker is not None
            made_from.append(spec.docker.image)
            return await real_start(name, spec)

        monkeypatch.setattr(made, "_start", start)
        made.fill_soon("warm", pooled(image="img:1"))
        while engine.starts == 0:
            await asyncio.sleep(0.01)
        made.reset("warm", pooled(image="img:2"))
        await until(made, 1)
        await asyncio.sleep(0.4)  # past the old retry's wait
        await made.close()

    asyncio.run(scenario())
    assert made_from == ["img:1", "img:2"]
