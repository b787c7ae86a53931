"""How a path is spelled as text: :func:`path_text`, what ``str(pathlib.Path(text))`` gives.

Holds the one rule a location's folder and a SQLite database's file are shown and compared
by, without importing :mod:`pathlib` on a start (with :mod:`urllib.parse` and :mod:`ipaddress`
it is milliseconds). Imports only :mod:`os`; must not know anything else of selfmigrate.
"""

from __future__ import annotations

import os


def path_text(text: str) -> str:
    """``str(pathlib.Path(text))``: empty and ``.`` parts and trailing slashes dropped.

    A leading ``//`` (exactly two) is kept, as POSIX allows and :mod:`pathlib` does.
    Where paths are not POSIX ones (Windows), :mod:`pathlib` itself.
    """
    if os.sep != "/" or os.altsep is not None:
        from pathlib import Path

        return str(Path(text))
    root = "//" if text.startswith("//") and not text.startswith("///") else "/" if text.startswith("/") else ""
    return root + "/".join(part for part in text.split("/") if part and part != ".") or "."
