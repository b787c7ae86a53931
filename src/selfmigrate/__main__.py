"""``python -m selfmigrate``: the command line."""

from __future__ import annotations

import os
import sys


def run() -> None:
    """Answer ``status`` on an up-to-date database at once if it can be (a health check's
    call, see :mod:`.faces.cli.quickstatus`), else run the full command line."""
    from .faces.cli.quickstatus import answer

    quick = answer(sys.argv[1:], os.environ, os.getcwd())
    if quick is not None:
        output, code = quick
        sys.stdout.write(output)
        sys.stdout.flush()
        raise SystemExit(code)
    from .faces.cli.main import main

    main()


if __name__ == "__main__":
    run()
