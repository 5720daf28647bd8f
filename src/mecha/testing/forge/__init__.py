"""A GitHub and GitLab emulator speaking their real wire formats, shared by every test."""
