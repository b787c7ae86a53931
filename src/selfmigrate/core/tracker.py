"""The tracker table (``schema_migrations`` by default): what has been applied.

One row per applied migration: version, name, checksum, when (UTC, ISO 8601),
how long it took, who applied it, and its state. A table of the same name with
another layout belongs to someone else (an older home-made system, another tool)
and is never altered or dropped.

The tracker is a set of tables with a layout version of its own
(:data:`LAYOUT`, kept in ``<table>_layout``): layout 1 (selfmigrate 0.1.0) is the
tracker table and ``<table>_fingerprint``; layout 2 adds ``<table>_layout`` and
``<table>_rollback``, which keeps, for each migration applied since, whether it
is compatible, its kind and its down with the down's checksum. The tracker
table's own columns never change, so that an older release can still read it
(the image it is rolled back to). :meth:`Tracker.upgrade` brings an older layout
up to date inside the caller's locked transaction.
"""

from __future__ import annotations

import os
import re

from ..backends.base import Value
from ..config import DEFAULT_TABLE, TRACKER_LAYOUT
from ..errors import ConfigError, TrackerError
from . import fingerprint

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    from ..backends.base import Backend, Connection
    from .migration import LoadedMigration, Migration

#: The tracker's columns, in order.
COLUMNS = ("version", "name", "checksum", "applied_at", "duration_ms", "applied_by", "state")

_FINGERPRINT_COLUMNS = ("id", "fingerprint", "verified_at")

#: The tracker layout this code writes. Change it (and add a step to
#: :meth:`Tracker.upgrade`) whenever the tracker's tables change.
LAYOUT = TRACKER_LAYOUT
#: The oldest layout whose code may still read and write a tracker of
#: :data:`LAYOUT`: layout 2 only adds tables, which layout-1 code never looks at.
READABLE_BY = 1
_LAYOUT_COLUMNS = ("id", "layout", "readable_by", "upgraded_at")
_ROLLBACK_COLUMNS = ("version", "checksum", "kind", "compatible", "down_checksum", "down_script")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: ``state`` of a migration that completed.
APPLIED = "applied"
#: ``state`` of a migration that was started outside a transaction and has not
#: been seen to finish.
STARTED = "started"


class AppliedMigration(Value):
    """A row of the tracker table.

    A frozen value (see :class:`~selfmigrate.backends.base.Value`): rows with
    equal fields are equal; :meth:`as_dict` gives the fields by name.
    """

    _fields = ("version", "name", "checksum", "applied_at", "duration_ms", "applied_by", "state", "kind",
               "compatible", "down_checksum")

    version: int
    name: str
    checksum: str
    #: When it was applied, UTC, ISO 8601 (``2026-11-24T21:30:00.123456+00:00``).
    applied_at: str
    duration_ms: float
    #: Host and process that applied it (``"web-1 pid 812"``).
    applied_by: str
    #: :data:`APPLIED`, or :data:`STARTED` for an interrupted non-transactional run.
    state: str
    #: ``"sql"`` or ``"py"``; ``None`` when nothing more than the row was stored (a
    #: migration applied before the tracker's layout 2, or adopted).
    kind: str | None
    #: Whether the migration was declared compatible (``None``: not stored).
    compatible: bool | None
    #: SHA-256 of the stored down; ``None`` when there is none stored.
    down_checksum: str | None

    def __init__(
        self,
        version: int,
        name: str,
        checksum: str,
        applied_at: str,
        duration_ms: float,
        applied_by: str,
        state: str = APPLIED,
        kind: str | None = None,
        compatible: bool | None = None,
        down_checksum: str | None = None,
    ) -> None:
        self.__dict__.update(
            version=version,
            name=name,
            checksum=checksum,
            applied_at=applied_at,
            duration_ms=duration_ms,
            applied_by=applied_by,
            state=state,
            kind=kind,
            compatible=compatible,
            down_checksum=down_checksum,
        )

    def as_dict(self) -> dict[str, object]:
        """The fields by name, in the order of the constructor's parameters."""
        return {name: self.__dict__[name] for name in self._fields}

    @property
    def id(self) -> str:
        """``"0002_add_column"``: the version, four digits at least, and the name."""
        return f"{self.version:04d}_{self.name}"

    @property
    def down(self) -> str:
        """``"stored"``, ``"none"`` (the migration has no down) or ``"not stored"``
        (applied before the tracker kept downs)."""
        if self.kind is None:
            return "not stored"
        return "none" if self.down_checksum is None else "stored"


_FIELDS = (*COLUMNS, "kind", "compatible", "down_checksum")


