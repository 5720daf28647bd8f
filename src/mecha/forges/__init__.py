"""Forges: webhook sources in, diffs fetched, results written back (GitHub, GitLab, generic)."""

from __future__ import annotations
