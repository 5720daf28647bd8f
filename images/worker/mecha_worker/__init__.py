"""Mecha's in-container worker: the worker HTTP contract in front of one coding CLI.

``python3 -m mecha_worker`` serves ``GET /health`` and ``POST /task`` (upstream §6) and
answers every task with the result contract (§6.1). ``WORKER_BACKEND`` chooses the CLI
that does the work: ``claude`` (Claude Code), ``codex`` (Codex CLI), ``gemini`` (Gemini
CLI) or ``echo`` (answers with the prompt; for tests). Standard library only, so the
images need nothing but Debian's ``python3``.

Modules: ``config`` (the environment, read once), ``server`` (HTTP, auth, limits, single
flight), ``process`` (one CLI run in its own process group, killed on timeout),
``backends`` (command line and output parser per CLI), ``structured`` (JSON the model
wrote, mapped to comment/labels/status/commit) and ``answer`` (the result JSON).
"""

from __future__ import annotations

__version__ = "0.1.0"
