"""The no-op start's and the health check's reads of a PostgreSQL database, one query each.

Holds :func:`read`, what :func:`selfmigrate.backends.select.quick_read` calls for a PostgreSQL
URL, and :func:`read_status` and :func:`describe`, what ``python -m selfmigrate status``
answers from when the files are certified (:mod:`selfmigrate.faces.cli.quickstatus`): one
connection, one round trip, no lock, nothing written. Must not know migrations or the rest
of this backend (it imports psycopg, :mod:`.text` and :mod:`.url` only).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t


def read(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, list[tuple[int, str, str]]] | None:
    """The fingerprint stored in ``<table>_fingerprint`` and the rows of ``table``, or ``None``.

    The tables are found through the session's ``search_path``, as the full run
    finds the tracker's schema. ``None`` means "look properly": no server, no
    tracker or fingerprint table yet, any error. The full run meets the same
    thing and says what it is.
    """
    from .text import loaded_text

    # One row: the key once, and the rows as one string (a row per migration would be
    # a thousand result rows to parse on every start).
    found = _query(
        database,
        lock_timeout,
        f'SELECT (SELECT fingerprint FROM "{table}_fingerprint" WHERE id = 1),'
        " (SELECT string_agg(version::text || '/' || checksum || '/' || state, ',' ORDER BY version)"
        f' FROM "{table}")',
    )
    if not found or found[0][1] is None:
        return None
    stored, listed = found[0]
    rows: list[tuple[int, str, str]] = []
    for item in str(listed).split(","):
        version, checksum, state = item.split("/")
        rows.append((int(version), checksum, state))
    return (None if stored is None else loaded_text(str(stored))), rows


def read_status(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, list[tuple[t.Any, ...]]] | None:
    """As :func:`read`, each row with what ``status`` shows of it: ``(version, checksum, state,
    applied_at, duration_ms, kind, compatible, down_checksum)``, the last three from
    ``<table>_rollback`` as the tracker joins them; ``None`` as :func:`read` (also without
    that table: the full command answers for an older tracker)."""
    from .text import loaded_text

    # One round trip: the key's digest on every row (a second result would be a second one).
    found = _query(
        database,
        lock_timeout,
        f'SELECT (SELECT fingerprint FROM "{table}_fingerprint" WHERE id = 1),'
        " t.version, t.checksum, t.state, t.applied_at, t.duration_ms, r.kind, r.compatible, r.down_checksum"
        f' FROM "{table}" t LEFT JOIN "{table}_rollback" r ON r.version = t.version AND r.checksum = t.checksum'
        " ORDER BY t.version",
    )
    if not found:
        return None
    stored = found[0][0]
    return (None if stored is None else loaded_text(str(stored))), [tuple(row[1:]) for row in found]


def _query(database: str | os.PathLike[str], lock_timeout: float, sql: str) -> list[tuple[t.Any, ...]] | None:
    """The rows of ``sql`` on one autocommit connection to ``database``; ``None`` on any error.

    A URL libpq cannot take, a server that does not answer within the timeout,
    a missing table: the full run meets the same thing and says what it is.
    """
    import psycopg

    from .url import libpq_url

    try:
        conninfo = libpq_url(os.fspath(database))
    except ValueError:
        return None
    timeout = max(1, min(30, int(lock_timeout) or 1))
    try:
        with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None, connect_timeout=timeout) as conn:
            return conn.execute(sql).fetchall()
    except psycopg.Error:
        return None


def describe(database: str | os.PathLike[str]) -> str:
    """``database`` as the backend's ``describe`` shows it (every password masked)."""
    from .url import mask

    return mask(os.fspath(database))
