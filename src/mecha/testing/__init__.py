"""Fakes that speak real wire formats, shared by all tests."""

from __future__ import annotations
