"""Choosing the backend from a database URL or path: the one place engines are named.

Holds the table of URL schemes and the functions that hand a database to its engine's
package (imported only then). Must stay as cheap to import as the no-op start is, and
must not know what any engine does: each backend package answers for itself.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t
    from pathlib import Path

    from ..config import Options
    from .base import Backend

    #: What the quick check reads: the stored fingerprint and the tracker rows
    #: (version, checksum, state), oldest first.
    QuickRead = tuple[str | None, list[tuple[int, str, str]]]

#: URL scheme → the package under ``selfmigrate.backends`` for it. A value with no
#: scheme is a SQLite file path. A new engine is one line here (and its folder):
#: each package has ``backend.py`` (``open_backend``, ``database_location``) and
#: ``quick.py`` (``read``, and optionally a cheaper ``database_location``).
ENGINES: dict[str, str] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
}
#: The engine of a database given as a plain path.
DEFAULT_ENGINE = "sqlite"


def engine_of(database: str | os.PathLike[str]) -> str | None:
    """The backend package for ``database``, or ``None`` for a URL of an engine not supported.

    ``scheme:…`` and ``scheme+driver:…`` (SQLAlchemy's form) name their engine;
    anything else is a path.
    """
    if isinstance(database, os.PathLike):
        return DEFAULT_ENGINE
    head, colon, rest = database.partition(":")
    if not colon:
        return DEFAULT_ENGINE
    scheme = head.partition("+")[0].lower()
    if scheme in ENGINES:
        return ENGINES[scheme]
    if rest.startswith("//") and scheme.isidentifier():
        return None  # a URL (mysql://…), not a file name with a colon in it
    return DEFAULT_ENGINE


def _module(database: str | os.PathLike[str], job: str) -> t.Any:
    engine = engine_of(database)
    if engine is None:
        from ..errors import ConfigError

        supported = ", ".join(f"{scheme}://" for scheme in ENGINES)
        raise ConfigError(
            f"Database URL {os.fspath(database)!r} names an engine selfmigrate has no backend for."
            f" Give a SQLite file path or one of: {supported}."
        )
    # __import__, not importlib: an app factory resolves its database through here at
    # every start, and importlib (with the warnings module) would cost it 0.7 ms.
    name = f"selfmigrate.backends.{engine}.{job}"
    __import__(name)
    return sys.modules[name]


def job(database: str | os.PathLike[str] | None, name: str, *, what: str | None) -> t.Any:
    """The module ``name`` of the engine package of ``database``: an operator task's engine side.

    Tasks beyond migrating (``lint``, ``dryrun``) are a module an engine may or may
    not have, not members of the :class:`~.base.Backend` protocol, so that a new
    engine works without them. ``None`` (no database given) is the default engine.

    :param what: the task, for the error (``"The linter"``); ``None``: return ``None``
        when the engine has no such module (a task that is skipped where it is missing).
    :raises ConfigError: no backend handles ``database``, or its engine has no such module.
    """
    engine = DEFAULT_ENGINE if database is None else engine_of(database)
    if engine is None:
        assert database is not None
        return _module(database, name)  # raises the ConfigError naming the URL
    from importlib import import_module

    module_name = f"selfmigrate.backends.{engine}.{name}"
    try:
        return import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        if what is None:
            return None
        from ..errors import ConfigError

        raise ConfigError(
            f"{what} is not supported for {engine} databases; nothing was read or changed."
            " Leave it out for this database: the other commands work as usual."
        ) from None


def shown(database: str | os.PathLike[str]) -> str:
    """``database`` for messages: a URL's password (``user:secret@``) shown as ``***``.

    For the no-op start, which has no backend to ask (each backend's ``describe``
    masks what else its URLs may carry).
    """
    text = os.fspath(database)
    scheme, sep, rest = text.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return text
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}{slash}{tail}"


def handles(database: str) -> bool:
    """Whether ``database`` is a URL of a supported engine (for config keys that may hold others)."""
    head, colon, _ = database.partition(":")
    return bool(colon) and head.partition("+")[0].lower() in ENGINES


def open_backend(
    database: str | os.PathLike[str], options: Options | None = None, *, lock_timeout: float | None = None
) -> Backend:
    """The backend for ``database`` (a path or URL); connects to nothing yet.

    :param options: the run's settings; each engine reads those it knows (the
        PostgreSQL ones mean nothing to SQLite). Default: every default.
    :param lock_timeout: instead of ``options.lock_timeout`` (for callers that have
        only that).
    :raises ConfigError: no backend handles it, it is not a usable database (an
        in-memory SQLite database), or a setting its engine reads is not usable.
    """
    if options is None:
        from ..config import Options

        options = Options()
    if lock_timeout is not None:
        options = options.replace(lock_timeout=lock_timeout)
    backend: Backend = _module(database, "backend").open_backend(database, options)
    return backend


def database_location(
    database: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, *, flask_sqlalchemy: bool = False
) -> Path | str:
    """``database`` as its engine names it: a SQLite file path (relative ones from ``base``), a URL.

    :param flask_sqlalchemy: resolve it as Flask-SQLAlchemy rewrites a
        ``SQLALCHEMY_DATABASE_URI`` before SQLAlchemy opens it.
    :raises ConfigError: as :func:`open_backend`.
    """
    # An app factory resolves its database at every start: a backend whose quick module
    # can do it spares that start the import of the whole backend.
    module = _module(database, "quick")
    if not hasattr(module, "database_location"):
        module = _module(database, "backend")
    location: Path | str = module.database_location(database, base, flask_sqlalchemy=flask_sqlalchemy)
    return location


def quick_read(database: str | os.PathLike[str], table: str, lock_timeout: float) -> QuickRead | None:
    """The stored fingerprint and tracker rows, read the cheapest way, or ``None``: look properly.

    ``None`` is never an error: the full run that follows meets whatever is wrong
    and says what it is.
    """
    engine = engine_of(database)
    if engine is None:
        return None
    from importlib import import_module

    read: QuickRead | None = import_module(f"selfmigrate.backends.{engine}.quick").read(database, table, lock_timeout)
    return read


def quick_status_read(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, list[tuple[t.Any, ...]]] | None:
    """As :func:`quick_read`, each row with what ``status`` shows of it (see the SQLite
    backend's ``quick.read_status``). ``None`` also for an engine whose quick module has
    no ``read_status``.
    """
    engine = engine_of(database)
    if engine is None:
        return None
    from importlib import import_module

    read = getattr(import_module(f"selfmigrate.backends.{engine}.quick"), "read_status", None)
    if read is None:
        return None
    rows: tuple[str | None, list[tuple[t.Any, ...]]] | None = read(database, table, lock_timeout)
    return rows


def quick_described(database: str) -> str | None:
    """``database`` as its backend's ``describe`` shows it, from the engine's quick module
    (its ``describe``), or ``None`` for an engine whose quick module has none."""
    engine = engine_of(database)
    if engine is None:
        return None
    from importlib import import_module

    describe = getattr(import_module(f"selfmigrate.backends.{engine}.quick"), "describe", None)
    return None if describe is None else str(describe(database))


def quick_read_rows(
    database: str | os.PathLike[str], table: str, lock_timeout: float
) -> tuple[str | None, str, str, str, int] | None:
    """The stored fingerprint digest, the tracker rows' columns as three texts (the
    versions separated by spaces, the checksums and the states by newlines, oldest
    first: what :func:`selfmigrate.core.fingerprint.quick_digest` takes) and the newest
    version, or ``None``: look properly (also for a tracker without rows).

    From the engine's quick module's ``read_rows`` (the texts built in the database),
    else from its ``read``.
    """
    engine = engine_of(database)
    if engine is None:
        return None
    # __import__, not importlib: the no-op start would import importlib for this alone.
    name = f"selfmigrate.backends.{engine}.quick"
    __import__(name)
    module = sys.modules[name]
    read_rows = getattr(module, "read_rows", None)
    if read_rows is not None:
        found: tuple[str | None, str, str, str, int] | None = read_rows(database, table, lock_timeout)
        return found
    read: QuickRead | None = module.read(database, table, lock_timeout)
    if read is None or not read[1]:
        return None
    stored, rows = read
    return (
        stored,
        " ".join(str(row[0]) for row in rows),
        "\n".join(row[1] for row in rows),
        "\n".join(row[2] for row in rows),
        int(rows[-1][0]),
    )
