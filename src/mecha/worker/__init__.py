"""The worker: spec, kind, the parser and rules of a worker file, files, matching (pure)."""
