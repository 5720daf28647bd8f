"""Where prompts run: the worker contract client and, later, Docker and adapter runtimes."""
