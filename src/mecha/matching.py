"""Matching events to workers (being written)."""

from __future__ import annotations
