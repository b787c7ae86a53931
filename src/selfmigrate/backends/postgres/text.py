"""Text PostgreSQL cannot store as is: the fingerprint key's NUL separators, escaped.

Holds :func:`stored_text` and :func:`loaded_text` (exact inverses), used by the backend when
the tracker stores its fingerprint key and by the quick reader. Imports nothing.
"""

from __future__ import annotations


def stored_text(text: str) -> str:
    """``text`` with ``\\`` doubled and NUL written ``\\0``: a PostgreSQL ``text`` value holds no NUL."""
    return text.replace("\\", "\\\\").replace("\0", "\\0")


def loaded_text(text: str) -> str:
    """The inverse of :func:`stored_text`."""
    if "\\" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append("\0" if text[i + 1] == "0" else text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
