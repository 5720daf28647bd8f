"""Unified diffs: parsing, quoted paths, suggestions, cutting to a budget (pure)."""
