"""Where prompts run: the worker contract, its HTTP client, adapters and managed containers."""
