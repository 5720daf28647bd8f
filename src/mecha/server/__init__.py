"""The HTTP server: webhook intake, the JSON API, /health and /metrics (thin: work is in engine)."""
