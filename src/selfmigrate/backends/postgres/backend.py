"""The PostgreSQL backend: :class:`PostgresBackend`, the :class:`~selfmigrate.backends.base.Backend` for one database.

Holds every decision PostgreSQL makes for selfmigrate: the connection (psycopg 3,
autocommit, no prepared statements, an ``application_name``), the transaction-level
advisory lock polled per migration, ``SET LOCAL`` timeouts and the retry on a table
lock, the guard against a migration ending its transaction, the schema that holds
the tracker. Imported only for a PostgreSQL URL (it imports psycopg). Must not know
the runner, the registry or the faces.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import random
import re
import time
import typing as t
import weakref

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from ...config import (
    DEFAULT_LOCK_RETRIES,
    DEFAULT_STATEMENT_TIMEOUT,
    DEFAULT_TABLE,
    DEFAULT_TABLE_LOCK_TIMEOUT,
    ENGINE_DEFAULTS,
    KEY_PREFIX,
    Options,
    engine_setting_problem,
    is_duration,
)
from ...errors import ConfigError, DatabaseError, SelfMigrateError
from ..base import Refused, SQLScript, Statement, StatementError
from . import lock as locks
from .guard import GuardedConnection, TransactionControlRefused, transaction_control
from .pooler import pooled
from .sqltext import SQLTextError, split_statements
from .text import loaded_text, stored_text
from .url import is_postgres_url, libpq_url, mask

if t.TYPE_CHECKING:
    from ..base import Connection, MigrationLock, Schema, Snapshot, Step

logger = logging.getLogger(__name__)

#: The settings' environment variables, read when the backend is opened for a setting
#: the :class:`~selfmigrate.config.Options` leave unset (documented in docs/postgresql.rst).
DIRECT_DATABASE_ENV = KEY_PREFIX + "DIRECT_DATABASE"
TABLE_LOCK_TIMEOUT_ENV = KEY_PREFIX + "TABLE_LOCK_TIMEOUT"
STATEMENT_TIMEOUT_ENV = KEY_PREFIX + "STATEMENT_TIMEOUT"
LOCK_RETRIES_ENV = KEY_PREFIX + "LOCK_RETRIES"

#: Header directives of a ``.sql`` migration, and module attributes of a ``.py`` one.
LOCK_TIMEOUT_DIRECTIVE = "-- migrate:lock-timeout"
STATEMENT_TIMEOUT_DIRECTIVE = "-- migrate:statement-timeout"
LOCK_TIMEOUT_ATTRIBUTE = "lock_timeout"
STATEMENT_TIMEOUT_ATTRIBUTE = "statement_timeout"

# Between migrations: undo what the previous one SET on the session (search_path, role…).
_RESET_SESSION = "RESET ALL; RESET ROLE"
# Before each transaction on a connection that may have been used before: what DISCARD
# ALL does, but allowed before a BEGIN in one round trip (session advisory locks are
# left alone: through a pooler they may be another client's).
_FRESH_SESSION = "RESET SESSION AUTHORIZATION; RESET ALL; DEALLOCATE ALL; UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES"
_SAVEPOINT = "selfmigrate_attempt"
#: The tracker's companion tables (``<table>_fingerprint``…), whose layout is read once too.
_COMPANIONS = ("fingerprint", "layout", "rollback")
#: The companion tables the change marker covers with the tracker table: what a run relies
#: on is the rows (version, checksum, state) and the layout. Not the rollback table (every
#: selfmigrate write to it goes with one to the tracker table, and what it holds decides
#: nothing a run applies) nor the fingerprint (a run does not rely on it): each table
#: costs a scan per step.
_MARKED = ("layout",)


def open_backend(database: str | os.PathLike[str], options: Options) -> PostgresBackend:
    """The backend for a PostgreSQL URL (what :mod:`..select` calls); connects to nothing.

    Each PostgreSQL setting ``options`` leave unset (``None``) is read from its
    environment variable (:data:`DIRECT_DATABASE_ENV`, :data:`TABLE_LOCK_TIMEOUT_ENV`,
    :data:`STATEMENT_TIMEOUT_ENV`, :data:`LOCK_RETRIES_ENV`), else it has its default.

    :raises ConfigError: a value is not usable; the message names the setting or the variable.
    """
    values = {name: _setting(options, name) for name in ENGINE_DEFAULTS}
    return PostgresBackend(
        os.fspath(database),
        lock_timeout=options.lock_timeout,
        direct_database=t.cast("str | None", values["direct_database"]),
        table_lock_timeout=t.cast(str, values["table_lock_timeout"]),
        statement_timeout=t.cast(str, values["statement_timeout"]),
        lock_retries=t.cast(int, values["lock_retries"]),
    )


def _setting(options: Options, name: str) -> object:
    """The value of the setting ``name``: from ``options``, else its environment variable, else the default."""
    value: object = getattr(options, name)
    if value is not None:
        problem = engine_setting_problem(name, value)
        if problem is not None:
            raise ConfigError(f"{name} ({KEY_PREFIX}{name.upper()}) {problem}")
        return value
    variable = KEY_PREFIX + name.upper()
    text = os.environ.get(variable, "").strip()
    if not text:
        return ENGINE_DEFAULTS[name]
    value = int(text) if name == "lock_retries" and text.isascii() and text.isdigit() else text
    problem = engine_setting_problem(name, value)
    if problem is not None:
        raise ConfigError(f"The environment variable {variable} {problem}")
    return value.strip() if isinstance(value, str) else value


def database_location(
    database: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, *, flask_sqlalchemy: bool = False
) -> str:
    """A PostgreSQL URL names its database itself (``base`` and ``flask_sqlalchemy`` are for files)."""
    url = os.fspath(database)
    if not is_postgres_url(url):
        raise ConfigError(f"{mask(url)} is not a PostgreSQL URL (postgresql://user@host:port/database).")
    return url


def check_duration(value: str, what: str) -> str:
    """``value`` if PostgreSQL reads it as a duration (``"5s"``, ``"500ms"``, ``"0"``).

    :raises ConfigError: it is not one; the message names ``what``.
    """
    if not is_duration(value):
        raise ConfigError(f"{what} must be a duration such as 5s, 500ms, 2min or 0 (no limit), not {value!r}.")
    return value.strip()


class _Idle:
    """The one connection a backend keeps between two uses (closed when the backend goes)."""

    def __init__(self) -> None:
        self.conn: PooledConnection | None = None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close_for_good()


class PooledConnection(psycopg.Connection[t.Any]):
    """A psycopg connection whose ``close()`` hands it back to its backend, session reset.

    The runner opens a connection per migration so that nothing one migration
    sets on its session reaches the next; the reset each transaction starts with
    (settings, role, temporary tables, prepared statements, ``LISTEN``: what
    ``DISCARD ALL`` resets but session locks) gives the same clean session without
    a new connection and its authentication round trips.
    """

    _idle: _Idle | None = None

    def close(self) -> None:
        """Keep the connection for the backend's next :meth:`~PostgresBackend.connect`, or close it.

        One is kept at most: closing another while one is kept closes both (the
        runner closes its first connection last, so a run leaves none open).
        """
        idle, self._idle = self._idle, None
        if idle is not None and idle.conn is None and self._reset():
            idle.conn = self
            return
        if idle is not None:
            idle.close()
        self.close_for_good()

    def _reset(self) -> bool:
        # Kept only when idle; the next transaction on it starts with _FRESH_SESSION.
        return not self.closed and self.info.transaction_status == TransactionStatus.IDLE

    def close_for_good(self) -> None:
        """Close the connection itself."""
        super().close()


class _Marker:
    """A change marker (see :meth:`PostgresBackend.change_marker`): its row, or the queued query that reads it.

    A queued one read inside a lock holder's transaction carries ``expected``, the
    marker its holder read just after taking the lock: its value is known only if
    the rows that this transaction did not write are still those of ``expected``
    (else nothing is known, and the next step reads the tracker in full).
    """

    __slots__ = ("_cursor", "_expected", "_row")

    def __init__(
        self,
        cursor: psycopg.Cursor[t.Any] | None = None,
        row: tuple[t.Any, ...] | None = None,
        expected: _Marker | None = None,
    ) -> None:
        self._cursor = cursor
        self._row = row
        self._expected = expected

    @classmethod
    def of(cls, row: tuple[t.Any, ...] | None) -> _Marker | None:
        """The marker of a row read (``None`` for no row)."""
        return None if row is None else cls(row=tuple(row))

    def row(self) -> tuple[t.Any, ...] | None:
        """The value, ``None`` if unknown (a queued query is read now: its pipeline has been sent)."""
        if self._cursor is not None:
            found = self._cursor.fetchone()
            self._cursor, self._row = None, None
            if found is not None and self._expected is not None:
                # The oids and every table's rows but this transaction's, against the lock's read.
                width = len(found) // 3
                others = (*found[:width], *found[2 * width :])
                if others == self._expected.row():
                    self._row = tuple(found[: 2 * width])
        return self._row

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Marker):
            return NotImplemented
        mine, theirs = self.row(), other.row()
        return mine is not None and mine == theirs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_Marker({self._row!r})" if self._cursor is None else "_Marker(queued)"


def _rows(cursor: psycopg.Cursor[t.Any]) -> list[t.Any]:
    """The first row of each result of a string of statements that returned rows."""
    rows = []
    while True:
        if cursor.pgresult is not None and cursor.pgresult.status == psycopg.pq.ExecStatus.TUPLES_OK:
            rows.append(cursor.fetchone())
        if not cursor.nextset():
            return rows


def _idle(pg: psycopg.Connection[t.Any]) -> bool:
    return not pg.closed and pg.info.transaction_status == TransactionStatus.IDLE


def _pg(conn: Connection) -> psycopg.Connection[t.Any]:
    assert isinstance(conn, psycopg.Connection), conn
    return conn


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _header_value(text: str, directive: str) -> str | None:
    """The value of ``directive`` among the comment lines before the first statement."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith(directive):
            return stripped[len(directive) :].strip()
        if stripped and not stripped.startswith("--"):
            return None
    return None


