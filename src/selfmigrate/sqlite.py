"""The SQLite backend: opening the database, the write lock, running SQL scripts.

Everything that is specific to SQLite lives here, behind the small surface the
runner and the tracker use (:class:`SQLiteBackend`), so that a PostgreSQL backend
can sit beside it: connect, take the write lock, commit, roll back, run a script
statement by statement, describe a table.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, DatabaseError, LockTimeout

if t.TYPE_CHECKING:
    from .migration import SQLScript

#: Pragmas that do nothing (or fail) when set inside a transaction; a migration
#: that sets one must run outside a transaction (``-- migrate:no-transaction``).
#: ``page_size`` and ``auto_vacuum`` take effect on a database with content only
#: through a ``VACUUM``, which cannot run in a transaction either.
NO_TRANSACTION_PRAGMAS = frozenset({"journal_mode", "foreign_keys", "page_size", "auto_vacuum", "synchronous"})
#: Pragmas SQLite ignores once the database has content. Every migration runs on a
#: database with content (selfmigrate's tracker table exists before the first one),
#: so a migration that sets one is refused, transactional or not.
EMPTY_DATABASE_PRAGMAS = frozenset({"encoding"})
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
#: Appended to the database's file name to name its migration lock file.
LOCK_SUFFIX = "-selfmigrate.lock"
# sqlite3 authorizer action code for BEGIN / COMMIT / ROLLBACK (not SAVEPOINT).
_SQLITE_TRANSACTION = 22


#: SQLAlchemy's URL syntax (``sqlalchemy.engine.url._parse_url``), for the SQLite drivers.
_SQLALCHEMY_URL = re.compile(
    r"(?P<driver>sqlite(?:\+[\w+]*)?)://(?P<authority>[^/?]*)(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?",
    re.DOTALL,
)
#: Drivers whose URLs SQLAlchemy turns into a file name as its pysqlite dialect does.
_PYSQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite")
#: Query parameters SQLAlchemy's pysqlite dialect passes to the driver, not to a SQLite URI.
_PYSQLITE_ARGS = ("uri", "timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements")
_URL_FORMS = "Use sqlite:///relative/path.db or sqlite:////absolute/path.db"


def database_path(
    value: str | os.PathLike[str],
    base: str | os.PathLike[str] | None = None,
    *,
    flask_sqlalchemy: bool = False,
) -> Path:
    """Return the file path of a SQLite database given as a path or a SQLAlchemy URL.

    A URL resolves to the file SQLAlchemy's SQLite dialect opens for it:
    ``sqlite:///relative.db`` is relative, ``sqlite:////abs/path.db`` absolute;
    the driver forms ``sqlite+pysqlite:///`` and ``sqlite+aiosqlite:///``; the
    path percent-decoded (``my%20app.db`` is ``my app.db``); query parameters
    for the driver (``?timeout=5``) ignored; with ``?uri=true``, the path and
    the remaining parameters form a SQLite URI (``sqlite:///file:data.db?mode=rwc&uri=true``),
    decoded as SQLite does. A plain path is taken as it is, except a ``file:``
    SQLite URI. A relative path is taken from ``base`` when given.

    :param flask_sqlalchemy: resolve a relative path of a ``sqlite`` or
        ``sqlite+pysqlite`` URL exactly as Flask-SQLAlchemy (3.x) rewrites it
        before SQLAlchemy opens it: joined to ``base`` (``app.instance_path``).
    :raises ConfigError: the value names an in-memory or temporary database (a
        migrated database that vanishes with its connection is never what a
        caller wants), or no file that selfmigrate can resolve.
    """
    text = os.fspath(value)
    url = _SQLALCHEMY_URL.fullmatch(text)
    if url is None:
        if re.match(r"sqlite[\w+]*:", text):
            raise ConfigError(
                f"Database URL {text!r} does not name a SQLite file. Use sqlite:///relative/path.db"
                " or sqlite:////absolute/path.db."
            )
        path = _sqlite_uri_path(text, text) if text.startswith("file:") else _file_name(text, text)
    else:
        path = _url_path(text, url, base, flask_sqlalchemy)
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return path


def _url_path(text: str, url: re.Match[str], base: str | os.PathLike[str] | None, flask_sqlalchemy: bool) -> Path:
    """The file a SQLAlchemy SQLite URL opens (pysqlite's ``create_connect_args``)."""
    from urllib.parse import parse_qsl, unquote

    driver = url["driver"]
    if driver not in _PYSQLITE_DRIVERS:
        raise ConfigError(
            f"Database URL {text!r} uses the driver {driver!r}; selfmigrate opens SQLite files with"
            f" Python's sqlite3 module, as {', '.join(_PYSQLITE_DRIVERS)} do. {_URL_FORMS}."
        )
    if url["authority"]:
        raise ConfigError(
            f"Database URL {text!r} has a host part ({url['authority']!r}); SQLite has none. {_URL_FORMS}."
        )
    query: dict[str, str] = {}
    for key, item in parse_qsl(url["query"] or ""):
        if key in query:
            raise ConfigError(f"Database URL {text!r} gives the parameter {key!r} twice. Give it once.")
        query[key] = item
    database = None if url["database"] is None else unquote(url["database"])
    try:
        uri = _as_bool(query.get("uri", "false"))
    except ValueError:
        raise ConfigError(
            f"Database URL {text!r}: uri={query['uri']!r} is not true or false (SQLAlchemy refuses it too)."
        ) from None
    if database is None or database in ("", ":memory:"):
        raise _in_memory(text)
    if flask_sqlalchemy and base is not None and driver in ("sqlite", "sqlite+pysqlite"):
        # An in-memory URI stays refused, although Flask-SQLAlchemy would turn
        # sqlite:///file::memory:?uri=true into a file named ":memory:".
        _url_path(text, url, None, False)
        # Flask-SQLAlchemy 3 (SQLAlchemy._apply_driver_defaults) rewrites the URL before
        # SQLAlchemy sees it: a relative path goes into the instance folder; with uri=true
        # it drops the first five characters (meant to be "file:") and puts them back as "file:".
        name = database[5:] if uri else database
        if not os.path.isabs(name):
            name = os.path.join(base, name)
            database = f"file:{name}" if uri else name
    if not uri:
        return _file_name(database, text)
    extra = {key: item for key, item in query.items() if key not in _PYSQLITE_ARGS}
    filename = database + ("?" + "&".join(f"{key}={extra[key]}" for key in sorted(extra)) if extra else "")
    if filename.startswith("file:"):
        return _sqlite_uri_path(filename, text)
    return _file_name(filename, text)  # SQLite takes a name without "file:" literally, even as a URI


def _sqlite_uri_path(uri: str, text: str) -> Path:
    """The file of a SQLite ``file:`` URI, decoded as ``sqlite3ParseUri`` does."""
    from urllib.parse import unquote_to_bytes

    rest = uri[len("file:") :]
    if rest.startswith("//"):
        end = rest.find("/", 2)
        authority = rest[2:] if end < 0 else rest[2:end]
        if authority not in ("", "localhost"):
            raise ConfigError(
                f"Database {text!r}: SQLite refuses the URI authority {authority!r} (only none or"
                " 'localhost'). Write file:/absolute/path.db or file:relative/path.db."
            )
        rest = "" if end < 0 else rest[end:]
    rest = rest.split("#", 1)[0]
    encoded, _, query = rest.partition("?")
    raw = unquote_to_bytes(encoded)
    if b"\0" in raw:
        raise ConfigError(f"Database {text!r}: its path contains %00. Give the file's path.")
    params = {}
    for item in query.split("&") if query else ():
        key, _, setting = item.partition("=")
        params[unquote_to_bytes(key).decode(errors="replace")] = unquote_to_bytes(setting).decode(errors="replace")
    path = os.fsdecode(raw)
    if params.get("mode") == "memory" or params.get("vfs") == "memdb" or path in ("", ":memory:"):
        raise _in_memory(text)
    return Path(path)


def _file_name(name: str, text: str) -> Path:
    if name in ("", ":memory:"):
        raise _in_memory(text)
    return Path(name)


def _in_memory(text: str) -> ConfigError:
    return ConfigError(
        f"Database {text!r} is in memory (or a temporary database); selfmigrate migrates database"
        f" files. Give a file path. {_URL_FORMS}."
    )


def _as_bool(setting: str) -> bool:
    """SQLAlchemy's ``util.asbool`` for a query parameter."""
    lowered = setting.strip().lower()
    if lowered in ("true", "yes", "on", "y", "t", "1"):
        return True
    if lowered in ("false", "no", "off", "n", "f", "0"):
        return False
    raise ValueError(setting)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a script, and the line of its file it starts on."""

    sql: str
    line: int


class StatementError(Exception):
    """A statement of a script failed; carries which one and the database error."""

    def __init__(self, statement: Statement, error: sqlite3.Error) -> None:
        super().__init__(str(error))
        self.statement = statement
        self.error = error


#: The characters SQLite's tokenizer takes for white space (``tokenize.c``,
#: ``complete.c``). Python's :meth:`str.isspace` knows more (``\x0b``, ``\x85``,
#: ``\u2028`` …): to SQLite those are an illegal character or part of a word.
SQL_WHITESPACE = " \t\n\f\r"

#: One token of SQL as SQLite's tokenizer cuts it, as far as splitting needs:
#: white space, a ``--`` comment (to the next ``\n``: SQLite knows no other line
#: end), a ``/* */`` comment (unterminated: to the end; a bare ``/*`` ending the
#: text is two characters of code, as in SQLite), a quoted string or
#: identifier (a doubled quote inside is an escaped one; ``[…]`` has no escape;
#: unterminated: to the end), a semicolon, or anything else.
_TOKEN = re.compile(
    r"""(?P<space>[ \t\n\f\r]+)
    |(?P<line>--[^\n]*)
    |(?P<block>/\*.*?\*/|/\*.+)
    |(?P<quoted>'(?:[^']+|'')*'?|"(?:[^"]+|"")*"?|`(?:[^`]+|``)*`?|\[[^\]]*\]?)
    |(?P<semicolon>;)
    |(?P<other>[^ \t\n\f\r;'"`\[/-]+|.)""",
    re.DOTALL | re.VERBOSE,
)


def sql_tokens(text: str) -> t.Iterator[tuple[str, int, int]]:
    """Cut SQL text into tokens: ``(kind, start, end)`` for every piece of ``text``.

    ``kind`` is ``"space"``, ``"line"`` (a ``--`` comment, without its ``\\n``),
    ``"block"`` (a ``/* */`` comment), ``"quoted"``, ``"semicolon"`` or
    ``"other"``. The tokens cover ``text`` end to end, as SQLite would read it.
    """
    for match in _TOKEN.finditer(text):
        yield t.cast(str, match.lastgroup), match.start(), match.end()


def line_of(text: str, offset: int) -> int:
    """The 1-based line of ``text`` that ``offset`` is on.

    A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``: the line ends an editor
    shows, Python's universal newlines and :func:`~selfmigrate.migration.checksum`
    know. The other characters ``str.splitlines()`` splits at (``\\x0b``,
    ``\\x0c``, ``\\x1c``–``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``) are
    characters within a line, as for editors, ``grep -n`` and Python's compiler.
    """
    return 1 + text.count("\n", 0, offset) + text.count("\r", 0, offset) - text.count("\r\n", 0, offset)


def split_statements(script: SQLScript) -> list[Statement]:
    """Split SQL text into statements, with the file line each one starts on.

    Quotes (``'…'``, ``"…"``, ``[…]``, `````…`````) and comments (``--``, ``/* */``)
    are understood as SQLite's tokenizer reads them (:func:`sql_tokens`), and a
    semicolon ends a statement only where :func:`sqlite3.complete_statement`
    agrees, so ``CREATE TRIGGER … BEGIN …; END;`` stays whole. Comment-only
    pieces and lone semicolons are dropped; a last statement without a semicolon
    is kept. Each statement's line is that of its first token (see :func:`line_of`).
    """
    text = script.text
    statements: list[Statement] = []
    start = 0  # where the current statement's text begins
    first_code: int | None = None  # start of its first token that is not comment/space
    last_end = 0  # end of its last token that is not space (a comment ending the text is kept whole)
    for kind, begin, end in sql_tokens(text):
        if kind == "space":
            continue
        last_end = end
        if kind in ("line", "block"):
            continue
        if first_code is None:
            first_code = begin
        if kind == "semicolon" and sqlite3.complete_statement(text[start:end]):
            if first_code != begin:  # a lone ";" is an empty statement: nothing to run
                statements.append(_statement(text, first_code, end, script.first_line))
            start, first_code = end, None
    if first_code is not None:
        statements.append(_statement(text, first_code, last_end, script.first_line))
    return statements


def _statement(text: str, begin: int, end: int, first_line: int) -> Statement:
    return Statement(text[begin:end], first_line - 1 + line_of(text, begin))


def is_closed(conn: sqlite3.Connection) -> bool:
    """Whether ``conn`` was closed."""
    try:
        conn.total_changes  # noqa: B018 - any attribute that needs the open database
    except sqlite3.ProgrammingError:
        return True
    return False


def _is_busy(error: sqlite3.Error) -> bool:
    """Whether ``error`` means another connection held a lock past the busy timeout."""
    name = getattr(error, "sqlite_errorname", "")
    return name in ("SQLITE_BUSY", "SQLITE_LOCKED") or (not name and "locked" in str(error))


class SQLiteBackend:
    """Talks to one SQLite database file.

    :param path: the database file.
    :param lock_timeout: seconds to wait for the write lock (and for any busy
        database) before giving up.
    """

    name = "sqlite"
    placeholder = "?"

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        #: Seconds waited so far for locks and busy databases, charged against
        #: :attr:`lock_timeout` (see :meth:`reset_wait`).
        self.waited = 0.0

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

    def acquire(self, lock: MigrationLock) -> None:
        """Take ``lock``, waiting as long as the budget allows, and charge the wait.

        :raises LockTimeout: another process held it for the rest of the budget.
        """
        started = time.monotonic()
        try:
            lock.acquire(self.remaining())
        except LockTimeout as e:
            self.charge(time.monotonic() - started)
            raise LockTimeout(
                f"Timed out after {self.waited:.1f} s waiting for the migration lock {lock.path} of"
                f" database {self.path} ({self._limit()}). Another process is running a migration"
                " outside a transaction; wait for it to finish, or raise the lock timeout"
                " (SELFMIGRATE_LOCK_TIMEOUT)."
            ) from e
        self.charge(time.monotonic() - started)

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"

    def describe(self) -> str:
        """The database, for messages."""
        return str(self.path)

    def exists(self) -> bool:
        """Whether the database file exists."""
        return self.path.is_file()

    def connect(self, *, create: bool = True) -> sqlite3.Connection:
        """Open the database in autocommit mode; transactions are explicit.

        :param create: create the file if it does not exist. With ``False`` a
            missing file is an error, so that read-only commands never leave an
            empty database behind.
        :raises DatabaseError: the folder does not exist, the path is a
            directory, the file is missing (``create=False``), or it is not a
            SQLite database.
        """
        path = self.path
        if path.is_dir():
            raise DatabaseError(f"Database path {path} is a directory. Give the path of a database file.")
        if not path.parent.is_dir():
            raise DatabaseError(
                f"Cannot open database {path}: the folder {path.parent} does not exist."
                " Create it, or fix the database setting."
            )
        if not create and not path.exists():
            raise DatabaseError(
                f"Database {path} does not exist. Check the path; selfmigrate does not create"
                " a database for a command that only reads."
            )
        target = str(path) if create else f"{path.resolve().as_uri()}?mode=rw"
        started = time.monotonic()
        try:
            # No statement cache: every statement is prepared, so every one passes the
            # authorizer of guard_transaction, including one run again after SQLite ended
            # the transaction (a cached statement would skip it and autocommit).
            conn = sqlite3.connect(
                target,
                timeout=self.remaining(),
                isolation_level=None,
                uri=not create,
                check_same_thread=False,
                cached_statements=0,
            )
        except sqlite3.Error as e:
            raise DatabaseError(f"Cannot open database {path}: {e}. Check the path and its permissions.") from e
        try:
            conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as e:
            conn.close()
            if _is_busy(e):
                self.charge(time.monotonic() - started)
                raise LockTimeout(
                    f"Timed out after {self.waited:.1f} s waiting to read database"
                    f" {path} ({self._limit()}): another process holds it"
                    " exclusively, usually while it writes a large migration. Raise the lock"
                    " timeout (SELFMIGRATE_LOCK_TIMEOUT) or find the process that holds it."
                ) from e
            raise DatabaseError(
                f"Cannot read database {path}: {e}. Is it a SQLite database file?"
                " Restore it from a backup if it is corrupt."
            ) from e
        self.charge(time.monotonic() - started)
        return conn

    def begin_locked(self, conn: sqlite3.Connection) -> None:
        """Begin a transaction holding the database's write lock (``BEGIN IMMEDIATE``).

        Waits for another writer to finish as long as the wait budget allows
        (:meth:`remaining`), and charges the wait to it.

        :raises LockTimeout: the lock was not obtained in time.
        """
        started = time.monotonic()
        conn.execute(f"PRAGMA busy_timeout = {int(self.remaining() * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if not _is_busy(e):
                raise DatabaseError(f"Cannot lock database {self.path} for writing: {e}.") from e
            self.charge(time.monotonic() - started)
            raise LockTimeout(
                f"Timed out after {self.waited:.1f} s waiting for the write lock on database"
                f" {self.path} ({self._limit()}). Another process is"
                " migrating or writing to it; if a long migration is running, raise the"
                " lock timeout (SELFMIGRATE_LOCK_TIMEOUT); otherwise find the process that"
                " holds the database open."
            ) from e
        self.charge(time.monotonic() - started)

    def commit(self, conn: sqlite3.Connection) -> None:
        """Commit the current transaction.

        :raises LockTimeout: other connections kept reading the database for
            longer than :attr:`lock_timeout`, so the commit could not finish; the
            transaction is still open and the caller rolls it back.
        """
        started = time.monotonic()
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if not _is_busy(e):
                raise
            raise LockTimeout(
                f"Timed out after {time.monotonic() - started:.1f} s committing to database"
                f" {self.path} (lock timeout {self.lock_timeout:g} s): other connections kept"
                " reading it, and a commit must wait for readers to finish. Nothing of this"
                " transaction was committed. Raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT), or end the"
                " long read transactions (WAL mode lets readers and a writer overlap)."
            ) from e

    def rollback(self, conn: sqlite3.Connection) -> None:
        """Roll back the current transaction, if one is open.

        A connection that is already closed (a migration closed it) has nothing
        to roll back: closing it rolled its transaction back.
        """
        if not is_closed(conn) and conn.in_transaction:
            conn.execute("ROLLBACK")

    def table_columns(self, conn: sqlite3.Connection, table: str) -> list[str] | None:
        """Return the column names of ``table``, or ``None`` if there is no such table."""
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if row is None:
            return None
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]

    def run_script(self, conn: sqlite3.Connection, script: SQLScript) -> None:
        """Run every statement of ``script`` in the current transaction.

        :raises StatementError: a statement failed (the caller rolls back).
        """
        for statement in split_statements(script):
            try:
                conn.execute(statement.sql).fetchall()
            except sqlite3.Error as e:
                raise StatementError(statement, e) from e

    def guard_transaction(
        self,
        conn: sqlite3.Connection,
        denied: list[str],
        *,
        transactional: bool = True,
        requested: dict[str, str] | None = None,
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
            database with content (:data:`EMPTY_DATABASE_PRAGMAS`) are refused.
        :param requested: filled with the values set for :data:`VACUUM_PRAGMAS`,
            for :meth:`ignored_pragmas` to check afterwards.
        :returns: a function that says whether this authorizer is still the
            connection's (a migration may have called ``conn.set_authorizer``).
        """
        probes: list[None] = []

        def authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
            if action == sqlite3.SQLITE_PRAGMA and arg1 == _GUARD_PROBE:
                probes.append(None)
                return sqlite3.SQLITE_OK
            pragma = (arg1 or "").lower() if action == sqlite3.SQLITE_PRAGMA and arg2 is not None else None
            if pragma in EMPTY_DATABASE_PRAGMAS:
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
        return MigrationLock(Path(str(self.path) + LOCK_SUFFIX), self.path)

    def check_idle(self, conn: sqlite3.Connection, wait: float = 0.5) -> None:
        """Raise :class:`LockTimeout` if another process is reading or writing the database.

        Takes ``BEGIN EXCLUSIVE`` on ``conn`` for a moment (waiting at most
        ``wait`` seconds) and releases it. A process that merely keeps the file
        open without a transaction is not seen; stop the app before restoring.
        """
        conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as e:
            raise LockTimeout(
                f"Database {self.path} is in use by another process ({e}). Stop the app (every"
                " worker and container using it) and try again."
            ) from e
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.remaining() * 1000)}")
        conn.execute("ROLLBACK")


class MigrationLock:
    """An exclusive :func:`fcntl.flock` on a lock file beside the database.

    Held by one process (one open file) at a time; released by :meth:`release`,
    by leaving the ``with`` block, or by the kernel when the process dies.

    :param path: the lock file; created (empty) if missing.
    :param database: the database it guards, for messages.
    """

    def __init__(self, path: Path, database: Path) -> None:
        self.path = path
        self.database = database
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"MigrationLock({str(self.path)!r})"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for its holder to finish.

        :raises LockTimeout: another process held it for the whole wait.
        :raises DatabaseError: the lock file cannot be created (a read-only folder).
        """
        if self._fd is not None:
            return
        fd = self._open()
        started = time.monotonic()
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= timeout:
                    os.close(fd)
                    raise LockTimeout(
                        f"Timed out after {waited:.1f} s waiting for the migration lock {self.path}"
                        f" of database {self.database} (lock timeout {timeout:g} s). Another process"
                        " is running a migration outside a transaction; wait for it to finish, or"
                        " raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT)."
                    ) from None
                time.sleep(min(delay, max(timeout - waited, 0.001)))
                delay = min(delay * 2, 0.1)
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting; return whether it was taken."""
        try:
            self.acquire(0)
        except LockTimeout:
            return False
        return True

    def held_elsewhere(self) -> bool:
        """Whether another process (or open file) holds the lock right now.

        Writes nothing: a missing lock file means nobody holds it. For
        read-only commands, which must tell a migration that is running from
        one whose process died.
        """
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases the lock if it was taken
        return False

    def release(self) -> None:
        """Release the lock (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> MigrationLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        # The lock file gets the database's permission bits (never world-writable),
        # so every user that may migrate the database may take the lock.
        try:
            mode = self.database.stat().st_mode & 0o660 or 0o600
        except OSError:
            mode = 0o600
        try:
            # Read-only is enough for flock, and lets a user who may only read the
            # lock file (group bits r--) wait for it too.
            return os.open(self.path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), mode)
        except OSError as e:
            raise DatabaseError(
                f"Cannot open the migration lock file {self.path} of database {self.database}: {e}."
                " The database's folder must be writable by the app (SQLite needs that too, for"
                " its journal)."
            ) from e
