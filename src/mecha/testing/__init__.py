"""What tests share: a forge emulator, an in-memory Store, a worker, a serve process."""

from __future__ import annotations
