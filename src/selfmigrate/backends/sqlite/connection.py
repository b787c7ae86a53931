"""Opening a SQLite database file: the path or URL, the connection, busy errors.

Holds what every SQLite module here needs to reach the file (the backend, snapshots,
restore). Must not know migrations, the tracker or the runner.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ...errors import ConfigError, DatabaseError, LockTimeout

_URL_PREFIX = "sqlite:///"


def database_path(value: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """Return the file path of a SQLite database given as a path or ``sqlite:///`` URL.

    ``sqlite:///relative.db`` is relative, ``sqlite:////abs/path.db`` absolute (as
    in SQLAlchemy, whose ``sqlite+pysqlite:///`` form is accepted too). A relative
    path is taken from ``base`` when given. In-memory databases are refused: a
    migrated database that vanishes with its connection is never what a caller
    wants.
    """
    text = os.fspath(value)
    if text.startswith("sqlite+"):  # SQLAlchemy's form with a driver: sqlite+pysqlite:///app.db
        text = "sqlite:" + text.partition(":")[2]
    if text.startswith("sqlite:"):
        if not text.startswith(_URL_PREFIX) or text == _URL_PREFIX:
            raise ConfigError(
                f"Database URL {text!r} does not name a SQLite file. Use"
                " sqlite:///relative/path.db or sqlite:////absolute/path.db."
            )
        text = text[len(_URL_PREFIX) :].split("?", 1)[0]
    if text in ("", ":memory:") or text.startswith("file::memory:"):
        raise ConfigError(
            f"Database {os.fspath(value)!r} is in memory; selfmigrate migrates database"
            " files. Give a file path."
        )
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return path


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
    path: Path, *, lock_timeout: float, create: bool = True, waited: float = 0.0, limit: str | None = None
) -> sqlite3.Connection:
    """Open the database in autocommit mode; transactions are explicit.

    :param lock_timeout: seconds to wait for a database another process holds.
    :param create: create the file if it does not exist. With ``False`` a
        missing file is an error, so that read-only commands never leave an
        empty database behind.
    :param waited: seconds already waited by the caller, for the message.
    :param limit: how the message names the limit (default ``lock timeout N s``).
    :raises DatabaseError: the folder does not exist, the path is a
        directory, the file is missing (``create=False``), or it is not a
        SQLite database.
    """
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
        # authorizer of the backend's guard, including one run again after SQLite ended
        # the transaction (a cached statement would skip it and autocommit).
        conn = sqlite3.connect(
            target,
            timeout=lock_timeout,
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
        if is_busy(e):
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


def check_idle(conn: sqlite3.Connection, path: Path, *, wait: float, lock_timeout: float) -> None:
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
            f"Database {path} is in use by another process ({e}). Stop the app (every"
            " worker and container using it) and try again."
        ) from e
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
    conn.execute("ROLLBACK")
