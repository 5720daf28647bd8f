"""The parts of ``mecha.testing.memory_store.MemoryStore``: its tables and what each group of
Store methods does to them (the in-memory counterparts of ``mecha.store.sqlite``'s modules).

Every function here is given the ``Tables`` of one transaction and never locks; the store
holds its lock around each call and keeps the tables only if the call returns.
"""

from __future__ import annotations
