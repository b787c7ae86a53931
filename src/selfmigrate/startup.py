"""What an app does at startup: :func:`migrate`, the framework-free entry point.

Holds the step from a call to a run: build the :class:`~selfmigrate.config.Options`, ask
the quick check (:func:`selfmigrate.core.quick.up_to_date`), and only when it cannot say
"up to date" import the :class:`~selfmigrate.Runner`. Must not import the runner, logging
or an engine on the way to a no-op return.
"""

from __future__ import annotations

import os
import time

from .config import DEFAULT_AHEAD, DEFAULT_BACKUP_KEEP, DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE, Options
from .core.quick import look
from .logs import Logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import AheadPolicy, FailurePolicy
    from .core.locations import LocationsSpec
    from .core.registry import MigrationRegistry
    from .report import MigrationReport


def migrate(
    database: str | os.PathLike[str],
    migrations: MigrationRegistry | LocationsSpec,
    *,
    table: str = DEFAULT_TABLE,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    allow_out_of_order: bool = False,
    on_failure: FailurePolicy = "raise",
    target: int | None = None,
    backup: bool = True,
    backup_dir: str | os.PathLike[str] | None = None,
    backup_keep: int | None = DEFAULT_BACKUP_KEEP,
    ahead: AheadPolicy = DEFAULT_AHEAD,
    direct_database: str | None = None,
    table_lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    lock_retries: int | None = None,
) -> MigrationReport:
    """Bring ``database`` up to date with ``migrations``; the framework-free twin of
    :func:`selfmigrate.apply`.

    When it returns, every pending migration has been applied exactly once, each
    in its own transaction, in version order — or it raised.

    :param database: SQLite file path or ``sqlite:///`` URL. Created if missing.
    :param migrations: package name(s), directory path(s), or a
        :class:`MigrationRegistry`.
    :param table: the tracker table's name.
    :param lock_timeout: seconds this start may wait, in total, for a busy
        database, the write lock and the migration lock before
        :class:`LockTimeout`.
    :param allow_out_of_order: apply pending migrations older than the newest
        applied one instead of raising :class:`OutOfOrderError`.
    :param on_failure: ``"raise"`` (default) raises; ``"log"`` logs the error at
        ERROR and returns a report with :attr:`MigrationReport.error` set. Either
        way no migration after a failed one runs. Configuration errors always
        raise.
    :param target: apply only up to this version.
    :param backup: before the first change to a non-empty database, take a
        snapshot of it with SQLite's online backup API (on by default; the
        report and any :class:`MigrationError` name it).
    :param backup_dir: where snapshots go (default: the database's folder).
    :param backup_keep: how many snapshots of the database to keep, oldest
        pruned first (``None``: keep all).
    :param ahead: what to do when the database has migrations this code does not
        have (an older image on a newer database) and not all of them are marked
        compatible: ``"warn"`` (default: log a warning and go on), ``"refuse"``
        (raise :class:`~selfmigrate.AheadError`, which says how to roll back) or
        ``"rollback"`` (undo them with the downs stored in the tracker, newest
        first, after a snapshot; refused if one has no stored down). An
        :class:`~selfmigrate.AheadError` is raised whatever ``on_failure`` says.
    :param direct_database: PostgreSQL: a URL that reaches the server directly,
        for the migrations that run outside a transaction when ``database`` goes
        through a transaction-pooling pgbouncer.
    :param table_lock_timeout: PostgreSQL: each migration's ``SET LOCAL
        lock_timeout`` (a duration: ``"5s"``, ``"500ms"``, ``"0"``); a migration's
        ``-- migrate:lock-timeout`` line overrides it.
    :param statement_timeout: PostgreSQL: each migration's ``SET LOCAL
        statement_timeout`` (``"0"``: no limit); ``-- migrate:statement-timeout``
        overrides it.
    :param lock_retries: PostgreSQL: how many more times a migration that timed
        out on a table lock is tried, with backoff.

        Each of the four left ``None`` is read from its ``SELFMIGRATE_*``
        environment variable, else has its default (``None``, ``"5s"``, ``"0"``,
        ``3``). SQLite ignores them.
    :returns: what was applied, with durations.
    """
    options = Options(
        table=table,
        lock_timeout=lock_timeout,
        allow_out_of_order=allow_out_of_order,
        on_failure=on_failure,
        target=target,
        backup=backup,
        backup_dir=backup_dir,
        backup_keep=backup_keep,
        ahead=ahead,
        direct_database=direct_database,
        table_lock_timeout=table_lock_timeout,
        statement_timeout=statement_timeout,
        lock_retries=lock_retries,
    )
    return migrate_with(database, migrations, options)


