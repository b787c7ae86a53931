"""The SQLite backend: :class:`SQLiteBackend`, the :class:`~selfmigrate.backends.base.Backend` for one file.

Holds every decision SQLite makes for selfmigrate: ``BEGIN IMMEDIATE``, the authorizer
that guards a migration's transaction, ``PRAGMA`` probes, its error names. Must not know
the runner, the registry or the faces; it gets scripts and functions, never migrations.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time

from ...config import DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE, Options
from ...errors import DatabaseError, LockTimeout, SelfMigrateError
from ..base import COMMITTED_ITSELF, Refused, SQLScript, StatementError
from .connection import (
    connect,
    database_file,
    database_path,
    is_busy,
    is_closed,
    limit_busy_timeout,
    path_text,
    set_busy_timeout,
    untouched,
    unwatch,
    watch,
)
from .sqltext import split_statements

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t
    from pathlib import Path

    from ..base import Connection, Schema, Snapshot, Step
    from ..base import MigrationLock as AnyLock
    from .lock import MigrationLock

#: Pragmas that do nothing (or fail) when set inside a transaction; a migration
#: that sets one must run outside a transaction (``-- migrate:no-transaction``).
#: ``page_size`` and ``auto_vacuum`` take effect on a database with content only
#: through a ``VACUUM``, which cannot run in a transaction either.
NO_TRANSACTION_PRAGMAS = frozenset({"journal_mode", "foreign_keys", "page_size", "auto_vacuum", "synchronous"})
#: Pragmas SQLite ignores once the database has content. Every migration runs on a
#: database with content (selfmigrate's tracker table exists before the first one),
#: so a migration that sets one is refused, transactional or not.
EMPTY_DATABASE_PRAGMAS = frozenset({"encoding"})
#: Pragmas whose setting is the whole process's, not the connection's: set by a
#: migration, it would outlive its connection and limit the next migrations and the
#: app itself (a ``hard_heap_limit`` makes every later large statement fail).
#: Refused in every migration.
PROCESS_PRAGMAS = frozenset({"soft_heap_limit", "hard_heap_limit", "temp_store_directory", "data_store_directory"})
#: Pragmas that change a database with content only through a ``VACUUM`` after
#: them (and ``page_size`` never in WAL mode); without one SQLite ignores them
#: silently. A non-transactional migration that sets one is checked afterwards.
VACUUM_PRAGMAS = frozenset({"page_size", "auto_vacuum"})
_AUTO_VACUUM = {"0": 0, "none": 0, "1": 1, "full": 1, "2": 2, "incremental": 2}
#: What :meth:`SQLiteBackend.guard_transaction` appends to its ``denied`` list for a
#: statement issued after SQLite ended the migration's transaction on its own.
TRANSACTION_ENDED = "transaction ended"
#: An unknown pragma (SQLite ignores those) that the guard's authorizer recognises:
#: preparing it tells whether the authorizer is still installed.
_GUARD_PROBE = "selfmigrate_guard_probe"
#: A database error that says the statement cannot run inside a transaction
#: ("cannot ATTACH database within transaction", "cannot VACUUM from within a
#: transaction", "... may not be changed inside a transaction").
#: "database other is locked" is how SQLite refuses a DETACH of a database the
#: transaction has used (ATTACH itself works inside one).
_NEEDS_NO_TRANSACTION = r"\b(?:within|inside) (?:a )?transaction\b|^database \S+ is locked$"
#: Put first in a migration's ``refused`` list to say why it failed (worded by
#: :meth:`SQLiteBackend.failure_advice`): it closed its connection, SQLite ignored a
#: pragma it set, it removed the guard's authorizer.
CLOSED = "closed"
IGNORED = "ignored"
UNGUARDED = "unguarded"
# sqlite3 authorizer action code for BEGIN / COMMIT / ROLLBACK (not SAVEPOINT).
_SQLITE_TRANSACTION = 22
#: Authorizer actions after which a connection is no longer as :meth:`SQLiteBackend.connect`
#: opened it: any pragma (a setting), ATTACH/DETACH, and the temporary schema (which lives
#: as long as the connection). Every other statement a SQL script can run changes the
#: database, which a new connection would see too, not the connection.
_CONNECTION_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_PRAGMA,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
    }
)


def open_backend(database: str | os.PathLike[str], options: Options) -> SQLiteBackend:
    """The backend for a SQLite path or ``sqlite:///`` URL (what :mod:`..select` calls).

    Of ``options`` it reads ``lock_timeout``; the PostgreSQL settings mean nothing here.
    """
    return SQLiteBackend(database_file(database), lock_timeout=options.lock_timeout)


def database_location(
    database: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, *, flask_sqlalchemy: bool = False
) -> Path:
    """The file of a SQLite path or URL; a relative one taken from ``base`` (see :func:`.connection.database_path`)."""
    return database_path(database, base, flask_sqlalchemy=flask_sqlalchemy)


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
    integer_type = "INTEGER"
    engine_errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    #: ``INSERT ... ON CONFLICT (column) DO UPDATE`` works (SQLite 3.24 and later): the
    #: tracker stores a migration's down in one statement instead of a DELETE and an INSERT.
    upsert = sqlite3.sqlite_version_info >= (3, 24, 0)

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        # Kept as text (what str(Path(path)) is): a start needs no path object (see .connection.database_file).
        self._file = path_text(os.fspath(path))
        self._path: Path | None = None
        self.lock_timeout = lock_timeout
        #: Seconds waited so far for locks and busy databases, charged against
        #: :attr:`lock_timeout` (see :meth:`reset_wait`).
        self.waited = 0.0
        # The connection the last guarded step left as it was opened (see :meth:`reusable`).
        self._untouched: sqlite3.Connection | None = None

    def reset_wait(self, waited: float = 0.0) -> None:
        """Start a new wait budget: :attr:`lock_timeout` is the total that every
        wait from now on may take together (opening the database, the write lock,
        the migration lock), ``waited`` seconds of it already spent elsewhere.
        """
        self.waited = max(waited, 0.0)

    def charge(self, seconds: float) -> None:
        """Count ``seconds`` of waiting against the budget."""
        self.waited += max(seconds, 0.0)

    def remaining(self) -> float:
        """Seconds the budget still allows to wait."""
        return max(self.lock_timeout - self.waited, 0.0)

    def _limit(self) -> str:
        return f"lock timeout {self.lock_timeout:g} s, the total one run waits"

    def acquire(self, lock: AnyLock) -> None:
        """Take ``lock``, waiting as long as the budget allows, and charge the wait.

        :raises LockTimeout: another process held it for the rest of the budget.
        """
        started = time.monotonic()
        try:
            lock.acquire(self.remaining())
        except LockTimeout as e:
            self.charge(time.monotonic() - started)
            raise LockTimeout(
                f"Timed out after {self.waited:.1f} s waiting for the migration lock {lock.describe()} of"
                f" database {self._file} ({self._limit()}). Another process is running a migration"
                " outside a transaction; wait for it to finish, or raise the lock timeout"
                " (SELFMIGRATE_LOCK_TIMEOUT)."
            ) from e
        self.charge(time.monotonic() - started)


    @property
    def path(self) -> Path:
        """The database file."""
        if self._path is None:
            from pathlib import Path

            self._path = Path(self._file)
        return self._path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._file!r})"

    def describe(self) -> str:
        """The database, for messages."""
        return self._file

    def exists(self) -> bool:
        """Whether the database file exists."""
        return os.path.isfile(self._file)

    def missing(self) -> bool:
        """Whether there is no file (nor folder) at the database's path."""
        return not os.path.isfile(self._file) and not os.path.isdir(self._file)

    def connect(self, *, create: bool = True) -> sqlite3.Connection:
        """Open the database in autocommit mode; transactions are explicit.

        :param create: create the file if it does not exist. With ``False`` a
            missing file is an error, so that read-only commands never leave an
            empty database behind.
        :raises DatabaseError: the folder does not exist, the path is a
            directory, the file is missing (``create=False``), or it is not a
            SQLite database.
        """
        started = time.monotonic()
        try:
            return connect(
                self._file, lock_timeout=self.remaining(), create=create, waited=self.waited, limit=self._limit
            )
        finally:
            self.charge(time.monotonic() - started)

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

        Waits for another writer to finish as long as the wait budget allows
        (:meth:`remaining`), and charges the wait to it.

        :raises LockTimeout: the lock was not obtained in time.
        """
        started = time.monotonic()
        # Set again only once the budget fell below the timeout in effect (a run's steps
        # each charge a few microseconds): never a longer wait than the budget allows.
        limit_busy_timeout(_sqlite(conn), int(self.remaining() * 1000))
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise DatabaseError(f"Cannot lock database {self._file} for writing: {e}.") from e
            self.charge(time.monotonic() - started)
            raise LockTimeout(
                f"Timed out after {self.waited:.1f} s waiting for the write lock on database"
                f" {self._file} ({self._limit()}). Another process is"
                " migrating or writing to it; if a long migration is running, raise the"
                " lock timeout (SELFMIGRATE_LOCK_TIMEOUT); otherwise find the process that"
                " holds the database open."
            ) from e
        self.charge(time.monotonic() - started)

    @contextlib.contextmanager
    def try_locked_transaction(self, conn: Connection) -> t.Iterator[bool]:
        """``BEGIN IMMEDIATE`` with no busy wait: ``True`` inside the transaction, ``False`` if busy.

        A database that cannot be written (read-only file or folder, full disk)
        gives ``False`` too, as does a ``COMMIT`` that would wait for readers
        (then rolled back): what was tried is skipped, never waited for.
        """
        set_busy_timeout(_sqlite(conn), 0)
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                locked = False
            else:
                locked = True
            if not locked:
                yield False
                return
            try:
                yield True
            except BaseException:
                self.rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError:
                self.rollback(conn)
        finally:
            if not is_closed(_sqlite(conn)):
                set_busy_timeout(_sqlite(conn), int(self.remaining() * 1000))

    def change_marker(self, conn: Connection) -> object | None:
        """``PRAGMA data_version``: changes on ``conn`` when another connection commits.

        ``None`` for a connection in exclusive locking mode (a migration set it):
        kept open, it would keep the next connection from reading the file.
        """
        try:
            mode = conn.execute("PRAGMA main.locking_mode").fetchone()
            if not isinstance(mode, (tuple, sqlite3.Row)) or str(mode[0]).lower() != "normal":
                return None
            row = conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        # A migration may have set a row factory on its connection: only a plain int counts.
        value = row[0] if isinstance(row, (tuple, sqlite3.Row)) else None
        return value if isinstance(value, int) else None

    def change_marker_again(self, conn: Connection) -> object | None:
        """:meth:`change_marker` of a connection whose marker was read before, with only commits since.

        Its locking mode was normal then, and nothing since could change it: only
        ``PRAGMA data_version`` is read.
        """
        try:
            row = conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        value = row[0] if isinstance(row, (tuple, sqlite3.Row)) else None
        return value if isinstance(value, int) else None

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
                f" {self._file} (lock timeout {self.lock_timeout:g} s): other connections kept"
                " reading it, and a commit must wait for readers to finish. Nothing of this"
                " transaction was committed. Raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT), or end the"
                " long read transactions (WAL mode lets readers and a writer overlap)."
            ) from e

    def rollback(self, conn: Connection) -> None:
        """Roll back the current transaction, if one is open.

        A connection that is already closed (a migration closed it) has nothing
        to roll back: closing it rolled its transaction back.
        """
        sqlite_conn = _sqlite(conn)
        if not is_closed(sqlite_conn) and sqlite_conn.in_transaction:
            conn.execute("ROLLBACK")

    def schema_marker(self, conn: Connection) -> object:
        """``PRAGMA schema_version``: changes whenever any table, index, view or trigger does.

        Read twice in one transaction (or at two moments of one file), an equal
        value means that :meth:`table_columns` would answer as before for every
        table. A plain int only: a migration may have set a row factory.
        """
        row = conn.execute("PRAGMA schema_version").fetchone()
        value = row[0] if isinstance(row, (tuple, sqlite3.Row)) else None
        return value if isinstance(value, int) else object()

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

    def run_in_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
        """Run one direction of a migration in the open transaction, guarded.

        BEGIN/COMMIT/ROLLBACK, the pragmas SQLite ignores inside a transaction,
        and every statement after SQLite ended the transaction on its own are
        refused meanwhile (see :meth:`guard_transaction`), each refusal appended
        to ``refused``. A migration that caught a refusal and carried on, closed
        its connection, removed the guard or lost its transaction did not do
        what it was written to do: that raises too.
        """
        sqlite_conn = _sqlite(conn)
        self._untouched = None
        touched: list[None] = []
        try:
            self._run_guarded(sqlite_conn, step, refused, touched)
            _check_transaction_kept(sqlite_conn, refused)
        except Exception:
            if is_closed(sqlite_conn):
                refused.insert(0, CLOSED)
            raise
        if refused and refused[0] != TRANSACTION_ENDED:
            raise Refused(f"{refused[0] or 'transaction control'} not authorized")
        if not touched:
            self._untouched = sqlite_conn

    def reusable(self, conn: Connection) -> bool:
        """Whether ``conn`` is still as :meth:`connect` opened it, apart from the data it changed.

        True only right after :meth:`run_in_transaction` ran a step on it whose
        every statement the guard's authorizer saw, none of them a pragma, an
        ATTACH/DETACH or a temporary object (SQL has no other way to change a
        connection), and which, if it is a function, asked the connection for
        nothing but running SQL and reading its state (see
        :class:`.connection.WatchedConnection`: functions, collations, limits,
        handlers and factories are set through it). Asked once: the answer is
        forgotten with the asking.
        """
        untouched, self._untouched = self._untouched, None
        return untouched is not None and untouched is conn and not is_closed(untouched)

    def _run_guarded(self, conn: sqlite3.Connection, step: Step, denied: list[str], touched: list[None]) -> None:
        # A migration may change how the connection hands back rows; the tracker
        # reads through the same connection right after it, so the row and text
        # factories are restored.
        factories = (conn.row_factory, conn.text_factory)
        still_guarded = self.guard_transaction(conn, denied, touched=touched)
        try:
            watch(conn)
            _run(self, conn, step)
            if not untouched(conn):
                touched.append(None)
            # A SQL script cannot reach set_authorizer: only a function's step is probed.
            if not is_closed(conn) and not isinstance(step, SQLScript) and not still_guarded():
                # Without the authorizer nothing stopped a COMMIT, or statements after
                # SQLite ended the transaction: what is in the transaction now is not
                # known to be the migration's whole work. With no transaction left, what
                # it did was committed (by the migration, or statement by statement).
                denied.insert(0, UNGUARDED if conn.in_transaction else COMMITTED_ITSELF)
                raise sqlite3.DatabaseError("the migration removed or replaced selfmigrate's authorizer")
        finally:
            unwatch(conn)  # selfmigrate's own statements after the step need no watching
            self.unguard(conn)
            if not is_closed(conn):
                conn.row_factory, conn.text_factory = factories

    def run_outside_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
        """Run a non-transactional migration's step; roll back what it leaves open if it fails.

        Only the pragmas SQLite ignores on a database with content are refused; a
        ``page_size``/``auto_vacuum`` the database did not take, a closed
        connection or a transaction left open make it fail.
        """
        sqlite_conn = _sqlite(conn)
        requested: dict[str, str] = {}
        self.guard_transaction(sqlite_conn, refused, transactional=False, requested=requested)
        try:
            try:
                _run(self, sqlite_conn, step)
            finally:
                self.unguard(sqlite_conn)
            if is_closed(sqlite_conn):
                raise _ConnectionClosed
            if sqlite_conn.in_transaction:
                raise sqlite3.OperationalError("the migration left a transaction open (BEGIN without COMMIT)")
            if refused:
                raise sqlite3.DatabaseError(f"{refused[0]} not authorized")
            ignored = self.ignored_pragmas(sqlite_conn, requested)
            if ignored:
                refused.append(IGNORED)
                raise sqlite3.OperationalError(f"SQLite ignored {', '.join(ignored)}")
        except Exception:
            if is_closed(sqlite_conn):
                refused.insert(0, CLOSED)
            self.rollback(conn)
            raise

    def failure_advice(self, error: BaseException, refused: list[str], *, transactional: bool = True) -> list[str]:
        """The lines of a migration's failure message that explain what SQLite did, and the fix."""
        lines = []
        first = refused[0] if refused else None
        if first == CLOSED:
            lines.append(
                "The migration closed the connection selfmigrate gave it (conn.close()); closing it"
                + (" rolled back its transaction, so nothing of it is kept." if transactional else ".")
                + " Remove conn.close() (and 'with contextlib.closing(conn)') from the migration:"
                " selfmigrate opens and closes each migration's connection itself."
            )
        elif first == COMMITTED_ITSELF:
            lines.append(
                "The migration called conn.set_authorizer(), which removes the authorizer that keeps it"
                " inside selfmigrate's transaction, and then its transaction ended (conn.commit(), COMMIT,"
                " or statements run one by one outside it). Remove both; selfmigrate commits each"
                " migration together with its tracker row."
            )
        elif first == UNGUARDED:
            lines.append(
                "The migration called conn.set_authorizer(), which removes the authorizer that keeps"
                " it inside selfmigrate's transaction. Remove that call; to restrict what SQL may do,"
                " check it in the migration's own code."
            )
        elif first == IGNORED:
            lines.append(
                "On a database with content, page_size and auto_vacuum change only through a VACUUM"
                " after them, in the same migration (and page_size never in WAL mode): add 'VACUUM;'"
                " after the pragma, or remove it."
            )
        elif first == TRANSACTION_ENDED:
            lines.append(
                "SQLite ended the migration's transaction on its own and rolled it back (a trigger's"
                " RAISE(ROLLBACK, ...), INSERT OR ROLLBACK, or an error such as a full disk), and the"
                " migration went on: what it ran after that was refused, not committed statement by"
                " statement, and it is not recorded. Let that error end the migration instead of catching"
                " it, or use RAISE(ABORT, ...), which undoes only the statement."
            )
        elif first is not None and first.removeprefix("PRAGMA ") in PROCESS_PRAGMAS:
            lines.append(
                f"{first} is a setting of the whole process, not of the migration's connection: it"
                " would stay in force after the migration, for the next migrations and for the app."
                " Remove it; set it where the app starts, if the app needs it."
            )
        elif first is not None and first.removeprefix("PRAGMA ") in EMPTY_DATABASE_PRAGMAS:
            lines.append(
                f"{first} takes effect only on an empty database, and when a migration runs the"
                " database already holds selfmigrate's tracker table, so SQLite would ignore it. Remove"
                " it; a database that must not be UTF-8 (SQLite's default) has to be created with its"
                " encoding before the first start."
            )
        elif first == "PRAGMA foreign_keys" and transactional:
            lines.append(
                "PRAGMA foreign_keys has no effect inside a transaction, and selfmigrate runs this migration"
                " in one, on a connection of its own that does not enforce foreign keys (SQLite's default)"
                " and is closed after it. Delete the line: a table rebuild here already runs with foreign keys"
                " off, and PRAGMA foreign_keys=ON would never reach the app's connections (enforce them where"
                " the app opens them). Delete a BEGIN/COMMIT around the file too; 'python -m selfmigrate"
                " lint' lists these lines in every file (SM110)."
            )
        elif first is not None and first.startswith("PRAGMA "):
            lines.append(
                f"{first} has no effect inside a transaction, and selfmigrate runs this migration in"
                " one. Move it to a migration of its own that runs outside a transaction: a first line"
                " '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)."
            )
        elif first is not None:
            lines.append(
                f"The migration tried to {first or 'end'} the transaction selfmigrate runs it in."
                " Remove BEGIN/COMMIT/ROLLBACK (and conn.commit(), 'with conn:', conn.executescript())"
                " from it: selfmigrate commits each migration together with its tracker row."
                " 'python -m selfmigrate lint' lists these lines in every file (SM110)."
            )
        elif isinstance(error, sqlite3.OperationalError) and getattr(error, "sqlite_errorname", "") == "SQLITE_BUSY":
            # The migration's own connection holds the write lock: a busy error comes from
            # another connection, which the migration opened itself (or an attached database).
            lines.append(
                "selfmigrate holds the database's write lock for the whole migration, so a second"
                " connection the migration opens itself (sqlite3.connect(), an ORM's engine or session)"
                " waits for it and fails. Run every statement through the connection the migration is"
                " given (conn). (For an ATTACHed database: another process was writing it.)"
            )
        elif (
            transactional
            and isinstance(error, sqlite3.Error)
            and re.search(_NEEDS_NO_TRANSACTION, str(error), re.IGNORECASE)
        ):
            lines.append(
                "This statement is valid but cannot run inside a transaction, and selfmigrate runs this"
                " migration in one. Move it to a migration of its own that runs outside a transaction: a"
                " first line '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)."
                + (
                    " (A DETACH can also simply go: selfmigrate closes each migration's connection after it,"
                    " which detaches every database the migration attached.)"
                    if str(error).startswith("database ")
                    else ""
                )
            )
        if isinstance(error, sqlite3.OperationalError) and str(error).startswith("no such function: "):
            # Apps register their own SQL functions on their connections (a Go driver's
            # ConnectHook, create_function); the migration's connection is selfmigrate's.
            name = str(error).removeprefix("no such function: ")
            lines.append(
                f"SQLite has no function {name}. If the app registers it on its own connections, the"
                " migration's connection (selfmigrate's) does not have it: write this migration as a .py"
                f" file whose up(conn) calls conn.create_function({name!r}, ...) before running the SQL."
            )
        if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
            lines.append(
                "The disk is full, or the database reached its size limit (PRAGMA max_page_count):"
                " free space (or raise the limit) before starting again."
            )
        return lines

    def database_error(self, error: Exception) -> SelfMigrateError:
        """A clear error for a database error met outside a migration (tracker, lock, commit)."""
        database = self.describe()
        name = getattr(error, "sqlite_errorname", "")
        text = str(error)
        if name == "SQLITE_READONLY_DIRECTORY":
            # The file is writable; SQLite cannot create its journal beside it.
            fix = (
                f"The database's folder {os.path.dirname(database) or '.'} is not writable for this process"
                " (the file is), and SQLite creates its journal there: let the app's user write the"
                " folder, or mount the volume read-write."
            )
        elif name.startswith("SQLITE_READONLY") or "readonly" in text:
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
        # main only (the step's connection has nothing else attached): checking every
        # database would open the temporary one, which a new connection has not, and a
        # connection with it open refuses PRAGMA temp_store inside a transaction.
        problems = [row[0] for row in conn.execute("PRAGMA main.quick_check(5)")]
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

    def guard_transaction(
        self,
        conn: sqlite3.Connection,
        denied: list[str],
        *,
        transactional: bool = True,
        requested: dict[str, str] | None = None,
        touched: list[None] | None = None,
    ) -> t.Callable[[], bool]:
        """Refuse BEGIN/COMMIT/ROLLBACK on ``conn`` until :meth:`unguard`.

        A migration runs inside the transaction selfmigrate opened; a COMMIT in
        it would make its first half permanent without its tracker row. Setting
        a pragma that SQLite silently ignores inside a transaction
        (:data:`NO_TRANSACTION_PRAGMAS`) is refused too, as ``"PRAGMA name"``:
        such a migration must be marked non-transactional. Once SQLite has ended
        the transaction on its own (a trigger's ``RAISE(ROLLBACK, ...)``, ``INSERT
        OR ROLLBACK``, some I/O errors), every further statement is refused, as
        :data:`TRANSACTION_ENDED`: it would otherwise autocommit. Each refusal
        is appended to ``denied`` so the caller can say why it failed.

        The checks run when a statement is prepared; :meth:`connect` turns the
        statement cache off so that every statement is prepared.

        :param transactional: ``False`` for a migration that runs outside a
            transaction and manages its own: only the pragmas SQLite ignores on a
            database with content (:data:`EMPTY_DATABASE_PRAGMAS`) and the
            process-wide ones (:data:`PROCESS_PRAGMAS`) are refused.
        :param requested: filled with the values set for :data:`VACUUM_PRAGMAS`,
            for :meth:`ignored_pragmas` to check afterwards.
        :param touched: appended to for every statement that may change the
            connection itself rather than the database (:data:`_CONNECTION_ACTIONS`,
            anything in the ``temp`` schema), refused or not.
        :returns: a function that says whether this authorizer is still the
            connection's (a migration may have called ``conn.set_authorizer``).
        """
        probes: list[None] = []

        def authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
            if action == sqlite3.SQLITE_PRAGMA and arg1 == _GUARD_PROBE:
                probes.append(None)
                return sqlite3.SQLITE_OK
            if touched is not None and (action in _CONNECTION_ACTIONS or db == "temp"):
                touched.append(None)
            pragma = (arg1 or "").lower() if action == sqlite3.SQLITE_PRAGMA and arg2 is not None else None
            if pragma in EMPTY_DATABASE_PRAGMAS or pragma in PROCESS_PRAGMAS:
                denied.append(f"PRAGMA {pragma}")
                return sqlite3.SQLITE_DENY
            if not transactional:
                if pragma in VACUUM_PRAGMAS and requested is not None and db in (None, "main"):
                    requested[pragma] = arg2 or ""
                return sqlite3.SQLITE_OK
            if not conn.in_transaction:
                denied.append(TRANSACTION_ENDED)
                return sqlite3.SQLITE_DENY
            if action == _SQLITE_TRANSACTION:
                denied.append(arg1 or "")
                return sqlite3.SQLITE_DENY
            if pragma in NO_TRANSACTION_PRAGMAS:
                denied.append(f"PRAGMA {pragma}")
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        def still_guarded() -> bool:
            seen = len(probes)
            try:
                conn.execute(f"PRAGMA {_GUARD_PROBE}").fetchall()
            except sqlite3.DatabaseError:
                return False  # another authorizer refused it
            return len(probes) > seen

        conn.set_authorizer(authorizer)
        return still_guarded

    def ignored_pragmas(self, conn: sqlite3.Connection, requested: dict[str, str]) -> list[str]:
        """Which of the ``requested`` :data:`VACUUM_PRAGMAS` values the database does not have.

        Each as ``"PRAGMA page_size = 8192 (the database's is 4096)"``.
        """
        ignored = []
        for name, value in requested.items():
            text = value.strip().strip("'\"").lower()
            want = _AUTO_VACUUM.get(text) if name == "auto_vacuum" else int(text) if text.isdigit() else None
            actual = conn.execute(f"PRAGMA {name}").fetchone()[0]
            if actual != want:
                ignored.append(f"PRAGMA {name} = {value} (the database's is {actual})")
        return ignored

    def unguard(self, conn: sqlite3.Connection) -> None:
        """Lift :meth:`guard_transaction` (nothing to lift on a closed connection)."""
        if not is_closed(conn):
            conn.set_authorizer(None)

    def migration_lock(self) -> MigrationLock:
        """The lock that serialises migrations which run outside a transaction.

        A file beside the database (``app.sqlite-selfmigrate.lock``) held with
        :func:`fcntl.flock`: the kernel releases it when its process ends, however
        it ends, so it never goes stale the way a row in a table would.
        """
        from .lock import lock_for  # fcntl: only for a migration that runs outside a transaction

        return lock_for(self.path)

    def snapshot_before_change(
        self,
        *,
        since: float,
        version: int | None,
        oldest: tuple[int, str, str] | None,
        table: str,
        directory: str | os.PathLike[str] | None,
        keep: int | None,
    ) -> Snapshot:
        """A snapshot of the file (see :func:`.snapshots.snapshot_for_run`)."""
        from .snapshots import snapshot_for_run

        return snapshot_for_run(
            self.path, since=since, version=version, oldest=oldest, table=table, directory=directory, keep=keep
        )

    def list_snapshots(
        self, *, directory: str | os.PathLike[str] | None = None, table: str = DEFAULT_TABLE
    ) -> list[Snapshot]:
        """The snapshots of the file, newest first."""
        from .snapshots import list_snapshots

        return list_snapshots(self.path, directory=directory, table=table)

    def find_snapshot(
        self,
        name: str | os.PathLike[str],
        *,
        directory: str | os.PathLike[str] | None = None,
        table: str = DEFAULT_TABLE,
    ) -> Snapshot:
        """The snapshot of the file named ``name``."""
        from .snapshots import find_snapshot

        return find_snapshot(self.path, name, directory=directory, table=table)

    def restore(
        self,
        snapshot: str | os.PathLike[str],
        *,
        directory: str | os.PathLike[str] | None = None,
        wait: float = 0.5,
        table: str = DEFAULT_TABLE,
    ) -> Snapshot:
        """Put a snapshot's data back into the file (see :func:`.snapshots.restore`)."""
        from .snapshots import restore

        return restore(self.path, snapshot, directory=directory, wait=wait, table=table)

    def read_schema(self, *, exclude: t.Collection[str] = ()) -> Schema:
        """The file's schema (see :func:`.schema.read_schema`); empty if there is no file."""
        if not self.exists():
            return {}
        from .schema import read_schema

        return read_schema(self.path, exclude=exclude)

    def check_idle(self, conn: Connection, wait: float = 0.5) -> None:
        """Raise :class:`LockTimeout` if another process is reading or writing the database."""
        from .connection import check_idle

        check_idle(_sqlite(conn), self.path, wait=wait, lock_timeout=self.remaining())


def _run(backend: SQLiteBackend, conn: sqlite3.Connection, step: Step) -> None:
    if isinstance(step, SQLScript):
        backend.run_script(conn, step)
    else:
        step(conn)


class _ConnectionClosed(Exception):
    """A migration closed the connection selfmigrate gave it."""

    def __init__(self) -> None:
        super().__init__("the migration closed its connection (conn.close())")


def _check_transaction_kept(conn: sqlite3.Connection, denied: list[str]) -> None:
    """After a migration's up or down: raise if it closed its connection or its transaction is gone.

    Either way nothing it did may be recorded: the tracker row written next would
    otherwise commit on its own, as if the migration had run whole.
    """
    if is_closed(conn):
        raise _ConnectionClosed
    if not conn.in_transaction:
        if TRANSACTION_ENDED not in denied:
            denied.insert(0, TRANSACTION_ENDED)
        raise sqlite3.OperationalError("the migration's transaction is gone: SQLite rolled it back")


if TYPE_CHECKING:
    from ..base import Backend

    def _is_a_backend(backend: SQLiteBackend) -> Backend:
        # The type checker proves here that SQLiteBackend has every member of the protocol.
        return backend
