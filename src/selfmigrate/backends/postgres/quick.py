"""The no-op start's read of a PostgreSQL database: stored fingerprint and tracker rows, one query.

Holds :func:`read`, what :func:`selfmigrate.backends.select.quick_read` calls for a PostgreSQL
URL: one connection, one round trip, no lock, nothing written. Must not know migrations or
the rest of this backend (it imports psycopg and :mod:`.url` only).
"""

from __future__ import annotations

import os


def read(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, list[tuple[int, str, str]]] | None:
    """The fingerprint stored in ``<table>_fingerprint`` and the rows of ``table``, or ``None``.

    The tables are found through the session's ``search_path``, as the full run
    finds the tracker's schema. ``None`` means "look properly": no server, no
    tracker or fingerprint table yet, any error. The full run meets the same
    thing and says what it is.
    """
    import psycopg

    from .text import loaded_text
    from .url import libpq_url

    try:
        conninfo = libpq_url(os.fspath(database))
    except ValueError:
        return None
    fingerprint = f'"{table}_fingerprint"'
    try:
        with psycopg.connect(
            conninfo, autocommit=True, prepare_threshold=None, connect_timeout=max(1, min(30, int(lock_timeout) or 1))
        ) as conn:
            rows = conn.execute(
                f'SELECT (SELECT fingerprint FROM {fingerprint} WHERE id = 1), version, checksum, state FROM "{table}"'
                " ORDER BY version"
            ).fetchall()
    except psycopg.Error:
        return None
    if not rows:
        return None
    stored = rows[0][0]
    return (None if stored is None else loaded_text(stored)), [(int(v), str(c), str(s)) for _, v, c, s in rows]
