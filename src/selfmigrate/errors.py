"""The exceptions selfmigrate raises: one family rooted at :class:`SelfMigrateError`.

Every message says what went wrong, where (database, file, migration) and what to do
next. The bottom of the import graph: it imports no other selfmigrate module.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t


class SelfMigrateError(Exception):
    """Base class of every error selfmigrate raises on purpose.

    :attr:`exit_code` is what the command line exits with when this error ends a
    command.
    """

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(SelfMigrateError):
    """The configuration is missing or invalid (a config key, an option, a path)."""

    exit_code = 2


class DiscoveryError(SelfMigrateError):
    """The migration files cannot be used as they are.

    Raised for a location that does not exist, a file that breaks the naming rule,
    two files with one version, an unreadable or undecodable file, a Python
    migration without ``up``. :attr:`paths` lists the files concerned.
    """

    exit_code = 2

    def __init__(self, message: str, paths: t.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.paths = tuple(paths)


class DatabaseError(SelfMigrateError):
    """The database cannot be opened or read: missing folder, not SQLite, corrupt."""

    exit_code = 2


class TrackerError(SelfMigrateError):
    """The tracker table exists with a layout selfmigrate does not own.

    selfmigrate never alters or drops such a table.
    """

    exit_code = 2


class StateError(SelfMigrateError):
    """The database and the migration files disagree in a way that needs a person.

    Subclasses say how: :class:`ChecksumMismatch`, :class:`OutOfOrderError`.
    """

    exit_code = 3


class ChecksumMismatch(StateError):
    """An applied migration's file was edited after it was applied."""


class OutOfOrderError(StateError):
    """A migration older than the newest applied one is still pending."""


class AheadError(StateError):
    """The database has migrations this code lacks, not all compatible, and the
    ``ahead`` policy says not to start (``"refuse"``, or ``"rollback"`` when one of
    them cannot be undone from the tracker).

    ``versions`` lists the migrations concerned; ``target`` is the version to
    roll back to (``python -m selfmigrate rollback --to TARGET``).
    """

    exit_code = 7

    def __init__(self, message: str, *, versions: t.Sequence[int] = (), target: int = 0) -> None:
        super().__init__(message)
        self.versions = tuple(versions)
        self.target = target


class LockTimeout(SelfMigrateError):
    """The database's write lock was not obtained within the configured wait."""

    exit_code = 4


class BackupError(SelfMigrateError):
    """A snapshot could not be taken, listed or restored.

    When the snapshot before a migration fails, nothing is migrated: selfmigrate
    does not change a database it could not first copy.
    """

    exit_code = 6


class MigrationError(SelfMigrateError):
    """A migration failed; its transaction was rolled back.

    :attr:`version`, :attr:`name` and :attr:`path` name the migration,
    :attr:`line` and :attr:`statement` the SQL statement that failed (``None`` for
    a Python migration or where unknown), :attr:`report` what was applied before
    it. The database error is chained as ``__cause__``.
    """

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        version: int,
        name: str,
        path: str,
        line: int | None = None,
        statement: str | None = None,
        report: t.Any = None,
    ) -> None:
        super().__init__(message)
        self.version = version
        self.name = name
        self.path = path
        self.line = line
        self.statement = statement
        # A selfmigrate.report.MigrationReport. Typed loosely so that this module, which
        # report.py imports, imports nothing back: no import cycle, not even for types.
        self.report: t.Any = report


class TransformError(SelfMigrateError):
    """:func:`selfmigrate.sqlite.transform` cannot rebuild the table as asked.

    Raised before anything changes (an argument that names no column, a
    dropped column that a view, trigger or index uses, foreign keys being
    enforced) or after the rebuild was rolled back to the helper's savepoint
    (a row that breaks the new layout, a reference the new table breaks).
    Inside a migration the runner reports it as that migration's
    :class:`MigrationError`, with this message. A database error is chained as
    ``__cause__``.
    """
