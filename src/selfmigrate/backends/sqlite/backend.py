"""The SQLite backend: :class:`SQLiteBackend`, the :class:`~selfmigrate.backends.base.Backend` for one file.

Holds every decision SQLite makes for selfmigrate: ``BEGIN IMMEDIATE``, the authorizer
that guards a migration's transaction, ``PRAGMA`` probes, its error names. Must not know
the runner, the registry or the faces; it gets scripts and functions, never migrations.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import typing as t
from pathlib import Path

from ...errors import DatabaseError, LockTimeout, SelfMigrateError
from ..base import Refused, SQLScript, StatementError
from .connection import connect, database_path, is_busy
from .lock import MigrationLock, lock_for
from .sqltext import split_statements

if t.TYPE_CHECKING:
    from ..base import Connection, Schema, Snapshot, Step

#: Pragmas that do nothing (or fail) when set inside a transaction; a migration
#: that sets one must run outside a transaction (``-- migrate:no-transaction``).
NO_TRANSACTION_PRAGMAS = frozenset({"journal_mode", "foreign_keys", "page_size", "auto_vacuum"})
# sqlite3 authorizer action code for BEGIN / COMMIT / ROLLBACK (not SAVEPOINT).
_SQLITE_TRANSACTION = 22


def open_backend(database: str | os.PathLike[str], *, lock_timeout: float) -> SQLiteBackend:
    """The backend for a SQLite path or ``sqlite:///`` URL (what :mod:`..select` calls)."""
    return SQLiteBackend(database_path(database), lock_timeout=lock_timeout)


