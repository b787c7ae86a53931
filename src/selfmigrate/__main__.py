"""``python -m selfmigrate``: the command line."""

from __future__ import annotations

from .faces.cli.main import main

if __name__ == "__main__":
    main()
