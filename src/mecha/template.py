"""Prompt templates (being written)."""

from __future__ import annotations