def database_location(database: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """The file of a SQLite path or URL; a relative one taken from ``base``."""
    return database_path(database, base)


def _sqlite(conn: Connection) -> sqlite3.Connection:
    """The connection as the :class:`sqlite3.Connection` :meth:`SQLiteBackend.connect` made."""
    assert isinstance(conn, sqlite3.Connection), conn
    return conn


class SQLiteBackend:
    """Talks to one SQLite database file.

    :param path: the database file.
    :param lock_timeout: seconds to wait for the write lock (and for any busy
        database) before giving up.
    """

    name = "sqlite"
    placeholder = "?"
    engine_errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def describe(self) -> str:
        """The database, for messages."""
        return str(self.path)

    def exists(self) -> bool:
        """Whether the database file exists."""
        return self.path.is_file()

    def missing(self) -> bool:
        """Whether there is no file (nor folder) at the database's path."""
        return not self.path.is_file() and not self.path.is_dir()

    def connect(self, *, create: bool = True) -> sqlite3.Connection:
        """Open the database in autocommit mode; transactions are explicit.

        :param create: create the file if it does not exist. With ``False`` a
            missing file is an error, so that read-only commands never leave an
            empty database behind.
        :raises DatabaseError: the folder does not exist, the path is a
            directory, the file is missing (``create=False``), or it is not a
            SQLite database.
        """
        return connect(self.path, lock_timeout=self.lock_timeout, create=create)

    @contextlib.contextmanager
    def locked_transaction(self, conn: Connection) -> t.Iterator[None]:
        """A transaction holding the write lock: committed at the end of the block, rolled back if it raises."""
        self.begin_locked(conn)
        try:
            yield
            self.commit(conn)
        except BaseException:
            self.rollback(conn)
            raise

    def begin_locked(self, conn: Connection) -> None:
        """Begin a transaction holding the database's write lock (``BEGIN IMMEDIATE``).

        Waits up to :attr:`lock_timeout` seconds for another writer to finish.

        :raises LockTimeout: the lock was not obtained in time.
        """
        started = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise DatabaseError(f"Cannot lock database {self.path} for writing: {e}.") from e
            waited = time.monotonic() - started
            raise LockTimeout(
                f"Timed out after {waited:.1f} s waiting for the write lock on database"
                f" {self.path} (lock timeout {self.lock_timeout:g} s). Another process is"
                " migrating or writing to it; if a long migration is running, raise the"
                " lock timeout (SELFMIGRATE_LOCK_TIMEOUT); otherwise find the process that"
                " holds the database open."
            ) from e

    def commit(self, conn: Connection) -> None:
        """Commit the current transaction.

        :raises LockTimeout: other connections kept reading the database for
            longer than :attr:`lock_timeout`, so the commit could not finish; the
            transaction is still open and the caller rolls it back.
        """
        started = time.monotonic()
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise
            raise LockTimeout(
                f"Timed out after {time.monotonic() - started:.1f} s committing to database"
                f" {self.path} (lock timeout {self.lock_timeout:g} s): other connections kept"
                " reading it, and a commit must wait for readers to finish. Nothing of this"
                " transaction was committed. Raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT), or end the"
                " long read transactions (WAL mode lets readers and a writer overlap)."
            ) from e

    def rollback(self, conn: Connection) -> None:
        """Roll back the current transaction, if one is open."""
        if _sqlite(conn).in_transaction:
            conn.execute("ROLLBACK")

    def table_columns(self, conn: Connection, table: str) -> list[str] | None:
        """Return the column names of ``table``, or ``None`` if there is no such table."""
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        if row is None:
            return None
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]

    def has_objects(self, conn: Connection, *, exclude: t.Collection[str] = ()) -> bool:
        """Whether ``sqlite_master`` lists anything but ``exclude``."""
        names = tuple(exclude)
        where = f" WHERE name NOT IN ({', '.join('?' * len(names))})" if names else ""
        return bool(conn.execute(f"SELECT count(*) FROM sqlite_master{where}", names).fetchone()[0])

    def run_script(self, conn: Connection, script: SQLScript) -> None:
        """Run every statement of ``script`` in the current transaction.

        :raises StatementError: a statement failed (the caller rolls back).
        """
        for statement in split_statements(script):
            try:
                conn.execute(statement.sql).fetchall()
            except sqlite3.Error as e:
                raise StatementError(statement, e) from e

    def _run(self, conn: sqlite3.Connection, step: Step) -> None:
        # A migration may change how the connection hands back rows; the tracker
        # reads through the same connection right after it.
        factories = (conn.row_factory, conn.text_factory)
        try:
            if isinstance(step, SQLScript):
                self.run_script(conn, step)
            else:
                step(conn)
        finally:
            conn.row_factory, conn.text_factory = factories

    def run_in_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
        """Run one direction of a migration in the open transaction, guarded.

        BEGIN/COMMIT/ROLLBACK and the pragmas SQLite ignores inside a transaction
        are refused meanwhile (see :meth:`guard_transaction`), each refusal
        appended to ``refused``. A migration that caught a refusal and carried on
        did not do what it was written to do: that raises too.
        """
        sqlite_conn = _sqlite(conn)
        self.guard_transaction(sqlite_conn, refused)
        try:
            self._run(sqlite_conn, step)
        finally:
            self.unguard(sqlite_conn)
        if refused:
            raise Refused(f"{refused[0] or 'transaction control'} not authorized")

    def run_outside_transaction(self, conn: Connection, step: Step) -> None:
        """Run a non-transactional migration's step; roll back what it leaves open if it fails."""
        sqlite_conn = _sqlite(conn)
        try:
            self._run(sqlite_conn, step)
            if sqlite_conn.in_transaction:
                raise sqlite3.OperationalError("the migration left a transaction open (BEGIN without COMMIT)")
        except Exception:
            self.rollback(conn)
            raise

    def refusal_advice(self, refused: str) -> str:
        """Why a statement was refused, and what to do instead."""
        if refused.startswith("PRAGMA "):
            return (
                f"{refused} has no effect inside a transaction, and selfmigrate runs this migration in"
                " one. Move it to a migration of its own that runs outside a transaction: a first line"
                " '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)."
            )
        return (
            f"The migration tried to {refused or 'end'} the transaction selfmigrate runs it in."
            " Remove BEGIN/COMMIT/ROLLBACK (and conn.commit(), conn.executescript()) from it:"
            " selfmigrate commits each migration together with its tracker row."
        )

    def failure_hint(self, error: BaseException) -> str | None:
        """A line for a full disk (``SQLITE_FULL``), else ``None``."""
        if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
            return (
                "The disk is full, or the database reached its size limit (PRAGMA max_page_count):"
                " free space (or raise the limit) before starting again."
            )
        return None

    def database_error(self, error: Exception) -> SelfMigrateError:
        """A clear error for a database error met outside a migration (tracker, lock, commit)."""
        database = self.describe()
        name = getattr(error, "sqlite_errorname", "")
        text = str(error)
        if name.startswith("SQLITE_READONLY") or "readonly" in text:
            fix = (
                "The database file is read-only for this process: let the app's user write the file and"
                " its folder (SQLite writes a journal beside it), or mount the volume read-write."
            )
        elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
            fix = (
                "SQLite could not create its journal file beside the database: let the app's user write"
                " the database's folder."
            )
        elif name == "SQLITE_FULL":
            fix = "The disk is full: free space and start again."
        elif name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in text:
            fix = (
                "The database is damaged: restore it from a snapshot ('python -m selfmigrate snapshots')"
                " or another backup."
            )
        else:
            fix = "Check the database file, its folder and the disk."
        return DatabaseError(
            f"Cannot migrate database {database}: {type(error).__name__}: {error}. {fix} No migration"
            " is half-applied (each one is a transaction); start again once this is fixed."
        )

    def check_integrity(self, conn: Connection) -> None:
        """Refuse to migrate a damaged database (``PRAGMA quick_check``) or a read-only one.

        A migration on top of a damaged file can only make it worse, and a
        snapshot of it would not help.
        """
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            listed = "\n  ".join(problems)
            raise DatabaseError(
                f"Database {self.describe()} is damaged (SQLite's quick_check found:\n  {listed}\n)."
                " selfmigrate does not migrate a damaged database; nothing was changed. Restore it from a"
                " snapshot ('python -m selfmigrate snapshots' lists them) or another backup, or salvage"
                " it with the sqlite3 shell's '.recover' command."
            )
        # Rewrite user_version with its own value: fails here, as a DatabaseError naming
        # the read-only file, instead of in the first migration's first statement.
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {int(user_version)}")

    def guard_transaction(self, conn: sqlite3.Connection, denied: list[str]) -> None:
        """Refuse BEGIN/COMMIT/ROLLBACK on ``conn`` until :meth:`unguard`.

        A migration runs inside the transaction selfmigrate opened; a COMMIT in
        it would make its first half permanent without its tracker row. Setting
        a pragma that SQLite silently ignores inside a transaction
        (:data:`NO_TRANSACTION_PRAGMAS`) is refused too, as ``"PRAGMA name"``:
        such a migration must be marked non-transactional. Each refusal is
        appended to ``denied`` so the caller can say why it failed.
        """

        def authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
            if action == _SQLITE_TRANSACTION:
                denied.append(arg1 or "")
                return sqlite3.SQLITE_DENY
            if action == sqlite3.SQLITE_PRAGMA and arg2 is not None and (arg1 or "").lower() in NO_TRANSACTION_PRAGMAS:
                denied.append(f"PRAGMA {(arg1 or '').lower()}")
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        conn.set_authorizer(authorizer)

    def unguard(self, conn: sqlite3.Connection) -> None:
        """Lift :meth:`guard_transaction`."""
        conn.set_authorizer(None)

    def migration_lock(self) -> MigrationLock:
        """The lock that serialises migrations which run outside a transaction.

        A file beside the database (``app.sqlite-selfmigrate.lock``) held with
        :func:`fcntl.flock`: the kernel releases it when its process ends, however
        it ends, so it never goes stale the way a row in a table would.
        """
        return lock_for(self.path)

    def snapshot_before_change(
        self,
        *,
        since: float,
        version: int | None,
        directory: str | os.PathLike[str] | None,
        keep: int | None,
    ) -> Snapshot:
        """A snapshot of the file (see :func:`.snapshots.snapshot_for_run`)."""
        from .snapshots import snapshot_for_run

        return snapshot_for_run(self.path, since=since, version=version, directory=directory, keep=keep)

    def list_snapshots(self, *, directory: str | os.PathLike[str] | None = None) -> list[Snapshot]:
        """The snapshots of the file, newest first."""
        from .snapshots import list_snapshots

        return list_snapshots(self.path, directory=directory)

    def find_snapshot(
        self, name: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None
    ) -> Snapshot:
        """The snapshot of the file named ``name``."""
        from .snapshots import find_snapshot

        return find_snapshot(self.path, name, directory=directory)

    def restore(
        self, snapshot: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None, wait: float = 0.5
    ) -> Snapshot:
        """Put a snapshot's data back into the file (see :func:`.snapshots.restore`)."""
        from .snapshots import restore

        return restore(self.path, snapshot, directory=directory, wait=wait)

    def read_schema(self, *, exclude: t.Collection[str] = ()) -> Schema:
        """The file's schema (see :func:`.schema.read_schema`); empty if there is no file."""
        if not self.exists():
            return {}
        from .schema import read_schema

        return read_schema(self.path, exclude=exclude)

    def check_idle(self, conn: Connection, wait: float = 0.5) -> None:
        """Raise :class:`LockTimeout` if another process is reading or writing the database."""
        from .connection import check_idle

        check_idle(_sqlite(conn), self.path, wait=wait, lock_timeout=self.lock_timeout)
