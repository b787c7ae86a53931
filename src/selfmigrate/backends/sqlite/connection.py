"""Opening a SQLite database file: the path or URL, the connection, busy errors.

Holds what every SQLite module here needs to reach the file (the backend, snapshots,
restore). Must not know migrations, the tracker or the runner.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time

from ...errors import ConfigError, DatabaseError, LockTimeout
from ...paths import path_text as path_text

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t
    from pathlib import Path

#: SQLAlchemy's URL syntax (``sqlalchemy.engine.url._parse_url``), for the SQLite drivers;
#: compiled on first use (an app factory resolving a plain path never needs it).
_SQLALCHEMY_URL = r"(?P<driver>sqlite(?:\+[\w+]*)?)://(?P<authority>[^/?]*)(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?"
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
    from pathlib import Path

    return Path(database_file(value, base, flask_sqlalchemy=flask_sqlalchemy))


def database_file(
    value: str | os.PathLike[str],
    base: str | os.PathLike[str] | None = None,
    *,
    flask_sqlalchemy: bool = False,
) -> str:
    """:func:`database_path` as text (``str(database_path(...))``), without importing :mod:`pathlib`.

    What the backend keeps: a start that applies something needs no path object
    (:mod:`pathlib` with :mod:`urllib.parse` and :mod:`ipaddress` is about 3 ms).
    """
    text = os.fspath(value)
    # Every URL form starts with "sqlite" (the regular expressions cost more than a start).
    url = re.fullmatch(_SQLALCHEMY_URL, text, re.DOTALL) if text.startswith("sqlite") else None
    if url is None:
        if text.startswith("sqlite") and re.match(r"sqlite[\w+]*:", text):
            raise ConfigError(
                f"Database URL {text!r} does not name a SQLite file. Use sqlite:///relative/path.db"
                " or sqlite:////absolute/path.db."
            )
        path = _sqlite_uri_path(text, text) if text.startswith("file:") else _file_name(text, text)
    else:
        path = _url_path(text, url, base, flask_sqlalchemy)
    if base is not None and not path.startswith("/"):
        path = os.path.join(os.fspath(base), path)
    return path_text(path)


def _url_path(text: str, url: re.Match[str], base: str | os.PathLike[str] | None, flask_sqlalchemy: bool) -> str:
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


def _sqlite_uri_path(uri: str, text: str) -> str:
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
    return path


def _file_name(name: str, text: str) -> str:
    if name in ("", ":memory:"):
        raise _in_memory(text)
    return name


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


#: What Python code may ask of a :class:`WatchedConnection` without changing the connection:
#: running SQL (which the guard's authorizer sees), reading its state, its exception classes.
#: Any other name, one a later Python adds included, counts as a possible change.
_UNCHANGING = frozenset(
    {
        "execute",
        "executemany",
        "cursor",
        "in_transaction",
        "total_changes",
        "getlimit",
        "row_factory",
        "text_factory",
        "isolation_level",
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    }
)
_TOUCHED = "_selfmigrate_touched"
#: Where a connection the backend opened remembers the busy timeout (ms) selfmigrate set on it.
_BUSY = "_selfmigrate_busy_timeout"
#: How much shorter than asked a busy timeout already in effect may be and still be kept (ms).
BUSY_SLACK_MS = 50


class OwnConnection(sqlite3.Connection):
    """The :class:`sqlite3.Connection` the backend opens (the ``factory`` of every one).

    Plain, with a ``__dict__`` for what the backend notes on it. While a
    migration's step runs on it (from :func:`watch` to :func:`unwatch`) it is a
    :class:`WatchedConnection`: selfmigrate's own statements before and after the
    step do not pay the watcher's lookup of every attribute.
    """


class WatchedConnection(OwnConnection):
    """A connection while a migration's step runs on it: notes when Python code may have changed it.

    Looking up any attribute but those of :data:`_UNCHANGING` (``create_function``,
    ``setlimit``, ``set_trace_callback``, ``enable_load_extension``, ``__dict__``,
    ``__class__`` …) and setting any attribute (a row factory, the isolation level)
    mark it, from :func:`watch` on, until :func:`untouched` is asked. SQL it runs is
    not seen here: the guard's authorizer sees that. A migration that calls a method
    of the class on it directly (``sqlite3.Connection.create_function(conn, …)``) is
    not seen either; nothing but malice writes that.
    """

    def __getattribute__(self, name: str) -> t.Any:
        if name not in _UNCHANGING:
            sqlite3.Connection.__getattribute__(self, "__dict__")[_TOUCHED] = True
        return sqlite3.Connection.__getattribute__(self, name)

    def __setattr__(self, name: str, value: object) -> None:
        sqlite3.Connection.__getattribute__(self, "__dict__")[_TOUCHED] = True
        sqlite3.Connection.__setattr__(self, name, value)


def watch(conn: sqlite3.Connection) -> None:
    """Start noting what Python code asks of ``conn`` (it becomes a :class:`WatchedConnection`).

    Only a connection the backend opened (an :class:`OwnConnection`) is watched; of
    any other, :func:`untouched` says ``False``.
    """
    if isinstance(conn, OwnConnection):
        sqlite3.Connection.__getattribute__(conn, "__dict__")[_TOUCHED] = False
        # Same layout (both add only the __dict__ to sqlite3.Connection): the object stays
        # the one the migration was given; only its class's attribute lookup changes.
        object.__setattr__(conn, "__class__", WatchedConnection)


def unwatch(conn: sqlite3.Connection) -> None:
    """Stop watching ``conn`` (a plain :class:`OwnConnection` again); what was noted stays."""
    if type(conn) is WatchedConnection:
        object.__setattr__(conn, "__class__", OwnConnection)


def untouched(conn: sqlite3.Connection) -> bool:
    """Whether Python code asked ``conn`` for nothing but SQL and its state since :func:`watch`."""
    if not isinstance(conn, OwnConnection):
        return False
    return sqlite3.Connection.__getattribute__(conn, "__dict__").get(_TOUCHED) is False


def set_busy_timeout(conn: sqlite3.Connection, ms: int) -> None:
    """``PRAGMA busy_timeout = ms`` on ``conn``, remembered on an :class:`OwnConnection`."""
    conn.execute(f"PRAGMA busy_timeout = {int(ms)}")
    if isinstance(conn, OwnConnection):
        sqlite3.Connection.__getattribute__(conn, "__dict__")[_BUSY] = int(ms)


def limit_busy_timeout(conn: sqlite3.Connection, ms: int) -> None:
    """Make ``conn`` wait at most ``ms`` for a busy database: set only when needed.

    The timeout in effect is kept when it is not longer than ``ms`` and at most
    :data:`BUSY_SLACK_MS` shorter: within one run the budget only shrinks, so a
    step's ``PRAGMA busy_timeout`` is needed only once the budget fell below the
    whole millisecond in effect. Only selfmigrate sets it on a connection it lends
    to the next step: a migration that runs any pragma gets a new connection.
    Unknown (not an :class:`OwnConnection`): always set.
    """
    ms = int(ms)
    in_effect = (
        sqlite3.Connection.__getattribute__(conn, "__dict__").get(_BUSY)
        if isinstance(conn, OwnConnection)
        else None
    )
    if in_effect is None or not ms - BUSY_SLACK_MS <= in_effect <= ms:
        set_busy_timeout(conn, ms)


def is_busy(error: sqlite3.Error) -> bool:
    """Whether ``error`` means another connection held a lock past the busy timeout."""
    name = getattr(error, "sqlite_errorname", "")
    return name in ("SQLITE_BUSY", "SQLITE_LOCKED") or (not name and "locked" in str(error))


def is_closed(conn: sqlite3.Connection) -> bool:
    """Whether ``conn`` was closed."""
    try:
        conn.total_changes  # noqa: B018 - any attribute that needs the open database
    except sqlite3.ProgrammingError:
        return True
    return False


def connect(
    path: str | os.PathLike[str],
    *,
    lock_timeout: float,
    create: bool = True,
    waited: float = 0.0,
    limit: str | t.Callable[[], str] | None = None,
) -> sqlite3.Connection:
    """Open the database in autocommit mode; transactions are explicit.

    :param lock_timeout: seconds to wait for a database another process holds.
    :param create: create the file if it does not exist. With ``False`` a
        missing file is an error, so that read-only commands never leave an
        empty database behind.
    :param waited: seconds already waited by the caller, for the message.
    :param limit: how the message names the limit (default ``lock timeout N s``), or a
        function that words it (called only for the message).
    :raises DatabaseError: the folder does not exist, the path is a
        directory, the file is missing (``create=False``), or it is not a
        SQLite database.

    The connection is an :class:`OwnConnection`, watched while a migration runs on
    it (:func:`watch`), so that the backend can tell whether a Python migration left
    it as it was opened.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DatabaseError(f"Database path {path} is a directory. Give the path of a database file.")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise DatabaseError(
            f"Cannot open database {path}: the folder {folder} does not exist."
            " Create it, or fix the database setting."
        )
    if not create and not os.path.exists(path):
        raise DatabaseError(
            f"Database {path} does not exist. Check the path; selfmigrate does not create"
            " a database for a command that only reads."
        )
    if create:
        target = path
    else:
        from pathlib import Path  # a read-only open, by URI: not a start's

        target = f"{Path(path).resolve().as_uri()}?mode=rw"
    started = time.monotonic()
    try:
        # No statement cache: every statement is prepared, so every one passes the
        # authorizer of the backend's guard, including one run again after SQLite ended
        # the transaction (a cached statement would skip it and autocommit).
        conn = sqlite3.connect(
            target,
            timeout=lock_timeout,
            isolation_level=None,
            uri=not create,
            check_same_thread=False,
            cached_statements=0,
            factory=OwnConnection,
        )
    except sqlite3.Error as e:
        if create and not os.path.exists(path) and not os.access(folder, os.W_OK):
            raise DatabaseError(
                f"Cannot create database {path}: its folder {folder} is not writable for this process"
                f" (uid {os.geteuid()}; the folder's owner is uid {os.stat(folder).st_uid}). Let the app's user"
                " write the folder (chown it: a bind mount keeps the host's owner), or mount the volume"
                " read-write."
            ) from e
        raise DatabaseError(f"Cannot open database {path}: {e}. Check the path and its permissions.") from e
    # What sqlite3.connect set from the timeout (sqlite3_busy_timeout of int(timeout * 1000)).
    sqlite3.Connection.__getattribute__(conn, "__dict__")[_BUSY] = int(lock_timeout * 1000)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        conn.close()
        if is_busy(e):
            if callable(limit):
                limit = limit()
            raise LockTimeout(
                f"Timed out after {waited + time.monotonic() - started:.1f} s waiting to read database"
                f" {path} ({limit or f'lock timeout {lock_timeout:g} s'}): another process holds it"
                " exclusively, usually while it writes a large migration. Raise the lock"
                " timeout (SELFMIGRATE_LOCK_TIMEOUT) or find the process that holds it."
            ) from e
        raise DatabaseError(
            f"Cannot read database {path}: {e}. Is it a SQLite database file?"
            " Restore it from a backup if it is corrupt."
        ) from e
    return conn


def check_idle(
    conn: sqlite3.Connection, path: str | os.PathLike[str], *, wait: float, lock_timeout: float
) -> None:
    """Raise :class:`LockTimeout` if another process is reading or writing the database.

    Takes ``BEGIN EXCLUSIVE`` on ``conn`` for a moment (waiting at most
    ``wait`` seconds) and releases it. A process that merely keeps the file
    open without a transaction is not seen; stop the app before restoring.
    """
    set_busy_timeout(conn, int(wait * 1000))
    try:
        conn.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError as e:
        raise LockTimeout(
            f"Database {path} is in use by another process ({e}). Stop the app (every"
            " worker and container using it) and try again."
        ) from e
    finally:
        set_busy_timeout(conn, int(lock_timeout * 1000))
    conn.execute("ROLLBACK")
