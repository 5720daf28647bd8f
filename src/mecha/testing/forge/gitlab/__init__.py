"""GitLab's REST API as the emulator answers it."""
