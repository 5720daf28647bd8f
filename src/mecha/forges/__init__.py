"""Forges: GitHub, GitLab and generic sources — webhook parsing (sans-I/O) and API clients."""

from __future__ import annotations
