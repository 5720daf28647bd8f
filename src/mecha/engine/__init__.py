"""The engine: the pipeline (store, match, dispatch, write back); names only Protocols."""

from __future__ import annotations
