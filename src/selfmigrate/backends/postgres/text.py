"""Text PostgreSQL cannot store as is: the fingerprint key's NUL separators.

Holds :func:`stored_text` and :func:`loaded_text` (exact inverses), used by the backend when
the tracker stores its fingerprint key and by the quick reader (on the no-op start: both are
a prefix test and one ``str.replace``). Imports nothing.
"""

from __future__ import annotations

# A key holds NUL but (in practice) never \x01: NUL is written \x01 behind the first
# prefix. Any other text is escaped with backslashes behind the second.
_SWAPPED = "\x01:"
_ESCAPED = "\x02:"


def stored_text(text: str) -> str:
    """``text`` without NUL (which a PostgreSQL ``text`` value cannot hold), reversibly."""
    if "\x01" not in text:
        return _SWAPPED + text.replace("\0", "\x01")
    return _ESCAPED + text.replace("\\", "\\\\").replace("\0", "\\0")


def loaded_text(text: str) -> str:
    """The inverse of :func:`stored_text` (other text is returned as it is)."""
    if text.startswith(_SWAPPED):
        return text[len(_SWAPPED) :].replace("\x01", "\0")
    if not text.startswith(_ESCAPED):
        return text
    out, i, body = [], 0, text[len(_ESCAPED) :]
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append("\0" if body[i + 1] == "0" else body[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
