"""The container's entrypoint: ``mecha`` with its arguments, ``serve`` by default.

Until ``mecha serve`` reads MECHA_ADDR and MECHA_API_KEY itself, this passes them on as
``--addr`` and ``--api-key`` (an explicit flag wins, as it will then). The key goes to
the command line inside this process only (``sys.argv`` is replaced in memory): it is
never written to disk and never shows in ``ps`` or ``/proc/PID/cmdline``, which keep
the arguments the container was started with. Every other command runs unchanged.

Once serve reads both variables, this file goes: ``ENTRYPOINT ["tini", "--", "mecha"]``.
"""

from __future__ import annotations

import os
import sys

#: serve's flags this fills in, from the variable of the same meaning
FROM_ENVIRONMENT = (("--addr", "MECHA_ADDR"), ("--api-key", "MECHA_API_KEY"))


def arguments(given: list[str], environ: dict[str, str]) -> list[str]:
    """``given`` (``serve`` if empty) with serve's flags filled in from ``environ``."""
    args = given or ["serve"]
    if args[0] != "serve":
        return args
    added: list[str] = []
    for flag, variable in FROM_ENVIRONMENT:
        named = any(a == flag or a.startswith(f"{flag}=") for a in args[1:])
        if not named and environ.get(variable):
            added += [flag, environ[variable]]
    return ["serve", *added, *args[1:]]


def main() -> None:
    from mecha.config.server_file import API_KEY_HINT, api_key_problem

    key = os.environ.get("MECHA_API_KEY", "")
    if key and (problem := api_key_problem(key)):
        sys.stderr.write(f"error: MECHA_API_KEY {problem}\nhint: {API_KEY_HINT}\n")
        sys.exit(2)
    sys.argv = ["mecha", *arguments(sys.argv[1:], dict(os.environ))]
    from mecha.cli import main as mecha

    mecha()


if __name__ == "__main__":
    main()
