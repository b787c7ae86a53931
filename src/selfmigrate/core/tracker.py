"""The tracker table (``schema_migrations`` by default): what has been applied.

Holds :class:`Tracker`, one row per applied migration (version, name, checksum, when, how
long, by whom, state), written through a backend; a table of that name with another layout
is never altered. Must not know an engine: it gets a Backend and uses its placeholder.
"""

from __future__ import annotations

import os
import re
import typing as t
from dataclasses import dataclass

from ..config import DEFAULT_TABLE
from ..errors import ConfigError, TrackerError
from . import fingerprint

if t.TYPE_CHECKING:
    from ..backends.base import Backend, Connection
    from .migration import Migration

#: The tracker's columns, in order.
COLUMNS = ("version", "name", "checksum", "applied_at", "duration_ms", "applied_by", "state")

_FINGERPRINT_COLUMNS = ("id", "fingerprint", "verified_at")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: ``state`` of a migration that completed.
APPLIED = "applied"
#: ``state`` of a migration that was started outside a transaction and has not
#: been seen to finish.
STARTED = "started"


@dataclass(frozen=True)
class AppliedMigration:
    """A row of the tracker table."""

    version: int
    name: str
    checksum: str
    #: When it was applied, UTC, ISO 8601 (``2026-11-24T21:30:00.123456+00:00``).
    applied_at: str
    duration_ms: float
    #: Host and process that applied it (``"web-1 pid 812"``).
    applied_by: str
    #: :data:`APPLIED`, or :data:`STARTED` for an interrupted non-transactional run.
    state: str = APPLIED

    @property
    def id(self) -> str:
        """``"0002_add_column"``: the version, four digits at least, and the name."""
        return f"{self.version:04d}_{self.name}"


def utc_now() -> str:
    """The current time, UTC, ISO 8601."""
    import datetime as dt  # only when a row is written: not on the no-op start

    return dt.datetime.now(dt.UTC).isoformat()


def who() -> str:
    """Who is applying: host name and process id."""
    import socket  # only when a row is written: not on the no-op start

    return f"{socket.gethostname()} pid {os.getpid()}"