def migrate_with(
    database: str | os.PathLike[str], migrations: MigrationRegistry | LocationsSpec, options: Options
) -> MigrationReport:
    """:func:`migrate` with its settings as an :class:`~selfmigrate.config.Options` (what the faces build)."""
    options.check()
    locations = _plain_locations(migrations, options.table)
    # lock_timeout is the total this start waits: what the quick check waited for a
    # busy database is charged to the full run that follows.
    waited = 0.0
    seen = None
    if options.target is None and locations is not None:
        started = time.perf_counter()
        version, seen = look(database, locations, options.table, options.lock_timeout)
        waited = time.perf_counter() - started
        if version is not None:
            from .backends.select import shown

            where = shown(database)
            Logger("selfmigrate.runner").info("Database %s is up to date at version %s.", where, version)
            from .report import MigrationReport

            return MigrationReport(
                database=where,
                current_version=version,
                duration_ms=(time.perf_counter() - started) * 1000.0,
            )
    # Something may be pending, or changed: the full run (discover, compare, lock, apply).
    from .core.runner import Runner
    from .errors import AheadError, ConfigError, SelfMigrateError
    from .report import MigrationReport

    if seen and locations:
        # What the quick check examined of these very locations is discovery's listing:
        # the files are not listed and examined a second time.
        from .core.registry import MigrationRegistry

        migrations = MigrationRegistry(locations, seen=seen)
    runner = Runner.from_options(database, migrations, options)
    was_missing = runner.backend.missing()
    try:
        return runner.apply(target=options.target, waited=waited)
    except BaseException as e:
        if was_missing:
            remove_if_still_empty(database)
        if (
            not isinstance(e, SelfMigrateError)
            or isinstance(e, (ConfigError, AheadError))
            or options.on_failure == "raise"
        ):
            raise
        Logger("selfmigrate.runner").error(
            "Migrating database %s failed; the app starts without it.\n%s", runner.backend.describe(), e
        )
        report = getattr(e, "report", None) or MigrationReport(database=runner.backend.describe())
        report.error = e
        try:
            status = runner.status()
        except SelfMigrateError:
            return report
        report.current_version = status.current_version
        report.pending = tuple(m.version for m in status.pending)
        return report


def _plain_locations(migrations: object, table: object) -> list[str | os.PathLike[str]] | None:
    """The locations as a list, if the arguments are of the plain kinds the quick check reads.

    ``None`` for anything else (a registry object, a bad value): the full run
    uses it, or says what is wrong with it.
    """
    if isinstance(migrations, (str, os.PathLike)):
        migrations = [migrations]
    if not isinstance(migrations, (list, tuple)):
        return None
    locations = [m for m in migrations if isinstance(m, (str, os.PathLike))]
    plain = len(locations) == len(migrations) and isinstance(table, str)
    return locations if plain else None


def remove_if_still_empty(database: str | os.PathLike[str]) -> bool:
    """Delete the database file a failed run created, if nothing was ever written to it.

    Called only for a database that did not exist when the run began: a start
    that fails before its first change (a bad migration file, a lock not
    obtained) leaves no empty file behind to look like a database. A file with
    any content, or one another process is writing right now, is kept.

    :returns: whether the file was deleted.
    """
    from pathlib import Path

    from .backends.select import open_backend
    from .errors import SelfMigrateError

    try:
        backend = open_backend(database, lock_timeout=0)
    except SelfMigrateError:
        return False
    path = getattr(backend, "path", None)  # only a file-backed engine leaves a file
    if not isinstance(path, Path) or not path.is_file() or path.stat().st_size:
        return False
    try:
        conn = backend.connect(create=False)
    except SelfMigrateError:
        return False
    try:
        # Holding the write lock: no other process is inside a write transaction
        # on this file while it is checked and unlinked.
        with backend.locked_transaction(conn):
            if path.stat().st_size:
                return False
            path.unlink()
    except SelfMigrateError:
        return False  # another process holds the lock: the file is theirs now
    finally:
        conn.close()
    return True