class PostgresBackend:
    """Talks to one PostgreSQL database.

    :param url: ``postgresql://`` (or ``postgres://``, ``postgresql+psycopg://``,
        ``postgresql+psycopg2://``) URL; what it leaves out libpq takes from the
        ``PG*`` environment variables and ``~/.pgpass``.
    :param lock_timeout: seconds to wait for the migration lock.
    :param direct_database: a URL that reaches the server directly, for
        non-transactional migrations when ``url`` goes through pgbouncer.
    :param table_lock_timeout: ``SET LOCAL lock_timeout`` of each migration.
    :param statement_timeout: ``SET LOCAL statement_timeout`` of each migration.
    :param lock_retries: how many more times a migration that timed out waiting
        for a table lock is tried (with backoff) before it fails.
    """

    name = "postgresql"
    placeholder = "%s"
    integer_type = "BIGINT"
    engine_errors: tuple[type[Exception], ...] = (psycopg.Error,)
    #: ``INSERT ... ON CONFLICT (version) DO UPDATE`` (PostgreSQL 9.5 and later): the tracker
    #: stores a migration's down in one statement of the step's pipeline, not a DELETE and an INSERT.
    upsert = True

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = 60.0,
        direct_database: str | None = None,
        table_lock_timeout: str = DEFAULT_TABLE_LOCK_TIMEOUT,
        statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT,
        lock_retries: int = DEFAULT_LOCK_RETRIES,
    ) -> None:
        self.url = url
        self.conninfo = libpq_url(url)
        self.direct_database = direct_database
        self.direct_conninfo = None if direct_database is None else libpq_url(direct_database)
        self.lock_timeout = lock_timeout
        self.table_lock_timeout = check_duration(table_lock_timeout, "table_lock_timeout")
        self.statement_timeout = check_duration(statement_timeout, "statement_timeout")
        self.lock_retries = lock_retries
        #: The schema of the tracker, found at the first connection (see :meth:`qualified`).
        self.schema: str | None = None
        self._session_lock: locks.SessionLock | None = None
        #: Seconds of :attr:`lock_timeout` this run has spent waiting (see :meth:`reset_wait`).
        self.waited = 0.0
        self._pause = 0.5  # first pause before retrying a migration that met a table lock
        self._idle = _Idle()
        # Tracker tables seen with their columns: read once per backend, not at every
        # migration (forgotten when a transaction rolls back).
        self._columns: dict[str, list[str]] = {}
        #: The connection holding the lock now, and the change marker it read just after taking it.
        self._holder: tuple[psycopg.Connection[t.Any], _Marker | None] | None = None
        #: The pipelines of lock holders whose writes wait for their COMMIT, by connection.
        self._queued: dict[int, contextlib.ExitStack] = {}
        weakref.finalize(self, self._idle.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def describe(self) -> str:
        """The database's URL, password masked."""
        return mask(self.url)

    # -- connections -------------------------------------------------------------

    def application_name(self) -> str:
        """``selfmigrate <host>:<pid>``: how this process shows in ``pg_stat_activity``."""
        import socket

        return f"selfmigrate {socket.gethostname()}:{os.getpid()}"[:63]

    def _open(self, conninfo: str, database: str) -> PooledConnection:
        options: dict[str, t.Any] = {"application_name": self.application_name()}
        if "connect_timeout" not in conninfo and not os.environ.get("PGCONNECT_TIMEOUT"):
            options["connect_timeout"] = max(1, min(30, int(self.lock_timeout) or 1))
        try:
            return PooledConnection.connect(conninfo, autocommit=True, prepare_threshold=None, **options)
        except psycopg.Error as e:
            raise self.connect_error(e, database) from e

    def connect(self, *, create: bool = True) -> PooledConnection:
        """Open a connection in autocommit mode (transactions are explicit).

        selfmigrate never creates a PostgreSQL database (``create`` is for
        SQLite files): a missing one is a :class:`DatabaseError` saying how to
        create it. The first connection finds the tracker's schema.
        """
        conn = self._idle.conn
        self._idle.conn = None
        if conn is None or conn.closed:
            conn = self._open(self.conninfo, self.describe())
        conn._idle = self._idle
        if self.schema is None:
            try:
                self.schema = self._find_schema(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def missing(self) -> bool:
        """Whether the server says the database does not exist."""
        try:
            self.connect().close()
        except DatabaseError as e:
            return "does not exist" in str(e) and "database" in str(e)
        return False

    def connect_error(self, error: psycopg.Error, database: str) -> DatabaseError:
        """A :class:`DatabaseError` for a failed connection: masked URL, the server's words, the fix."""
        text = str(error).strip()
        if "database" in text and "does not exist" in text:
            fix = (
                "Create it first (createdb, or CREATE DATABASE as a role that may):"
                " selfmigrate creates tables, not databases."
            )
        elif "password authentication failed" in text or "no password supplied" in text:
            fix = (
                "Check the user and password: in the URL, the PGPASSWORD environment variable or"
                " ~/.pgpass (libpq reads them as psql does)."
            )
        elif "role" in text and "does not exist" in text:
            fix = "Check the user name in the URL (or PGUSER); the server has no such role."
        elif "Connection refused" in text or "could not translate host name" in text or "timeout" in text:
            fix = "Check the host and port, and that the server is running and accepts TCP connections from here."
        else:
            fix = "Check the URL, the server and pg_hba.conf."
        return DatabaseError(f"Cannot connect to PostgreSQL database {database}: {mask(text)} {fix}")

    def _find_schema(self, conn: psycopg.Connection[t.Any]) -> str:
        """The tracker's schema: where the search path finds it, else the first schema of the search path."""
        table = _quote(self._table_name)
        # The tracker's columns come along (one round trip for what every command reads next).
        row = conn.execute(
            "SELECT (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass(%s)), current_schemas(false),"
            " (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped)",
            (table, table),
        ).fetchone()
        assert row is not None
        found, schemas, columns = row
        if found:
            if columns:
                self._columns[self._table_name] = list(columns)
            return str(found)
        if not schemas:
            raise DatabaseError(
                f"Database {self.describe()} has no schema on its search_path"
                f" ({conn.execute('SHOW search_path').fetchone()}) that exists, so selfmigrate does"
                " not know where to put its tracker table. Create the schema, or set the role's"
                " search_path (ALTER ROLE … SET search_path = …)."
            )
        return str(schemas[0])

    #: The tracker table's unqualified name (see :meth:`use_table`).
    _table_name = DEFAULT_TABLE

    def use_table(self, table: str) -> None:
        """Say which tracker table the tracker uses (its schema and lock key follow from it)."""
        self._table_name = table

    def stored_text(self, text: str) -> str:
        """The fingerprint key as the tracker stores it (NUL escaped: see :mod:`.text`)."""
        return stored_text(text)

    def loaded_text(self, text: str) -> str:
        """The fingerprint key as it was before :meth:`stored_text`."""
        return loaded_text(text)

    def qualified(self, table: str) -> str:
        """``"schema"."table"``: a table in the tracker's schema, as SQL.

        Every tracker statement names its table this way, so a migration that
        changes ``search_path`` cannot move the tracker.
        """
        if self.schema is None:
            raise DatabaseError(f"Database {self.describe()}: the tracker's schema is not known before connecting.")
        return f"{_quote(self.schema)}.{_quote(table)}"

    def _lock_key(self, purpose: str) -> int:
        return locks.lock_key(self.qualified(self._table_name), purpose)

    # -- transactions and the migration lock ----------------------------------------

    def reset_wait(self, waited: float = 0.0) -> None:
        """Start a run's wait budget: :attr:`lock_timeout` in all, ``waited`` of it spent already."""
        self.waited = max(waited, 0.0)

    def remaining(self) -> float:
        """Seconds the budget still allows to wait."""
        return max(self.lock_timeout - self.waited, 0.0)

    def acquire(self, lock: MigrationLock) -> None:
        """Take ``lock`` within the budget, and charge the wait to it."""
        started = time.monotonic()
        try:
            lock.acquire(self.remaining())
        finally:
            self.waited += time.monotonic() - started

    @contextlib.contextmanager
    def locked_transaction(self, conn: Connection) -> t.Iterator[None]:
        """A READ COMMITTED transaction holding the migrations' transaction-level advisory lock.

        The lock is taken by polling ``pg_try_advisory_xact_lock`` (never a
        blocking wait inside the server) for at most :attr:`lock_timeout`
        seconds; the session's settings are reset first, so what a previous
        migration SET does not leak into this one. The first round trip also
        reads the tracker's change marker, in a statement of its own after the
        lock's (see :meth:`change_marker`); what the block writes after its
        migration ran goes in one pipeline with the ``COMMIT``.

        :raises LockTimeout: not taken in time; the message names the holder.
        """
        pg = _pg(conn)
        key = self._lock_key(locks.TRANSACTION_LOCK)
        marker_sql = self._marker_sql()
        # One round trip: the reset, BEGIN, the first try and the marker. In READ COMMITTED
        # each statement of the string takes its own snapshot: the marker's is taken after
        # the lock is, so it sees every commit of the lock's previous holder.
        sql = f"{_FRESH_SESSION}; BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_try_advisory_xact_lock({key})"
        try:
            rows = _rows(pg.execute(sql if marker_sql is None else f"{sql}; {marker_sql}"))
            row = rows[0]
            marker = _Marker.of(rows[1]) if marker_sql is not None else None
        except BaseException:
            self._columns.clear()  # a tracker table the marker names may be gone
            self.rollback(pg)
            raise
        try:
            if not (row and row[0]):
                marker = None  # read before the lock was taken: worth nothing
                started = time.monotonic()
                waited = locks.poll(lambda: locks.try_xact_lock(pg, key), self.remaining())
                self.waited += time.monotonic() - started
                if waited is None:
                    raise locks.timeout_error(pg, key, locks.TRANSACTION_LOCK, self.describe(), self.waited)
                if marker_sql is not None:
                    marker = _Marker.of(pg.execute(marker_sql).fetchone())
            self._holder = (pg, marker)
            yield
            pg.execute("COMMIT")
            queued = self._queued.pop(id(pg), None)
            if queued is not None:
                queued.close()  # sends the queue: the tracker's writes, the marker, the COMMIT
        except BaseException:
            self._columns.clear()  # a tracker table created in this transaction is gone
            self._close_queue(pg)
            self.rollback(pg)
            raise
        finally:
            self._holder = None

    @contextlib.contextmanager
    def try_locked_transaction(self, conn: Connection) -> t.Iterator[bool]:
        """:meth:`locked_transaction` with one try of the lock and no polling: ``False`` if it is held.

        For a write that may be skipped (the fingerprint after a deploy); an error
        of the server (a read-only replica, a full disk) gives ``False`` too.
        """
        pg = _pg(conn)
        key = self._lock_key(locks.TRANSACTION_LOCK)
        try:
            cursor = pg.execute(
                f"{_FRESH_SESSION}; BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_try_advisory_xact_lock({key})"
            )
            while cursor.nextset():
                pass
            row = cursor.fetchone()
        except psycopg.Error:
            self.rollback(pg)
            row = None
        if not (row and row[0]):
            self.rollback(pg)
            yield False
            return
        try:
            yield True
        except BaseException:
            self._columns.clear()
            self.rollback(pg)
            raise
        try:
            pg.execute("COMMIT")
        except psycopg.Error:
            self._columns.clear()
            self.rollback(pg)

    def change_marker(self, conn: Connection) -> object | None:
        """The tracker's tables as of now: their oids and the transaction ids of their rows.

        Every row a transaction inserts or updates carries that transaction's id
        (``xmin``), which no row visible before its commit carries; a delete
        leaves fewer rows. So once another transaction has committed a change to
        the tracker table or its layout (selfmigrate, or a hand edit that holds
        no lock), the value differs; a rewrite (``VACUUM FULL``)
        may change it too, which only costs a full read. ``None`` while a tracker
        table is missing.

        The value is the database's, not the connection's: read on an idle
        connection while another connection of this backend holds the lock, it
        is the one that connection read just after taking the lock (no one who
        takes the lock can commit between the two). Read in the lock holder's
        transaction, it is known only if every row this transaction did not
        write is as the lock's read found it: a change committed meanwhile by
        hand would otherwise hide in it. Queued with the transaction's writes,
        it is known at the ``COMMIT``.
        """
        pg = _pg(conn)
        holder = self._holder
        if holder is not None and holder[0] is not pg and holder[1] is not None and _idle(pg):
            return holder[1]
        inside = holder is not None and holder[0] is pg
        if inside and (holder is None or holder[1] is None):
            # The lock's read is not known (no tracker then): nothing to check the rows
            # against. The tables are looked up now, so that the next lock reads a marker.
            self._marker_sql(conn=pg)
            return None
        sql = self._marker_sql(conn=pg, own=inside)
        if sql is None:
            return None
        if inside:
            assert holder is not None
            cursor = pg.execute(sql)
            marker = _Marker(cursor, expected=holder[1])
            if id(pg) not in self._queued:
                marker.row()
            return marker
        return _Marker.of(pg.execute(sql).fetchone())

    def _marker_sql(self, *, conn: psycopg.Connection[t.Any] | None = None, own: bool = False) -> str | None:
        """The query of :meth:`change_marker`, or ``None`` while a tracker table is missing.

        Only tables this backend has seen are named (a missing one would fail the
        query); with ``conn``, the ones not seen yet are looked up first. ``own``:
        each table's rows once more without those of the open transaction.
        """
        tables = [self._table_name] + [f"{self._table_name}_{s}" for s in _MARKED]
        if self.schema is None:
            return None
        for table in tables:
            if table not in self._columns and (conn is None or self.table_columns(conn, table) is None):
                return None
        names = [self.qualified(table) for table in tables]
        columns = [f"to_regclass('{name.replace(chr(39), chr(39) * 2)}')::oid" for name in names]
        columns += [f"m{n}.rows" for n in range(len(names))]
        # One scan of each table, however many aggregates.
        every = "md5(string_agg(xmin::text, ','))"
        if own:
            columns += [f"m{n}.others" for n in range(len(names))]
            # The open transaction's xid as a 32-bit xid (xmin's type); NULL before it wrote.
            mine = "(SELECT (pg_current_xact_id_if_assigned()::text::bigint % 4294967296)::text::xid)"
            others = f"md5(string_agg(xmin::text, ',') FILTER (WHERE xmin IS DISTINCT FROM {mine}))"
            scans = [f"(SELECT {every} AS rows, {others} AS others FROM {name}) m{n}" for n, name in enumerate(names)]
        else:
            scans = [f"(SELECT {every} AS rows FROM {name}) m{n}" for n, name in enumerate(names)]
        return f"SELECT {', '.join(columns)} FROM {', '.join(scans)}"

    def rollback(self, conn: Connection) -> None:
        """Roll back the open transaction, if any (nothing on a closed connection)."""
        pg = _pg(conn)
        if not pg.closed and pg.info.transaction_status != TransactionStatus.IDLE:
            pg.execute("ROLLBACK")

    def _queue(self, pg: psycopg.Connection[t.Any]) -> bool:
        """From now until the ``COMMIT``, send what is executed on ``pg`` in one pipeline.

        Only for the lock holder's transaction, after its migration ran: what
        follows (the session reset, the tracker's rows, the change marker) fails
        only as its ``COMMIT`` would, and is rolled back with it. Returns whether
        ``pg`` queues now.
        """
        if id(pg) in self._queued:
            return True
        if self._holder is None or self._holder[0] is not pg:
            return False
        stack = contextlib.ExitStack()
        stack.enter_context(pg.pipeline())
        self._queued[id(pg)] = stack
        return True

    def _close_queue(self, pg: psycopg.Connection[t.Any]) -> None:
        """Leave pipeline mode after a failure (the failure is what is raised, not the queue's)."""
        queued = self._queued.pop(id(pg), None)
        if queued is None:
            return
        try:
            queued.close()
        except psycopg.Error as e:
            logger.debug("The queued statements on %s failed too: %s", self.describe(), e)

    def migration_lock(self) -> locks.SessionLock:
        """The session-level advisory lock of non-transactional migrations, on a connection of its own.

        That connection goes to the direct URL (:data:`DIRECT_DATABASE_ENV`) if
        one is given; through a transaction-pooling pgbouncer it is refused at
        once (:class:`ConfigError` with the fix), never waited for.
        """
        if self.schema is None:
            self.connect().close()
        conninfo = self.direct_conninfo or self.conninfo
        database = mask(self.direct_database or self.url)
        lock = locks.SessionLock(
            lambda: self._open(conninfo, database),
            self._lock_key(locks.SESSION_LOCK),
            database,
            self._check_direct,
        )
        self._session_lock = lock
        return lock

    def _check_direct(self, conn: psycopg.Connection[t.Any]) -> None:
        conninfo = self.direct_conninfo or self.conninfo
        database = mask(self.direct_database or self.url)
        found = pooled(conn, lambda: self._open(conninfo, database))
        if found is None:
            return
        given = "the direct URL given" if self.direct_database else "it"
        raise ConfigError(
            f"Database {self.describe()} is reached through a connection pooler ({given}: {found.evidence};"
            " pgbouncer?). A migration that runs outside a transaction needs a session-level lock, which"
            " a pooler in transaction mode does not keep. Give selfmigrate a URL that reaches the server"
            f" directly: {DIRECT_DATABASE_ENV}=postgresql://user@host:{found.server_port}/database (the"
            " environment variable or the Flask config key; direct_database= of selfmigrate.migrate(),"
            " direct_database in [tool.selfmigrate]), or run it once with that URL. Nothing was changed."
        )

    # -- running migrations ---------------------------------------------------------------

    def statements(self, script: SQLScript) -> list[Statement]:
        """The statements of ``script``, each with its file line.

        :raises StatementError: the text cannot be split (an unclosed quote,
            ``COPY … FROM stdin``); it carries the line where the problem starts.
        """
        try:
            pieces = split_statements(script.text, script.first_line)
        except SQLTextError as e:
            raise StatementError(Statement(_line(script, e.line), e.line), e) from e
        return [Statement(s.sql, s.line) for s in pieces]

    def timeouts(self, step: Step) -> tuple[str, str]:
        """``(lock_timeout, statement_timeout)`` for a migration: its directives, else the defaults.

        :raises ConfigError: a directive's value is not a duration.
        """
        if isinstance(step, SQLScript):
            lock = _header_value(step.text, LOCK_TIMEOUT_DIRECTIVE)
            statement = _header_value(step.text, STATEMENT_TIMEOUT_DIRECTIVE)
            names = (LOCK_TIMEOUT_DIRECTIVE, STATEMENT_TIMEOUT_DIRECTIVE)
        else:
            # The module's own globals: the step is up() as discovery wrapped it (functools.wraps).
            module = getattr(inspect.unwrap(step), "__globals__", {})
            lock = module.get(LOCK_TIMEOUT_ATTRIBUTE)
            statement = module.get(STATEMENT_TIMEOUT_ATTRIBUTE)
            names = (LOCK_TIMEOUT_ATTRIBUTE, STATEMENT_TIMEOUT_ATTRIBUTE)
        return (
            self.table_lock_timeout if lock is None else check_duration(str(lock), names[0]),
            self.statement_timeout if statement is None else check_duration(str(statement), names[1]),
        )

    def run_in_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
        """Run one direction of a migration in the open transaction, guarded and timed out.

        Transaction control in SQL is refused before any statement runs; a
        Python step gets a :class:`GuardedConnection`. The step runs under a
        savepoint with ``SET LOCAL lock_timeout`` / ``statement_timeout``; if it
        times out waiting for a table lock, it is rolled back to the savepoint
        and tried again (:attr:`lock_retries` times, with backoff).
        """
        pg = _pg(conn)
        lock_timeout, statement_timeout = self.timeouts(step)
        statements = self.statements(step) if isinstance(step, SQLScript) else None
        for statement in statements or ():
            word = transaction_control(statement.sql)
            if word is not None:
                refused.append(word)
                raise StatementError(statement, TransactionControlRefused(f"{word} refused before any statement ran"))
        pause = self._pause
        for attempt in range(self.lock_retries + 1):
            setup = (
                f"SAVEPOINT {_SAVEPOINT}; SET LOCAL lock_timeout = '{lock_timeout}';"
                f" SET LOCAL statement_timeout = '{statement_timeout}'"
            )
            try:
                released = self._run_step(pg, step, statements, refused, setup)
            except Exception as e:
                cause = e.error if isinstance(e, StatementError) else e
                if not isinstance(cause, pg_errors.LockNotAvailable) or refused:
                    raise
                pg.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                held = self.table_locks(pg, e.statement.sql if isinstance(e, StatementError) else "")
                cause.add_note(f"selfmigrate: {held}")
                if attempt == self.lock_retries:
                    raise
                logger.warning(
                    "A statement of a migration on %s waited %s for a table lock and was cancelled (%s);"
                    " trying the migration again in %.1f s (%d of %d).",
                    self.describe(),
                    lock_timeout,
                    held,
                    pause,
                    attempt + 1,
                    self.lock_retries,
                )
                time.sleep(pause * random.uniform(0.8, 1.2))
                pause *= 2
                continue
            break
        if refused:
            pg.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}; {_RESET_SESSION}")
            raise Refused(f"{refused[0]} refused")
        # What the transaction does from here on is the tracker's: queued until its COMMIT.
        release = f"RELEASE SAVEPOINT {_SAVEPOINT}; {_RESET_SESSION}"
        if self._queue(pg):
            for sql in () if released else release.split("; "):  # a pipeline takes one statement at a time
                pg.execute(sql)
        elif not released:
            pg.execute(release)

    def _run_step(
        self,
        pg: psycopg.Connection[t.Any],
        step: Step,
        statements: list[Statement] | None,
        refused: list[str],
        setup: str,
    ) -> bool:
        """Run the step after ``setup`` (the savepoint and the timeouts); return whether the
        savepoint was released and the session reset with its last statement.

        ``setup`` goes in front of the first statement and the release after the
        last one, in their round trips: each statement of the string is still a
        statement of its own for the server (its errors, its locks; a failing one
        stops the string, so the savepoint is still there to roll back to), and
        pg_stat_activity shows the migration's statement with them around it.
        """
        released = False
        if statements is not None:
            for n, statement in enumerate(statements, 1):
                sql = f"{setup}; {statement.sql}" if setup else statement.sql
                if n == len(statements):
                    # After a newline: a last line that is a comment ends there.
                    sql += f"\n; RELEASE SAVEPOINT {_SAVEPOINT}; {_RESET_SESSION}"
                try:
                    pg.execute(sql)
                except psycopg.Error as e:
                    raise StatementError(statement, e) from e
                setup = ""
                released = n == len(statements)
            if setup:
                pg.execute(setup)  # a file of comments only
        else:
            assert not isinstance(step, SQLScript)
            pg.execute(setup)
            step(GuardedConnection(pg, refused))
        status = pg.info.transaction_status
        if status == TransactionStatus.INERROR:
            raise DatabaseError(
                "a statement of the migration failed and the migration carried on (it caught the"
                " error); the transaction cannot be committed"
            )
        if status != TransactionStatus.INTRANS:
            refused.append("end")
            raise TransactionControlRefused("the migration ended the transaction selfmigrate ran it in")
        return released

    def run_outside_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
        """Run a non-transactional migration on the migration lock's own (direct) connection.

        Statements run one by one in autocommit mode (``CREATE INDEX
        CONCURRENTLY``, ``VACUUM``); a transaction it leaves open is rolled back
        and is an error.
        """
        lock = self._session_lock
        pg = lock.conn if lock is not None and lock.held and lock.conn is not None else _pg(conn)
        try:
            if isinstance(step, SQLScript):
                for statement in self.statements(step):
                    try:
                        pg.execute(statement.sql)
                    except psycopg.Error as e:
                        raise StatementError(statement, e) from e
            else:
                step(pg)
            if pg.info.transaction_status != TransactionStatus.IDLE:
                raise DatabaseError("the migration left a transaction open (BEGIN without COMMIT)")
            pg.execute(_RESET_SESSION)
        except Exception:
            self.rollback(pg)
            raise

    def table_locks(self, conn: psycopg.Connection[t.Any], sql: str) -> str:
        """Who holds locks on the tables ``sql`` names (for a lock timeout's message)."""
        words = sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?", sql)))
        rows = conn.execute(
            "SELECT l.relation::regclass::text, l.mode, a.pid, a.application_name, host(a.client_addr),"
            " to_char(coalesce(a.xact_start, a.query_start) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
            " left(a.query, 120)"
            " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()"
            " AND l.relation IN (SELECT to_regclass(w) FROM unnest(%s::text[]) w)"
            " ORDER BY 1, 3",
            (words,),
        ).fetchall()
        if not rows:
            return "the table lock it waited for is no longer held by anyone"
        held = [
            f"table {table} locked {mode} by server pid {pid} (application_name {app or 'not set'!r},"
            f" client {addr or 'local or not visible'}, since {since or 'unknown'}, query {query!r})"
            for table, mode, pid, app, addr, since, query in rows
        ]
        return "; ".join(held)

    def failure_advice(self, error: BaseException, refused: list[str], *, transactional: bool = True) -> list[str]:
        """The lines of a migration's failure message: the SQLSTATE, why, and what to do."""
        lines = []
        if refused:
            lines.append(
                f"The migration tried to {refused[0]} the transaction selfmigrate runs it in (refused before"
                " it could). Remove BEGIN/COMMIT/ROLLBACK/END (and conn.commit(), conn.rollback(),"
                " autocommit) from it: selfmigrate commits each migration together with its tracker row."
                " A statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM) goes in"
                " a migration of its own with '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)."
            )
        hint = self._hint(error)
        if hint is not None:
            lines.append(hint)
        return lines

    def _hint(self, error: BaseException) -> str | None:
        """The SQLSTATE, and what to do for the common ones (table lock, timeout, not in a transaction)."""
        if isinstance(error, SQLTextError):
            return "The file cannot be split into statements: fix it at that line (nothing ran)."
        if not isinstance(error, psycopg.Error) or error.sqlstate is None:
            return None
        state = error.sqlstate
        if isinstance(error, pg_errors.LockNotAvailable):
            notes = " ".join(getattr(error, "__notes__", []))
            return (
                f"SQLSTATE {state}: a statement waited longer than its lock_timeout for a table lock, and"
                f" every retry ({self.lock_retries}) did too. {notes} End or wait out those sessions, or"
                f" allow a longer wait ({LOCK_TIMEOUT_DIRECTIVE} 30s in the file, or {TABLE_LOCK_TIMEOUT_ENV})."
            )
        if isinstance(error, pg_errors.QueryCanceled):
            return (
                f"SQLSTATE {state}: the statement ran longer than its statement_timeout. Allow it longer"
                f" ({STATEMENT_TIMEOUT_DIRECTIVE} 0 in the file for no limit, or {STATEMENT_TIMEOUT_ENV})."
            )
        if isinstance(error, pg_errors.ActiveSqlTransaction):
            return (
                f"SQLSTATE {state}: this statement cannot run inside a transaction. Put it in a migration"
                " of its own whose first line is '-- migrate:no-transaction'."
            )
        return f"SQLSTATE {state}."

    def database_error(self, error: Exception) -> SelfMigrateError:
        """A clear error for a database error met outside a migration (tracker, lock, commit)."""
        state = getattr(error, "sqlstate", None)
        if isinstance(error, pg_errors.InsufficientPrivilege):
            fix = (
                f"The role lacks a privilege selfmigrate needs on schema {self.schema}: to create and"
                " write its tracker table there (GRANT CREATE, USAGE ON SCHEMA … TO the role)."
            )
        elif isinstance(error, pg_errors.ReadOnlySqlTransaction):
            fix = "The server is read-only (a standby?): point the URL at the primary."
        elif isinstance(error, psycopg.OperationalError):
            fix = "The connection to the server failed: check that it is running and reachable, then start again."
        else:
            fix = "Check the database and the role's privileges."
        return DatabaseError(
            f"Cannot migrate database {self.describe()}: {type(error).__name__}: {mask(str(error).strip())}"
            f"{f' (SQLSTATE {state})' if state else ''}. {fix} No migration is half-applied (each"
            " one is a transaction); start again once this is fixed."
        )

    # -- probes ---------------------------------------------------------------------------

    def check_integrity(self, conn: Connection) -> None:
        """Refuse to migrate a standby or a read-only database (before the first change)."""
        row = _pg(conn).execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone()
        assert row is not None
        if row[0] or row[1] == "on":
            raise DatabaseError(
                f"Database {self.describe()} is read-only"
                f" ({'a standby in recovery' if row[0] else 'transaction_read_only is on'})."
                " selfmigrate migrates the primary: point the URL at it. Nothing was changed."
            )

    def table_columns(self, conn: Connection, table: str) -> list[str] | None:
        """The column names of ``table`` in the tracker's schema, or ``None`` if there is no such table."""
        if table in self._columns:
            return list(self._columns[table])
        sql = (
            "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
        )
        row = _pg(conn).execute(sql, (self.qualified(table),)).fetchone()
        if row is None or row[0] is None:
            return None
        if table == self._table_name or table in {f"{self._table_name}_{s}" for s in _COMPANIONS}:
            self._columns[table] = list(row[0])
        return list(row[0])

    def has_objects(self, conn: Connection, *, exclude: t.Collection[str] = ()) -> bool:
        """Whether any schema but the system ones holds a table, view, sequence… other than ``exclude``."""
        excluded = [self.qualified(name) for name in exclude]
        row = (
            _pg(conn)
            .execute(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"
                " AND c.oid <> ALL (SELECT to_regclass(x) FROM unnest(%s::text[]) x WHERE to_regclass(x) IS NOT NULL))",
                (excluded,),
            )
            .fetchone()
        )
        return bool(row and row[0])

    def interrupted_advice(self, conn: Connection) -> str | None:
        """What an interrupted non-transactional migration left behind: its ``INVALID`` indexes.

        An interrupted ``CREATE INDEX CONCURRENTLY`` leaves an index marked
        invalid (``pg_index.indisvalid``) that a retry would trip over ("already
        exists"); each one found is named with the statement that removes it.
        """
        rows = (
            _pg(conn)
            .execute(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), t.relname"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid ORDER BY 1"
            )
            .fetchall()
        )
        if not rows:
            return None
        listed = "; ".join(f"DROP INDEX CONCURRENTLY {name};" for name, _ in rows)
        tables = ", ".join(sorted({str(table) for _, table in rows}))
        return (
            f"It left {len(rows)} INVALID index(es) (an interrupted CREATE INDEX CONCURRENTLY, on {tables}):"
            f" remove them with {listed} then run it again with 'python -m selfmigrate resolve <version> --retry'."
        )

    # -- snapshots and schema ------------------------------------------------------------

    def snapshot_before_change(
        self,
        *,
        since: float,
        version: int | None,
        oldest: tuple[int, str, str] | None,
        table: str,
        directory: str | os.PathLike[str] | None,
        keep: int | None,
    ) -> Snapshot | None:
        """A ``pg_dump -Fc`` of the database when a snapshot folder is set, else ``None`` (logged)."""
        from .snapshots import snapshot_for_run

        return snapshot_for_run(self, since=since, version=version, directory=directory, keep=keep)

    def list_snapshots(
        self, *, directory: str | os.PathLike[str] | None = None, table: str = DEFAULT_TABLE
    ) -> list[Snapshot]:
        """The database's ``pg_dump`` snapshots in ``directory``, newest first."""
        from .snapshots import list_snapshots

        return list_snapshots(self, directory)

    def find_snapshot(
        self,
        name: str | os.PathLike[str],
        *,
        directory: str | os.PathLike[str] | None = None,
        table: str = DEFAULT_TABLE,
    ) -> Snapshot:
        """The snapshot named ``name``."""
        from .snapshots import find_snapshot

        return find_snapshot(self, name, directory)

    def restore(
        self,
        snapshot: str | os.PathLike[str],
        *,
        directory: str | os.PathLike[str] | None = None,
        wait: float = 0.5,
        table: str = DEFAULT_TABLE,
    ) -> Snapshot:
        """Not done by selfmigrate on a server: the error gives the ``pg_restore`` command."""
        from .snapshots import restore

        return restore(self, snapshot, directory)

    def read_schema(self, *, exclude: t.Collection[str] = ()) -> Schema:
        """The database's tables, columns, indexes, views and triggers (see :func:`.schema.read_schema`)."""
        from .schema import read_schema

        conn = self.connect()
        try:
            return read_schema(conn, exclude=exclude)
        finally:
            conn.close()


def _line(script: SQLScript, line: int) -> str:
    lines = script.text.splitlines()
    index = line - script.first_line
    return lines[index].strip() if 0 <= index < len(lines) else ""


if t.TYPE_CHECKING:
    from ..base import Backend

    def _is_a_backend(backend: PostgresBackend) -> Backend:
        # The type checker proves here that PostgresBackend has every member of the protocol.
        return backend
