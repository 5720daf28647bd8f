"""Adapter workers: in-process bridges to Ollama, OpenAI-compatible APIs and the embedded model."""