class Tracker:
    """Reads and writes the tracker table through a backend.

    :param backend: the database backend (its placeholder style and table lookup).
    :param table: the table's name; letters, digits and underscores only.
    """

    def __init__(self, backend: Backend, table: str = DEFAULT_TABLE) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ConfigError(
                f"Tracker table name {table!r} is not a plain SQL identifier. Use letters,"
                " digits and underscores (the default is schema_migrations)."
            )
        self.backend = backend
        self.table = table

    def check_layout(self, conn: Connection) -> bool:
        """Return whether the table exists, checking that it is ours if it does.

        :raises TrackerError: a table of that name has another layout.
        """
        columns = self.backend.table_columns(conn, self.table)
        if columns is None:
            return False
        if tuple(columns) != COLUMNS:
            raise TrackerError(
                f"Database {self.backend.describe()} has a table named {self.table} that"
                f" selfmigrate did not create (its columns: {', '.join(columns)}). selfmigrate"
                " never alters or drops it. If it holds the history of an older migration"
                " system, import it with 'python -m selfmigrate adopt'; otherwise choose"
                " another tracker table name (SELFMIGRATE_TABLE)."
            )
        return True

    def ensure(self, conn: Connection) -> None:
        """Create the table if it does not exist (inside the caller's transaction)."""
        if self.check_layout(conn):
            return
        conn.execute(
            f"CREATE TABLE {self.table} ("
            f" version {self.backend.integer_type} PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " checksum TEXT NOT NULL,"
            " applied_at TEXT NOT NULL,"
            " duration_ms REAL NOT NULL,"
            " applied_by TEXT NOT NULL,"
            f" state TEXT NOT NULL DEFAULT '{APPLIED}'"
            ")"
        )

    def read(self, conn: Connection) -> dict[int, AppliedMigration]:
        """Return the applied migrations by version (empty when there is no table)."""
        if not self.check_layout(conn):
            return {}
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {self.table} ORDER BY version")
        return {row[0]: AppliedMigration(*row) for row in rows}

    def record(
        self,
        conn: Connection,
        migration: Migration,
        duration_ms: float,
        *,
        state: str = APPLIED,
        applied_at: str | None = None,
        applied_by: str | None = None,
    ) -> AppliedMigration:
        """Insert the row of ``migration``; return it.

        ``applied_at`` and ``applied_by`` default to now and :func:`who`; adopting
        and baselining pass their own.
        """
        row = AppliedMigration(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            applied_at=applied_at or utc_now(),
            duration_ms=round(duration_ms, 3),
            applied_by=applied_by or who(),
            state=state,
        )
        p = self.backend.placeholder
        conn.execute(
            f"INSERT INTO {self.table} ({', '.join(COLUMNS)})"
            f" VALUES ({', '.join([p] * len(COLUMNS))})",
            (row.version, row.name, row.checksum, row.applied_at, row.duration_ms, row.applied_by, row.state),
        )
        return row

    def finish(self, conn: Connection, version: int, duration_ms: float) -> None:
        """Mark the :data:`STARTED` row of ``version`` as :data:`APPLIED`, with its duration."""
        p = self.backend.placeholder
        conn.execute(
            f"UPDATE {self.table} SET state = {p}, duration_ms = {p} WHERE version = {p} AND state = {p}",
            (APPLIED, round(duration_ms, 3), version, STARTED),
        )

    def remove(self, conn: Connection, version: int) -> None:
        """Delete the row of ``version``."""
        conn.execute(f"DELETE FROM {self.table} WHERE version = {self.backend.placeholder}", (version,))

    @property
    def fingerprint_table(self) -> str:
        """The table that remembers the last verified file fingerprint: ``<table>_fingerprint``."""
        return f"{self.table}_fingerprint"

    @staticmethod
    def fingerprint_key(files: str, applied: dict[int, AppliedMigration]) -> str:
        """Combine a files fingerprint with the tracker rows it was checked against
        (see :func:`selfmigrate.core.fingerprint.fingerprint_key`)."""
        return fingerprint.fingerprint_key(files, ((r.version, r.checksum, r.state) for r in applied.values()))

    def read_fingerprint(self, conn: Connection, *, certificate: bool = False) -> str | None:
        """The digest of the key stored by :meth:`store_fingerprint` (row 1), or ``None``.

        :param certificate: the key's text instead (row 2), which says what was
            verified (see :func:`selfmigrate.core.fingerprint.certified`).
        """
        if self.backend.table_columns(conn, self.fingerprint_table) != list(_FINGERPRINT_COLUMNS):
            return None
        p = self.backend.placeholder
        row = conn.execute(
            f"SELECT fingerprint FROM {self.fingerprint_table} WHERE id = {p}", (2 if certificate else 1,)
        ).fetchone()
        return None if row is None else str(row[0])

    def store_fingerprint(self, conn: Connection, key: str) -> None:
        """Remember ``key`` as verified (inside the caller's write transaction).

        Row 1 holds its digest (what the quick check compares), row 2 the key
        itself (what the next full run reads back to skip the files it still
        certifies). A table of that name with another layout is left alone.
        """
        table = self.fingerprint_table
        columns = self.backend.table_columns(conn, table)
        if columns is None:
            conn.execute(
                f"CREATE TABLE {table} (id {self.backend.integer_type} PRIMARY KEY, fingerprint TEXT NOT NULL,"
                " verified_at TEXT NOT NULL)"
            )
        elif columns != list(_FINGERPRINT_COLUMNS):
            return
        p = self.backend.placeholder
        conn.execute(f"DELETE FROM {table}")
        now = utc_now()
        for row in ((1, fingerprint.digest(key), now), (2, key, now)):
            conn.execute(f"INSERT INTO {table} (id, fingerprint, verified_at) VALUES ({p}, {p}, {p})", row)

    def set_checksum(self, conn: Connection, version: int, checksum: str) -> None:
        """Store a new checksum for ``version`` (the sanctioned fix for a cosmetic edit)."""
        p = self.backend.placeholder
        conn.execute(f"UPDATE {self.table} SET checksum = {p} WHERE version = {p}", (checksum, version))