def _row(values: t.Sequence[t.Any]) -> AppliedMigration:
    """The :class:`AppliedMigration` of a row read in the order of :data:`_FIELDS` (or of
    :data:`COLUMNS` alone, the rest ``None``).

    Filled as its own ``__init__`` fills it, without the call and its keywords: a
    tracker of 10 000 rows is read at every start that has something to do.
    """
    row = object.__new__(AppliedMigration)
    fields = row.__dict__
    fields.update(zip(_FIELDS, values, strict=False))  # COLUMNS alone: the first seven
    if len(values) == len(COLUMNS):
        fields.update(kind=None, compatible=None, down_checksum=None)
    elif fields["compatible"] is not None:
        fields["compatible"] = bool(fields["compatible"])
    return row


def utc_now() -> str:
    """The current time, UTC, ISO 8601."""
    import datetime as dt  # only when a row is written: not on the no-op start

    return dt.datetime.now(dt.UTC).isoformat()


def who() -> str:
    """Who is applying: host name and process id."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        # What socket.gethostname() returns on POSIX (both ask the kernel's node name),
        # without importing socket (a few ms at the start that applies something).
        return f"{uname().nodename} pid {os.getpid()}"
    import socket  # Windows

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
        # Optional Backend members of a server engine: the tracker's tables are named
        # schema-qualified (a migration's search_path cannot move them) and the engine
        # learns the tracker's name (its lock key derives from it).
        self._qualify: t.Callable[[str], str] | None = getattr(backend, "qualified", None)
        use_table = getattr(backend, "use_table", None)
        if use_table is not None:
            use_table(table)
        # A text column that cannot hold every character (PostgreSQL: no NUL) stores the
        # fingerprint key escaped; the engine's quick reader unescapes it the same way.
        self._to_stored: t.Callable[[str], str] = getattr(backend, "stored_text", str)
        self._from_stored: t.Callable[[str], str] = getattr(backend, "loaded_text", str)
        # An optional Backend member: a value that changes whenever the schema does (SQLite:
        # PRAGMA schema_version). With it, what record() learnt of the rollback table is
        # asked again only after a schema change, not for every migration of a run.
        self._schema_marker: t.Callable[[Connection], object] | None = getattr(backend, "schema_marker", None)
        self._rollback_seen: tuple[object, bool] | None = None
        self._who: tuple[int, str] | None = None
        self._insert_sql: tuple[str, str, str, bool] | None = None  # record()'s statements, made on first use

    def _sql(self, table: str) -> str:
        """``table`` as the tracker's SQL names it (schema-qualified where the engine has schemas)."""
        return table if self._qualify is None else self._qualify(table)

    @property
    def own_tables(self) -> tuple[str, ...]:
        """Every table of the tracker (none of them part of the app's schema)."""
        return (self.table, self.fingerprint_table, self.layout_table, self.rollback_table)

    @property
    def layout_table(self) -> str:
        """The table that holds the tracker's layout version: ``<table>_layout``."""
        return f"{self.table}_layout"

    @property
    def rollback_table(self) -> str:
        """The table of what a rollback needs (compatible, stored downs): ``<table>_rollback``."""
        return f"{self.table}_rollback"

    def layout(self, conn: Connection) -> int:
        """The tracker's layout version: 0 when there is no tracker, 1 for selfmigrate 0.1.0's.

        :raises TrackerError: a tracker made by a newer selfmigrate that this code
            must not write to, or a companion table with a foreign layout.
        """
        if not self.check_layout(conn):
            return 0
        columns = self.backend.table_columns(conn, self.layout_table)
        if columns is None:
            return 1
        self._check_companion(self.layout_table, columns, _LAYOUT_COLUMNS)
        row = conn.execute(f"SELECT layout, readable_by FROM {self._sql(self.layout_table)} WHERE id = 1").fetchone()
        if row is None:
            return 1  # never written: the table was made by hand
        layout, readable_by = int(row[0]), int(row[1])
        if readable_by > LAYOUT:
            raise TrackerError(
                f"Database {self.backend.describe()} has a tracker ({self.table}) in layout {layout},"
                f" written by a newer selfmigrate, which this version (tracker layout {LAYOUT}) must not"
                " write to. Upgrade selfmigrate in this code to the version that made it, or restore a"
                " snapshot taken before that version ran ('python -m selfmigrate snapshots')."
            )
        return layout

    def _check_companion(self, table: str, columns: list[str], expected: tuple[str, ...]) -> None:
        if tuple(columns[: len(expected)]) != expected:
            raise TrackerError(
                f"Database {self.backend.describe()} has a table named {table} that selfmigrate did not"
                f" create (its columns: {', '.join(columns)}); selfmigrate keeps its tracker's layout"
                " there and never alters or drops another's table. Rename that table, or choose"
                " another tracker table name (SELFMIGRATE_TABLE)."
            )

    def upgrade(self, conn: Connection) -> int | None:
        """Bring an older tracker layout up to :data:`LAYOUT`; return the layout it had.

        Called inside the caller's locked transaction, so that it commits with it
        or not at all: the tracker's rows are never rewritten, only tables added.
        Returns ``None`` when there was nothing to do (no tracker, or already
        :data:`LAYOUT` or newer). The stored fingerprint is dropped with it: it
        was certified under the old layout (the runner stores a new one when it
        finds the database up to date).
        """
        layout = self.layout(conn)
        if layout == 0 or layout >= LAYOUT:
            return None
        # Layout 1 -> 2: the companion tables.
        self._create_rollback_table(conn)
        self._write_layout(conn)
        if self.backend.table_columns(conn, self.fingerprint_table) == list(_FINGERPRINT_COLUMNS):
            conn.execute(f"DELETE FROM {self._sql(self.fingerprint_table)}")
        return layout

    def _create_rollback_table(self, conn: Connection) -> None:
        columns = self.backend.table_columns(conn, self.rollback_table)
        if columns is not None:
            self._check_companion(self.rollback_table, columns, _ROLLBACK_COLUMNS)
            return
        conn.execute(
            f"CREATE TABLE {self._sql(self.rollback_table)} ("
            f" version {self.backend.integer_type} PRIMARY KEY,"
            " checksum TEXT NOT NULL,"
            " kind TEXT NOT NULL,"
            " compatible INTEGER NOT NULL,"
            " down_checksum TEXT,"
            " down_script TEXT"
            ")"
        )

    def _write_layout(self, conn: Connection) -> None:
        columns = self.backend.table_columns(conn, self.layout_table)
        if columns is None:
            conn.execute(
                f"CREATE TABLE {self._sql(self.layout_table)} (id {self.backend.integer_type} PRIMARY KEY,"
                " layout INTEGER NOT NULL, readable_by INTEGER NOT NULL, upgraded_at TEXT NOT NULL)"
            )
        else:
            self._check_companion(self.layout_table, columns, _LAYOUT_COLUMNS)
        p = self.backend.placeholder
        conn.execute(f"DELETE FROM {self._sql(self.layout_table)}")
        conn.execute(
            f"INSERT INTO {self._sql(self.layout_table)} (id, layout, readable_by, upgraded_at)"
            f" VALUES (1, {p}, {p}, {p})",
            (LAYOUT, READABLE_BY, utc_now()),
        )

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

    def ensure(self, conn: Connection) -> int | None:
        """Create the tracker if it does not exist, or upgrade an older layout
        (inside the caller's locked transaction; see :meth:`upgrade`).

        :returns: the layout an existing tracker was upgraded from, else ``None``.
        """
        if self.check_layout(conn):
            return self.upgrade(conn)
        conn.execute(
            f"CREATE TABLE {self._sql(self.table)} ("
            f" version {self.backend.integer_type} PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " checksum TEXT NOT NULL,"
            " applied_at TEXT NOT NULL,"
            " duration_ms REAL NOT NULL,"
            " applied_by TEXT NOT NULL,"
            f" state TEXT NOT NULL DEFAULT '{APPLIED}'"
            ")"
        )
        self._create_rollback_table(conn)
        self._write_layout(conn)
        return None

    def read(self, conn: Connection) -> dict[int, AppliedMigration]:
        """Return the applied migrations by version (empty when there is no table).

        Reads every layout this code knows; the stored downs themselves are not
        read (see :meth:`stored_down`).
        """
        self._rollback_seen = None  # a full read starts from what the database says
        if not self.check_layout(conn):
            return {}
        columns = ", ".join(f"t.{c}" for c in COLUMNS)
        rollback_columns = self.backend.table_columns(conn, self.rollback_table)
        if rollback_columns is None:
            rows = conn.execute(f"SELECT {columns} FROM {self._sql(self.table)} t ORDER BY t.version")
            return {row[0]: _row(row) for row in rows}
        self._check_companion(self.rollback_table, rollback_columns, _ROLLBACK_COLUMNS)
        # A rollback row counts only for the migration it was written with: an older
        # release that rolled back and re-applied a version left it behind.
        rows = conn.execute(
            f"SELECT {columns}, r.kind, r.compatible, r.down_checksum FROM {self._sql(self.table)} t"
            f" LEFT JOIN {self._sql(self.rollback_table)} r ON r.version = t.version AND r.checksum = t.checksum"
            " ORDER BY t.version"
        )
        # Each filled as _row fills it, written out here: a call per row was a third of
        # reading 10 000 rows.
        found: dict[int, AppliedMigration] = {}
        new = object.__new__
        for version, name, checksum, applied_at, duration_ms, applied_by, state, kind, compatible, down in rows:
            row = new(AppliedMigration)
            row.__dict__.update(
                version=version,
                name=name,
                checksum=checksum,
                applied_at=applied_at,
                duration_ms=duration_ms,
                applied_by=applied_by,
                state=state,
                kind=kind,
                compatible=None if compatible is None else bool(compatible),
                down_checksum=down,
            )
            found[version] = row
        return found

    def stored_down(self, conn: Connection, row: AppliedMigration) -> str | None:
        """The down stored with ``row`` (see :attr:`LoadedMigration.down_source`), or ``None``."""
        if row.down_checksum is None:
            return None
        p = self.backend.placeholder
        found = conn.execute(
            f"SELECT down_script FROM {self._sql(self.rollback_table)} WHERE version = {p} AND checksum = {p}",
            (row.version, row.checksum),
        ).fetchone()
        return None if found is None or found[0] is None else str(found[0])

    def record(
        self,
        conn: Connection,
        migration: Migration,
        duration_ms: float,
        *,
        state: str = APPLIED,
        applied_at: str | None = None,
        applied_by: str | None = None,
        body: LoadedMigration | None = None,
    ) -> AppliedMigration:
        """Insert the row of ``migration``; return it.

        ``applied_at`` and ``applied_by`` default to now and :func:`who`; adopting
        and baselining pass their own. With ``body`` (the migration as it ran), its
        kind, whether it is compatible and its down are stored with the row, in the
        same transaction; without, the row says "down not stored".
        """
        values = (
            migration.version,
            migration.name,
            migration.checksum,
            applied_at or utc_now(),
            round(duration_ms, 3),
            applied_by or self._applied_by(),
            state,
        )
        if self._insert_sql is None:
            p = self.backend.placeholder
            stored = (
                f"INSERT INTO {self._sql(self.rollback_table)} ({', '.join(_ROLLBACK_COLUMNS)})"
                f" VALUES ({', '.join([p] * len(_ROLLBACK_COLUMNS))})"
            )
            upsert = bool(getattr(self.backend, "upsert", False))  # an optional Backend member
            if upsert:
                # A row left by an older release's rollback (which knew no rollback table) is
                # replaced in the same statement: SQLite 3.24+ and PostgreSQL spell it alike.
                stored += " ON CONFLICT (version) DO UPDATE SET " + ", ".join(
                    f"{column} = excluded.{column}" for column in _ROLLBACK_COLUMNS[1:]
                )
            self._insert_sql = (
                f"INSERT INTO {self._sql(self.table)} ({', '.join(COLUMNS)}) VALUES ({', '.join([p] * len(COLUMNS))})",
                f"DELETE FROM {self._sql(self.rollback_table)} WHERE version = {p}",
                stored,
                upsert,
            )
        insert, delete_stored, insert_stored, upsert = self._insert_sql
        conn.execute(insert, values)
        if not self._has_rollback_table(conn):
            return _row(values)  # a layout-1 tracker (written by an older release's own commands)
        if body is None or not upsert:
            conn.execute(delete_stored, (migration.version,))
        if body is None:
            return _row(values)
        from .migration import checksum

        down = body.down_source
        down_checksum = None if down is None else checksum(down.encode("utf-8"))
        conn.execute(
            insert_stored,
            (migration.version, migration.checksum, migration.kind, int(body.compatible), down_checksum, down),
        )
        return _row((*values, migration.kind, body.compatible, down_checksum))

    def _applied_by(self) -> str:
        """:func:`who`, asked once per process (a fork gets its own)."""
        pid = os.getpid()
        if self._who is None or self._who[0] != pid:
            self._who = (pid, who())
        return self._who[1]

    def _has_rollback_table(self, conn: Connection) -> bool:
        """Whether ``<table>_rollback`` exists, asked again only when the schema changed since.

        Without the backend's schema marker, asked every time.
        """
        marker = None if self._schema_marker is None else self._schema_marker(conn)
        seen = self._rollback_seen
        if marker is not None and seen is not None and seen[0] == marker:
            return seen[1]
        found = self.backend.table_columns(conn, self.rollback_table) is not None
        self._rollback_seen = None if marker is None else (marker, found)
        return found

    def finish(self, conn: Connection, version: int, duration_ms: float) -> None:
        """Mark the :data:`STARTED` row of ``version`` as :data:`APPLIED`, with its duration."""
        p = self.backend.placeholder
        conn.execute(
            f"UPDATE {self._sql(self.table)} SET state = {p}, duration_ms = {p} WHERE version = {p} AND state = {p}",
            (APPLIED, round(duration_ms, 3), version, STARTED),
        )

    def remove(self, conn: Connection, version: int) -> None:
        """Delete the row of ``version`` (and what was stored with it)."""
        conn.execute(f"DELETE FROM {self._sql(self.table)} WHERE version = {self.backend.placeholder}", (version,))
        if self.backend.table_columns(conn, self.rollback_table) is not None:
            conn.execute(
                f"DELETE FROM {self._sql(self.rollback_table)} WHERE version = {self.backend.placeholder}", (version,)
            )

    @property
    def fingerprint_table(self) -> str:
        """The table that remembers the last verified file fingerprint: ``<table>_fingerprint``."""
        return f"{self.table}_fingerprint"

    @staticmethod
    def fingerprint_key(files: str, applied: dict[int, AppliedMigration]) -> str:
        """Combine a files fingerprint with the tracker rows it was checked against
        (see :func:`selfmigrate.core.fingerprint.fingerprint_key`)."""
        return fingerprint.fingerprint_key(files, ((r.version, r.checksum, r.state) for r in applied.values()))

    @staticmethod
    def key(files: fingerprint.Files, applied: t.Mapping[int, AppliedMigration]) -> fingerprint.Key:
        """The key of ``files`` against the rows ``applied`` (see :class:`~selfmigrate.core.fingerprint.Key`),
        the rows taken in version order whatever the order of ``applied``."""
        versions = list(applied)
        if versions != sorted(versions):
            versions.sort()
        rows = [applied[version] for version in versions]
        return fingerprint.Key(
            files,
            " ".join(map(str, versions)),
            "\n".join([row.checksum for row in rows]),
            "\n".join([row.state for row in rows]),
        )

    def read_fingerprint(self, conn: Connection, *, certificate: bool = False) -> str | None:
        """The digest of the key stored by :meth:`store_fingerprint` (row 1), or ``None``.

        :param certificate: the key's text instead (row 2), which says what was
            verified (see :func:`selfmigrate.core.fingerprint.certified`).
        """
        if self.backend.table_columns(conn, self.fingerprint_table) != list(_FINGERPRINT_COLUMNS):
            return None
        p = self.backend.placeholder
        row = conn.execute(
            f"SELECT fingerprint FROM {self._sql(self.fingerprint_table)} WHERE id = {p}", (2 if certificate else 1,)
        ).fetchone()
        return None if row is None else self._from_stored(str(row[0]))

    def store_fingerprint(self, conn: Connection, key: str | fingerprint.Key) -> None:
        """Remember ``key`` as verified (inside the caller's write transaction).

        Row 1 holds its digest (what the quick check compares), row 2 what the next
        full run reads back to skip the files it still certifies: a :class:`~.fingerprint.Key`'s
        compact certificate, or a key's text as given (both read by
        :func:`~selfmigrate.core.fingerprint.read_certificate`). A table of that name
        with another layout is left alone.
        """
        table = self.fingerprint_table
        columns = self.backend.table_columns(conn, table)
        if columns is None:
            conn.execute(
                f"CREATE TABLE {self._sql(table)} (id {self.backend.integer_type} PRIMARY KEY,"
                " fingerprint TEXT NOT NULL, verified_at TEXT NOT NULL)"
            )
        elif columns != list(_FINGERPRINT_COLUMNS):
            return
        p = self.backend.placeholder
        conn.execute(f"DELETE FROM {self._sql(table)}")
        now = utc_now()
        if isinstance(key, str):
            verified, certificate = fingerprint.digest(key), key
        else:
            verified, certificate = key.digest(), key.certificate()
        for row in ((1, verified, now), (2, self._to_stored(certificate), now)):
            conn.execute(f"INSERT INTO {self._sql(table)} (id, fingerprint, verified_at) VALUES ({p}, {p}, {p})", row)

    def set_checksum(self, conn: Connection, version: int, checksum: str) -> None:
        """Store a new checksum for ``version`` (the sanctioned fix for a cosmetic edit)."""
        p = self.backend.placeholder
        conn.execute(f"UPDATE {self._sql(self.table)} SET checksum = {p} WHERE version = {p}", (checksum, version))
        if self.backend.table_columns(conn, self.rollback_table) is not None:
            # The edit was cosmetic: what was stored with the row still belongs to it.
            conn.execute(
                f"UPDATE {self._sql(self.rollback_table)} SET checksum = {p} WHERE version = {p}", (checksum, version)
            )
