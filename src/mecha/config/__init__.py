"""Configuration: where Mecha keeps its files, config.yml, sources and retention."""
