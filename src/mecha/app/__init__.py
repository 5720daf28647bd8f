"""The one composition root.

Builds the store, forges, runtimes and engine from settings, for serve and the CLI.
"""
