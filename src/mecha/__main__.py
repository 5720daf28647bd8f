"""``python -m mecha`` runs the command line."""

from __future__ import annotations

from mecha.cli import main

if __name__ == "__main__":
    main()
