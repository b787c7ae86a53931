"""The no-op start's read of a SQLite database: stored fingerprint and tracker rows, nothing else.

Holds :func:`read`, what :func:`selfmigrate.backends.select.quick_read` calls for a SQLite
path, and :func:`database_location` for an app factory. Imports only :mod:`os` and
:mod:`sqlite3` (it is most of an up-to-date start's cost); must not know migrations, the
runner or the rest of this backend.
"""

from __future__ import annotations

import os
import sqlite3

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t
    from pathlib import Path


def read(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, list[tuple[int, str, str]]] | None:
    """The fingerprint stored in ``<table>_fingerprint`` and the rows of ``table``, or ``None``.

    ``None`` means "look properly": a ``sqlite:`` URL (the full run parses it), no
    such file, no fingerprint table yet, a file that is not SQLite, a busy
    database. Nothing is written and no lock is taken.
    """
    read: tuple[str | None, list[tuple[int, str, str]]] | None
    read = _read(database, table, lock_timeout, f"version, checksum, state FROM {table}")
    return read


def read_status(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, list[tuple[t.Any, ...]]] | None:
    """As :func:`read`, each row with what ``status`` shows of it: ``(version, checksum, state,
    applied_at, duration_ms, kind, compatible, down_checksum)``, the last three from
    ``<table>_rollback`` as the tracker joins them (``None`` without that table)."""
    columns = "t.version, t.checksum, t.state, t.applied_at, t.duration_ms"
    joined = (
        f"{columns}, r.kind, r.compatible, r.down_checksum FROM {table} t LEFT JOIN {table}_rollback r"
        " ON r.version = t.version AND r.checksum = t.checksum"
    )
    read: tuple[str | None, list[tuple[t.Any, ...]]] | None = _read(database, table, lock_timeout, joined)
    if read is None:
        read = _read(database, table, lock_timeout, f"{columns}, NULL, NULL, NULL FROM {table} t")
    return read


def read_rows(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, str, str, str, int] | None:
    """The stored digest, the rows' columns as three texts and the newest version; ``None`` as :func:`read`.

    The texts, in version order: the versions separated by spaces, the checksums
    and the states each separated by newlines. Built by SQLite in one pass over the
    table, with no object and no concatenated line per row (a line per row cost
    twice as much at 10 000). ``group_concat`` follows the table's rowid order,
    which is the version (``version INTEGER PRIMARY KEY``); if it ever did not, the
    texts would not match the certified ones and the start would look properly.
    """
    path = os.fspath(database)
    if path.startswith("sqlite") or not os.path.isfile(path):
        return None
    uri = "file:" + os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    try:
        conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=lock_timeout)
        try:
            row = conn.execute(
                f"SELECT (SELECT fingerprint FROM {table}_fingerprint WHERE id = 1), group_concat(version, ' '),"
                f" group_concat(checksum, char(10)), group_concat(state, char(10)), max(version) FROM {table}"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    stored, versions, checksums, states, newest = row
    if not (isinstance(versions, str) and isinstance(checksums, str) and isinstance(states, str)):
        return None
    if not isinstance(newest, int):
        return None
    return (stored if isinstance(stored, str) else None), versions, checksums, states, newest


def _read(database: str | os.PathLike[str], table: str, lock_timeout: float, columns: str) -> t.Any:
    """``(stored digest, rows)``: ``SELECT columns ORDER BY 1`` (``columns`` names its FROM)."""
    path = os.fspath(database)
    if path.startswith("sqlite") or not os.path.isfile(path):
        return None
    uri = "file:" + os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    try:
        conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=lock_timeout)
        try:
            stored = conn.execute(f"SELECT fingerprint FROM {table}_fingerprint WHERE id = 1").fetchone()
            rows = conn.execute(f"SELECT {columns} ORDER BY 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        # The full run meets the same thing and says what it is.
        return None
    return (None if stored is None else stored[0]), rows


def database_location(
    database: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, *, flask_sqlalchemy: bool = False
) -> Path:
    """The file of a SQLite path or URL (see :func:`.backend.database_location`), without the backend's imports."""
    text = os.fspath(database)
    if text not in ("", ":memory:") and not text.startswith(("sqlite", "file:")):
        from pathlib import Path

        # A plain path, as connection.database_path reads one (what an app's config holds).
        path = Path(text)
        return path if base is None or path.is_absolute() else Path(base) / path
    from .connection import database_path

    return database_path(database, base, flask_sqlalchemy=flask_sqlalchemy)
