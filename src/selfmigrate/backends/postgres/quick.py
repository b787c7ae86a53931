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
            # One row: the key once, and the rows as one string (a row per migration
            # would be a thousand result rows to parse on every start).
            row = conn.execute(
                f"SELECT (SELECT fingerprint FROM {fingerprint} WHERE id = 1),"
                " (SELECT string_agg(version::text || '/' || checksum || '/' || state, ',' ORDER BY version)"
                f' FROM "{table}")'
            ).fetchone()
    except psycopg.Error:
        return None
    if row is None or row[1] is None:
        return None
    stored, listed = row
    rows: list[tuple[int, str, str]] = []
    for item in str(listed).split(","):
        version, checksum, state = item.split("/")
        rows.append((int(version), checksum, state))
    return (None if stored is None else loaded_text(str(stored))), rows
