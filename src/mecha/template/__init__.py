"""Prompt templates: Jinja-style and Go text/template prompts, and ${VAR} interpolation (pure)."""
