"""The files `mecha demo` runs on: an example worker on the embedded model, a sample event."""
