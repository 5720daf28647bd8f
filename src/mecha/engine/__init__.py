"""The engine: matching events to workers (and, later, dispatching tasks)."""

from __future__ import annotations
