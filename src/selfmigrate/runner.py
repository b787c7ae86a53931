"""Applying migrations: plan, lock, re-read, one transaction per migration.

The startup contract lives here. :meth:`Runner.apply`:

1. discovers the files and reads the tracker without taking any lock; if nothing
   is pending it returns at once (no migration module is imported);
2. otherwise loads every pending migration (so a broken file fails before the
   database changes), then for each one: takes the write lock (bounded wait),
   re-reads the tracker inside the lock, applies the oldest pending migration and
   its tracker row in one transaction, commits.

Another process may apply some migrations while this one waits for the lock;
re-reading inside the lock makes each migration run exactly once.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
import typing as t

from .backup import Snapshot, identity_key, keyed_snapshots, lineage, snapshot_folder, take_snapshot
from .defaults import DEFAULT_BACKUP_KEEP, DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE
from .errors import (
    BackupError,
    ChecksumMismatch,
    ConfigError,
    DatabaseError,
    LockTimeout,
    MigrationError,
    OutOfOrderError,
    SelfMigrateError,
    StateError,
)
from .migration import line_in
from .registry import LocationsSpec, MigrationRegistry
from .report import AppliedResult, MigrationReport
from .sqlite import (
    EMPTY_DATABASE_PRAGMAS,
    TRANSACTION_ENDED,
    MigrationLock,
    SQLiteBackend,
    StatementError,
    database_path,
    is_closed,
)
from .status import Status, compare
from .tracker import STARTED, AppliedMigration, Tracker

if t.TYPE_CHECKING:
    from .migration import LoadedMigration, Migration, MigrationFunction, SQLScript

logger = logging.getLogger(__name__)

#: Seconds by which a database file must predate a snapshot for the snapshot to
#: count as current: file systems stamp times from a coarse clock.
_MTIME_MARGIN = 0.05
#: A database error that says the statement cannot run inside a transaction
#: ("cannot ATTACH database within transaction", "cannot VACUUM from within a
#: transaction", "... may not be changed inside a transaction").
#: "database other is locked" is how SQLite refuses a DETACH of a database the
#: transaction has used (ATTACH itself works inside one).
_NEEDS_NO_TRANSACTION = re.compile(
    r"\b(?:within|inside) (?:a )?transaction\b|^database \S+ is locked$", re.IGNORECASE
)
#: Put first in a migration's ``denied`` list to say why it failed (worded by
#: :func:`_failure`): it closed its connection, SQLite ignored a pragma it set,
#: it removed the guard's authorizer.
_CLOSED = "closed"
_IGNORED = "ignored"
_UNGUARDED = "unguarded"


class Runner:
    """Applies a registry's migrations to one database.

    :param database: the SQLite file (path or ``sqlite:///`` URL).
    :param migrations: a :class:`MigrationRegistry`, or the locations to build
        one from (package names, directories).
    :param table: the tracker table's name.
    :param lock_timeout: seconds one run may wait in total for a busy database,
        the write lock and the migration lock.
    :param allow_out_of_order: apply a pending migration older than the newest
        applied one instead of raising :class:`OutOfOrderError`.
    :param backup: before the first change to a non-empty database, take a
        snapshot of it (see :mod:`selfmigrate.backup`).
    :param backup_dir: where snapshots go (default: the database's folder).
    :param backup_keep: how many snapshots of the database to keep (``None``: all).
    """

    def __init__(
        self,
        database: str | os.PathLike[str],
        migrations: MigrationRegistry | LocationsSpec,
        *,
        table: str = DEFAULT_TABLE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        allow_out_of_order: bool = False,
        backup: bool = True,
        backup_dir: str | os.PathLike[str] | None = None,
        backup_keep: int | None = DEFAULT_BACKUP_KEEP,
    ) -> None:
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or lock_timeout < 0:
            raise ConfigError(f"lock_timeout must be a number of seconds, 0 or more, not {lock_timeout!r}.")
        self.backend = SQLiteBackend(database_path(database), lock_timeout=float(lock_timeout))
        self.registry = migrations if isinstance(migrations, MigrationRegistry) else MigrationRegistry(migrations)
        self.tracker = Tracker(self.backend, table)
        self.allow_out_of_order = allow_out_of_order
        if backup_keep is not None and (
            isinstance(backup_keep, bool) or not isinstance(backup_keep, int) or backup_keep < 1
        ):
            raise ConfigError(f"backup_keep must be 1 or more (or None to keep all), not {backup_keep!r}.")
        self.backup = bool(backup)
        self.backup_dir = backup_dir
        self.backup_keep = backup_keep

    def __repr__(self) -> str:
        return f"Runner({self.backend.describe()!r}, {self.registry!r})"

    def status(self, conn: sqlite3.Connection | None = None) -> Status:
        """Compare the files with the database, without writing anything.

        A database file that does not exist is an error (nothing is created).
        """
        if conn is not None:
            return compare(self.registry.migrations, self.tracker.read(conn))
        migrations = self.registry.migrations
        conn = self.backend.connect(create=False)
        try:
            return compare(migrations, self.tracker.read(conn))
        finally:
            conn.close()

    def plan(self, *, target: int | None = None) -> tuple[LoadedMigration, ...]:
        """What :meth:`apply` would run, in order, loaded and checked; changes nothing.

        Runs the checks :meth:`apply` makes before it changes anything (edited or
        out-of-order migrations, the target, every pending file loads). Never
        creates the database: a missing file is an error.

        :raises SelfMigrateError: what :meth:`apply` would raise before its first
            change.
        """
        migrations = self.registry.migrations
        if not self.backend.exists() and not self.backend.path.is_dir():
            raise DatabaseError(
                f"Database {self.backend.describe()} does not exist; 'apply' would create it and"
                f" apply all {len(migrations)} migration(s). Check the path."
            )
        status = self.status()
        self._check(status, target)
        return tuple(m.load() for m in _up_to(status.pending, target))

    def rollback_plan(self, *, target: int | None = None, steps: int | None = None) -> tuple[LoadedMigration, ...]:
        """The applied migrations :meth:`rollback` would undo, newest first; changes nothing.

        :param target: undo every applied migration newer than this version
            (``0`` undoes all).
        :param steps: undo this many of the newest applied migrations. With
            neither ``target`` nor ``steps``, one.
        :raises ConfigError: a bad target or step count, or a migration in the
            range has no down (the message names every such migration).
        :raises StateError: a migration in the range is edited, interrupted, or
            its file is missing.
        """
        return self._rollback_range(self.status(), target, steps)

    def rollback(self, *, target: int | None = None, steps: int | None = None) -> MigrationReport:
        """Undo the newest applied migrations: run each one's down, newest first.

        Each migration's down runs in its own transaction, under the write lock,
        together with the removal of its tracker row. Everything is checked
        before the first change (see :meth:`rollback_plan`).

        :returns: a report whose :attr:`~MigrationReport.applied` lists the
            migrations rolled back, in the order they were undone.
        :raises MigrationError: a down failed; its transaction was rolled back,
            so that migration is still applied, and nothing older was touched.

        With backups on, the database is snapshotted before the first down runs
        (a down usually drops what its up added); the report names the snapshot.
        """
        started = time.perf_counter()
        since = time.time()
        database = self.backend.describe()
        report = MigrationReport(database=database)
        migrations = self.registry.migrations
        self.backend.reset_wait()
        conn = self.backend.connect(create=False)
        try:
            todo = self._rollback_range(self.status(conn), target, steps)
            for body in todo:
                migration = body.migration
                # Each down on a connection of its own: nothing a down set on its
                # connection (a pragma, a function) reaches the next one.
                step = self.backend.connect(create=False)
                try:
                    duration = self._roll_back_one(step, body, migrations, report, since)
                finally:
                    step.close()
                report.applied.append(AppliedResult(migration.version, migration.name, duration))
                logger.info("Rolled back migration %s on %s in %.1f ms.", migration.id, database, duration)
            report.current_version = self.status(conn).current_version
        except MigrationError as e:
            report.current_version = self.status(conn).current_version
            report.duration_ms = _ms_since(started)
            e.report = report
            raise
        finally:
            conn.close()
        report.duration_ms = _ms_since(started)
        return report

    def _roll_back_one(
        self,
        conn: sqlite3.Connection,
        body: LoadedMigration,
        migrations: tuple[Migration, ...],
        report: MigrationReport,
        since: float,
    ) -> float:
        """Under the write lock, run ``body``'s down and remove its tracker row; return its duration."""
        migration = body.migration
        database = self.backend.describe()
        self.backend.begin_locked(conn)
        try:
            status = compare(migrations, self.tracker.read(conn))
            if status.current_version != migration.version:
                raise StateError(
                    f"Database {database} changed during the rollback: its newest applied"
                    f" version is {_version(status.current_version)}, not {migration.version}."
                    " Nothing more was rolled back; check 'status' before going on."
                )
            self._take_snapshot(conn, status, report, since)
            t0 = time.perf_counter()
            self._run_down(conn, body, status)
            duration = _ms_since(t0)
            try:
                self.tracker.remove(conn, migration.version)
                self.backend.commit(conn)
            except sqlite3.Error as e:
                raise _failure(
                    migration,
                    e,
                    [],
                    status,
                    database,
                    what=f"Rolling back migration {migration.id} (its down)",
                    outcome="at its commit, and was rolled back; the database is as it was before the rollback",
                ) from e
        except BaseException:
            self.backend.rollback(conn)
            raise
        return duration

    def history(self) -> list[AppliedMigration]:
        """The tracker's rows, newest first (by time applied, then version).

        Needs no migration files. A missing database is an error.
        """
        conn = self.backend.connect(create=False)
        try:
            rows = list(self.tracker.read(conn).values())
        finally:
            conn.close()
        return sorted(rows, key=lambda row: (row.applied_at, row.version), reverse=True)

    def rehash(self, version: int) -> tuple[str, str]:
        """Record the current checksum of applied migration ``version``'s file.

        The sanctioned fix after a cosmetic edit (comments, whitespace) of an
        applied migration. Logs the change at WARNING.

        :returns: the old and the new checksum (equal when nothing changed).
        :raises ConfigError: ``version`` has no file or is not applied.
        """
        migration = self.registry.get(version)
        if migration is None:
            raise ConfigError(f"No migration file has version {version}. Give the version of an applied migration.")
        database = self.backend.describe()
        self.backend.reset_wait()
        conn = self.backend.connect(create=False)
        try:
            self.backend.begin_locked(conn)
            try:
                row = self.tracker.read(conn).get(version)
                if row is None:
                    raise ConfigError(
                        f"Migration {migration.id} is not applied to database {database}; there is no"
                        " checksum to update. Apply it instead."
                    )
                if row.checksum != migration.checksum:
                    self.tracker.set_checksum(conn, version, migration.checksum)
                self.backend.commit(conn)
            except BaseException:
                self.backend.rollback(conn)
                raise
        finally:
            conn.close()
        if row.checksum == migration.checksum:
            logger.info("Migration %s on %s already has the checksum of its file.", migration.id, database)
        else:
            logger.warning(
                "Recorded a new checksum for migration %s on %s: %s (was %s). Its file %s was edited"
                " after it was applied.",
                migration.id,
                database,
                migration.checksum,
                row.checksum,
                migration.location,
            )
        return row.checksum, migration.checksum

    def _rollback_range(
        self, status: Status, target: int | None, steps: int | None
    ) -> tuple[LoadedMigration, ...]:
        database = self.backend.describe()
        if target is not None and steps is not None:
            raise ConfigError("Give a target version or a number of steps to roll back, not both.")
        newest_first = sorted(status.applied, reverse=True)
        if target is not None:
            known = {m.version for m in status.migrations} | set(status.applied) | {0}
            if target not in known:
                raise ConfigError(
                    f"Target version {target} is not the version of any migration. Give an applied"
                    " version to roll back to, or 0 to roll back everything."
                )
            if target > (status.current_version or 0):
                raise ConfigError(
                    f"Target version {target} is not below database {database}'s current version"
                    f" {_version(status.current_version)}; rolling back never goes forward. Use 'apply --to {target}'."
                )
            versions = [v for v in newest_first if v > target]
        else:
            count = 1 if steps is None else steps
            if count < 1:
                raise ConfigError(f"The number of steps to roll back must be 1 or more, not {count}.")
            if count > len(newest_first):
                raise ConfigError(
                    f"Cannot roll back {count} migration(s): database {database} has"
                    f" {len(newest_first)} applied."
                )
            versions = newest_first[:count]
        files = {m.version: m for m in status.migrations}
        edited = {m.version for m, _ in status.edited}
        todo: list[Migration] = []
        for version in versions:
            row = status.applied[version]
            if row.state == STARTED:
                raise StateError(
                    f"Migration {row.id} on database {database} was interrupted; resolve it before"
                    f" rolling back ('resolve {version} --done' or '--retry'). Nothing was rolled back."
                )
            migration = files.get(version)
            if migration is None:
                raise StateError(
                    f"Migration {row.id} is applied to database {database} but its file is not in the"
                    " migrations, so its down cannot run. Restore the file, or roll back less."
                    " Nothing was rolled back."
                )
            if version in edited:
                raise ChecksumMismatch(
                    f"Migration file {migration.location} was edited after it was applied to database"
                    f" {database}; its down may not undo what ran. Undo the edit (or 'rehash {version}'"
                    " if it is cosmetic) first. Nothing was rolled back."
                )
            todo.append(migration)
        loaded = tuple(m.load() for m in todo)
        without_down = [body.migration for body in loaded if not body.has_down]
        if without_down:
            names = ", ".join(f"{m.id} ({m.location})" for m in without_down)
            blocked = max(m.version for m in without_down)
            fix = "Add one"
            if blocked != versions[0]:
                fix += f", or roll back only what is after it (--to {blocked})"
            raise ConfigError(
                f"Cannot roll back past {names}: no down (a '-- migrate:down' section or a"
                f" down(conn) function). Nothing was rolled back. {fix}."
            )
        return loaded

    def _run_down(self, conn: sqlite3.Connection, body: LoadedMigration, status: Status) -> None:
        migration = body.migration
        denied: list[str] = []
        try:
            self._run_guarded(conn, body.down_sql, body.down_function, denied)
            _check_transaction_kept(conn, denied)
        except Exception as e:
            if is_closed(conn):
                denied.insert(0, _CLOSED)
            cause = e.error if isinstance(e, StatementError) else e
            raise _failure(
                migration,
                e,
                denied,
                status,
                self.backend.describe(),
                what=f"Rolling back migration {migration.id} (its down)",
                outcome="and was rolled back; the database is as it was before the rollback",
            ) from cause
        if denied and denied[0] != TRANSACTION_ENDED:
            raise MigrationError(
                f"Rolling back migration {migration.id} tried to {denied[0] or 'end'} the transaction"
                " selfmigrate runs it in, and was undone. Remove BEGIN/COMMIT/ROLLBACK from its down.",
                version=migration.version,
                name=migration.name,
                path=migration.location,
            )

    def apply(self, *, target: int | None = None, waited: float = 0.0) -> MigrationReport:
        """Apply every pending migration (up to ``target``, if given), in order.

        Every migration runs on a connection of its own, opened as the backend
        opens every connection: whatever one migration sets on its connection
        (a pragma such as ``foreign_keys``, a function, a row factory) never
        reaches the next.

        :param waited: seconds this start already waited for the database (the
            quick check of :func:`selfmigrate.migrate`); every wait of the run
            draws on what is left of ``lock_timeout``.
        :raises MigrationError: a migration failed; it was rolled back and no
            later migration was attempted. ``error.report`` says what was applied.
        :raises SelfMigrateError: discovery, state or lock problems, before any
            change.
        """
        started = time.perf_counter()
        database = self.backend.describe()
        report = MigrationReport(database=database)
        migrations = self.registry.migrations
        self.backend.reset_wait(waited)
        conn = self.backend.connect()
        lock: MigrationLock | None = None
        try:
            applied = self.tracker.read(conn)
            # The files' fingerprint (names, sizes, change times) against the one stored
            # the last time migrations were applied: if equal, no applied file was edited
            # since and none needs reading, which keeps a no-op start near the cost of
            # listing a folder. The no-op path never writes it (it takes no write lock).
            files = self.registry.fingerprint()
            key = None if files is None else self.tracker.fingerprint_key(files, applied)
            verified = key is not None and self.tracker.read_fingerprint(conn) == key
            status = compare(migrations, applied, verified=verified)
            if status.interrupted:
                # A non-transactional migration is running, or its process died: wait for
                # the lock that dies with its process, then look again.
                lock = self.backend.migration_lock()
                self.backend.acquire(lock)
                status = compare(migrations, self.tracker.read(conn))
            for row in status.missing:
                logger.warning(
                    "Database %s has migration %s applied (%s) but its file is not in the"
                    " migrations; the database is ahead of this code (a rolled-back deploy?).",
                    database,
                    row.id,
                    row.applied_at,
                )
            self._check(status, target)
            todo = _up_to(status.pending, target)
            if not todo:
                report.current_version = status.current_version
                report.duration_ms = _ms_since(started)
                logger.info("Database %s is up to date at version %s.", database, _version(status.current_version))
                return report
            logger.info(
                "Database %s is at version %s; %d migration(s) pending: %s.",
                database,
                _version(status.current_version),
                len(todo),
                ", ".join(m.id for m in todo),
            )
            loaded = {m.version: m.load() for m in todo}
            # Snapshot only a database that held something when this run looked at it
            # first: a fresh database gets none, even from a worker that applies its
            # second migration after another worker applied the first.
            snapshot_since: float | None = None
            if self.backup and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                snapshot_since = time.time() - (time.perf_counter() - started)
            if lock is None and not all(body.transactional for body in loaded.values()):
                # Taken before any write lock, never while holding one (no deadlock).
                lock = self.backend.migration_lock()
                self.backend.acquire(lock)
            final: Status | None = None
            while final is None:
                step = self.backend.connect()
                try:
                    final = self._apply_next(
                        step, migrations, target, loaded, report, lock=lock, snapshot_since=snapshot_since
                    )
                finally:
                    step.close()
            status = final
        except MigrationError as e:
            done = {r.version for r in report.applied}
            report.current_version = max(done, default=status.current_version)
            report.pending = tuple(m.version for m in status.pending if m.version not in done)
            report.duration_ms = _ms_since(started)
            if report.snapshot is not None:
                e.message += (
                    f"\nThe data from before this run is in the snapshot {report.snapshot}"
                    f" ('python -m selfmigrate restore {os.path.basename(report.snapshot)}' puts it back)."
                )
                e.args = (e.message,)
            e.report = report
            raise
        except sqlite3.Error as e:
            # Not from a migration (those become MigrationError): from reading or writing
            # the tracker, the lock, a commit. Nothing half-done: each step is a transaction.
            raise _database_error(e, database) from e
        finally:
            conn.close()
            if lock is not None:
                lock.release()
        report.current_version = status.current_version
        report.duration_ms = _ms_since(started)
        if not report.applied:
            logger.info(
                "Database %s was migrated to version %s by another process while this one waited.",
                database,
                _version(status.current_version),
            )
        return report

    def _apply_next(
        self,
        conn: sqlite3.Connection,
        migrations: tuple[Migration, ...],
        target: int | None,
        loaded: dict[int, LoadedMigration],
        report: MigrationReport,
        *,
        lock: MigrationLock | None = None,
        snapshot_since: float | None = None,
    ) -> Status | None:
        """Under the lock, apply the oldest pending migration; return the status when none is left."""
        self.backend.begin_locked(conn)
        try:
            self.tracker.ensure(conn)
            status = compare(migrations, self.tracker.read(conn))
            self._check(status, target)
            todo = _up_to(status.pending, target)
            if not todo:
                # Certify the files as checked against these rows, for the next start's quick
                # check (selfmigrate.quickcheck) - only in the state it takes for "up to date".
                files = self.registry.fingerprint()
                if files is not None and not (status.pending or status.missing or status.interrupted):
                    self.tracker.store_fingerprint(conn, self.tracker.fingerprint_key(files, status.applied))
                self.backend.commit(conn)
                return status
            migration = todo[0]
            body = loaded.get(migration.version) or migration.load()
            self._check_integrity(conn, report)
            if snapshot_since is not None:
                self._take_snapshot(conn, status, report, snapshot_since)
            if not body.transactional:
                self._apply_outside_transaction(conn, body, report, status, lock)
                return None
            t0 = time.perf_counter()
            self._run_up(conn, body, report, status)
            duration = _ms_since(t0)
            try:
                self.tracker.record(conn, migration, duration)
                self.backend.commit(conn)
            except sqlite3.Error as e:
                # A full disk, an I/O error at COMMIT: the migration did not take effect,
                # and it is this migration's failure.
                raise _failure(
                    migration,
                    e,
                    [],
                    status,
                    self.backend.describe(),
                    outcome="at its commit, and was rolled back; the database is as it was before it",
                ) from e
            except LockTimeout as e:
                # Readers kept the commit waiting: a lock timeout (as the startup contract
                # says), worded for the migration it held back.
                raise LockTimeout(f"Migration {migration.id} ({migration.location}) was not applied: {e}") from (
                    e.__cause__
                )
        except BaseException:
            self.backend.rollback(conn)
            raise
        report.applied.append(AppliedResult(migration.version, migration.name, duration))
        logger.info("Applied migration %s to %s in %.1f ms.", migration.id, report.database, duration)
        return None

    def _check_integrity(self, conn: sqlite3.Connection, report: MigrationReport) -> None:
        """Before a run's first change, refuse to migrate a damaged database (``PRAGMA quick_check``).

        Paid only when something is pending; a migration on top of a damaged
        file can only make it worse, and a snapshot of it would not help.
        """
        if report.applied:
            return
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            from .errors import DatabaseError

            listed = "\n  ".join(problems)
            raise DatabaseError(
                f"Database {self.backend.describe()} is damaged (SQLite's quick_check found:\n  {listed}\n)."
                " selfmigrate does not migrate a damaged database; nothing was changed. Restore it from a"
                " snapshot ('python -m selfmigrate snapshots' lists them) or another backup, or salvage"
                " it with the sqlite3 shell's '.recover' command."
            )
        # Rewrite user_version with its own value: fails here, as a DatabaseError naming
        # the read-only file, instead of in the first migration's first statement.
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {int(user_version)}")

    def _take_snapshot(
        self, conn: sqlite3.Connection, status: Status, report: MigrationReport, since: float
    ) -> None:
        """Snapshot a non-empty database once per run, holding the write lock, before the first change.

        Inside the lock nobody else can write, so the snapshot (read through a
        second connection, which sees only committed data) is exactly the data
        from before this run's first migration.
        """
        if not self.backup or report.snapshot is not None or report.applied:
            return  # off, or not this run's first change
        others = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name NOT IN (?, ?)",
            (self.tracker.table, self.tracker.fingerprint_table),
        ).fetchone()[0]
        if not others:
            return
        # This database's key, from the tracker rows read inside the lock (the same
        # committed rows the snapshot will hold): only its own snapshots are reused.
        oldest = min(status.applied.values(), key=lambda row: row.version, default=None)
        key = identity_key(
            self.backend.path,
            None if oldest is None else lineage(oldest.version, oldest.applied_at, oldest.applied_by),
        )
        # Workers that start together apply the migrations between them; the first to
        # change the database took a snapshot of it, after this run began: use that one.
        try:
            newest = keyed_snapshots(snapshot_folder(self.backend.path, self.backup_dir), {key})[:1]
        except BackupError:
            newest = []  # take_snapshot says what is wrong with the folder
        if newest and (
            newest[0].created.timestamp() >= since or self._unchanged_since(newest[0], status.current_version)
        ):
            report.snapshot = str(newest[0].path)
            return
        snapshot = take_snapshot(
            self.backend.path,
            directory=self.backup_dir,
            keep=self.backup_keep,
            version=status.current_version,
            table=self.tracker.table,
        )
        report.snapshot = str(snapshot.path)

    def _unchanged_since(self, snapshot: Snapshot, version: int | None) -> bool:
        """Whether the database was not written since ``snapshot`` was taken of it.

        A start that fails again (a container restarting in a loop on a broken
        migration) then reuses the snapshot instead of taking one more per
        restart and pruning the older ones. Judged by the version and by the
        modification times of the database and its WAL file, with a margin for
        the file system's coarse clock: when in doubt, a new snapshot is taken.
        """
        if snapshot.version != (version or 0):
            return False
        taken = snapshot.created.timestamp() - _MTIME_MARGIN
        for path in (self.backend.path, self.backend.path.with_name(self.backend.path.name + "-wal")):
            try:
                if path.stat().st_mtime >= taken:
                    return False
            except FileNotFoundError:
                continue
        return True

    def _apply_outside_transaction(
        self,
        conn: sqlite3.Connection,
        body: LoadedMigration,
        report: MigrationReport,
        status: Status,
        lock: MigrationLock | None,
    ) -> None:
        """Run a non-transactional migration: record it as started, run it, record it as finished.

        Called inside the write transaction with the migration lock held. The
        'started' row is committed before the migration runs; if the process dies
        before the 'applied' row, the next start finds the row, sees the
        migration lock free, and refuses to guess (see :meth:`_check`). ``conn``
        is closed once the migration has run.
        """
        migration = body.migration
        if lock is None or not lock.held:
            raise StateError(
                f"Migration {migration.id} runs outside a transaction and needs the migration lock,"
                " which this run does not hold. Start again."
            )
        self.tracker.record(conn, migration, 0.0, state=STARTED)
        self.backend.commit(conn)
        logger.info("Running migration %s on %s outside a transaction.", migration.id, report.database)
        t0 = time.perf_counter()
        self._run_outside(conn, body, status, report)
        duration = _ms_since(t0)
        # Recorded through a new connection: the migration's one carries whatever the
        # migration set on it, and is closed first so that none of its locks (PRAGMA
        # locking_mode = EXCLUSIVE keeps them) stands in the way.
        conn.close()
        finish = self.backend.connect()
        try:
            self.backend.begin_locked(finish)
            self.tracker.finish(finish, migration.version, duration)
            self.backend.commit(finish)
        except (sqlite3.Error, LockTimeout) as e:
            self.backend.rollback(finish)
            raise _failure(
                migration,
                e,
                [],
                status,
                report.database,
                outcome="outside a transaction; it ran, but recording it as finished failed",
                advice="It stays recorded as started, and selfmigrate will not start until it is resolved:"
                f" check the database, then 'python -m selfmigrate resolve {migration.version} --done'"
                " if its change is complete.",
            ) from e
        finally:
            finish.close()
        report.applied.append(AppliedResult(migration.version, migration.name, duration))
        logger.info("Applied migration %s to %s in %.1f ms.", migration.id, report.database, duration)

    def _run_outside(
        self, conn: sqlite3.Connection, body: LoadedMigration, status: Status, report: MigrationReport
    ) -> None:
        migration = body.migration
        database = self.backend.describe()
        denied: list[str] = []
        requested: dict[str, str] = {}
        self.backend.guard_transaction(conn, denied, transactional=False, requested=requested)
        try:
            try:
                if body.up_sql is not None:
                    self.backend.run_script(conn, body.up_sql)
                else:
                    assert body.up_function is not None
                    body.up_function(conn)
            finally:
                self.backend.unguard(conn)
            if is_closed(conn):
                raise _ConnectionClosed
            if conn.in_transaction:
                raise sqlite3.OperationalError("the migration left a transaction open (BEGIN without COMMIT)")
            if denied:
                raise sqlite3.DatabaseError(f"{denied[0]} not authorized")
            ignored = self.backend.ignored_pragmas(conn, requested)
            if ignored:
                denied.append(_IGNORED)
                raise sqlite3.OperationalError(f"SQLite ignored {', '.join(ignored)}")
        except Exception as e:
            if is_closed(conn):
                denied.insert(0, _CLOSED)
            self.backend.rollback(conn)
            cause = e.error if isinstance(e, StatementError) else e
            raise _failure(
                migration,
                e,
                denied,
                status,
                database,
                outcome="outside a transaction; what it did before the error is NOT undone",
                transactional=False,
                advice="It stays recorded as started, and selfmigrate will not start until it is resolved:"
                f" check the database, then 'python -m selfmigrate resolve {migration.version} --done'"
                " if its change is complete, or restore the snapshot and"
                f" 'python -m selfmigrate resolve {migration.version} --retry'.",
            ) from cause

    def _run_guarded(
        self,
        conn: sqlite3.Connection,
        script: SQLScript | None,
        function: MigrationFunction | None,
        denied: list[str],
    ) -> None:
        """Run one direction of a migration (its SQL or its function) in the open transaction.

        BEGIN/COMMIT/ROLLBACK are refused meanwhile, each refusal appended to
        ``denied``. A migration may change how the connection hands back rows;
        the tracker reads through the same connection right after it, so the row
        and text factories are restored.
        """
        factories = (conn.row_factory, conn.text_factory)
        still_guarded = self.backend.guard_transaction(conn, denied)
        try:
            if script is not None:
                self.backend.run_script(conn, script)
            else:
                assert function is not None
                function(conn)
            if not is_closed(conn) and conn.in_transaction and not still_guarded():
                # Without the authorizer nothing stopped a COMMIT, or statements after
                # SQLite ended the transaction: what is in the transaction now is not
                # known to be the migration's whole work.
                denied.insert(0, _UNGUARDED)
                raise sqlite3.DatabaseError("the migration removed or replaced selfmigrate's authorizer")
        finally:
            self.backend.unguard(conn)
            if not is_closed(conn):
                conn.row_factory, conn.text_factory = factories

    def _run_up(self, conn: sqlite3.Connection, body: LoadedMigration, report: MigrationReport, status: Status) -> None:
        denied: list[str] = []
        try:
            self._run_guarded(conn, body.up_sql, body.up_function, denied)
            _check_transaction_kept(conn, denied)
        except Exception as e:
            if is_closed(conn):
                denied.insert(0, _CLOSED)
            # Chain the database error itself, not the wrapper that says which statement.
            cause = e.error if isinstance(e, StatementError) else e
            raise _failure(body.migration, e, denied, status, self.backend.describe()) from cause
        if denied and denied[0] != TRANSACTION_ENDED:
            # The migration caught the refusal of its COMMIT/BEGIN and carried on: what it
            # meant to do did not happen as written, so it must not be recorded as applied.
            refused = sqlite3.DatabaseError(f"{denied[0] or 'transaction control'} not authorized")
            raise _failure(body.migration, refused, denied, status, self.backend.describe()) from refused

    def _check(self, status: Status, target: int | None) -> None:
        database = self.backend.describe()
        if status.interrupted:
            row = status.interrupted[0]
            raise StateError(
                f"Migration {row.id} was started on database {database} ({row.applied_at}, by"
                f" {row.applied_by}) outside a transaction and never finished. selfmigrate will"
                " not guess whether it took effect: check the database, then mark it done with"
                f" 'python -m selfmigrate resolve {row.version} --done' or restore the backup"
                f" and retry with 'python -m selfmigrate resolve {row.version} --retry'."
            )
        if status.edited:
            lines = "\n  ".join(
                f"{m.location} (version {m.version}, applied {row.applied_at})" for m, row in status.edited
            )
            raise ChecksumMismatch(
                f"These migrations were edited after they were applied to database {database}:\n"
                f"  {lines}\n"
                "An applied migration must not change: undo the edit and make the change in a new"
                " migration ('python -m selfmigrate create \"message\"'). If the edit is cosmetic"
                " (comments, whitespace), record the new checksum with"
                " 'python -m selfmigrate rehash VERSION'."
            )
        if target is not None and status.current_version is not None and target < status.current_version:
            raise ConfigError(
                f"Target version {target} is below database {database}'s current version"
                f" {status.current_version}; applying never goes back. Use 'rollback --to {target}'."
            )
        if target is not None and all(m.version != target for m in status.migrations):
            raise ConfigError(f"Target version {target} is not the version of any migration file.")
        out_of_order = _up_to(status.out_of_order, target)
        if out_of_order and not self.allow_out_of_order:
            names = ", ".join(m.location for m in out_of_order)
            raise OutOfOrderError(
                f"Database {database} is at version {status.current_version}, but older"
                f" migrations are still pending: {names}. This is usually two branches merged:"
                " renumber the pending file(s) after the newest applied version, or allow"
                " out-of-order migrations (SELFMIGRATE_ALLOW_OUT_OF_ORDER = True,"
                " allow_out_of_order=True)."
            )


def _failure(
    migration: Migration,
    error: Exception,
    denied: list[str],
    status: Status,
    database: str,
    *,
    what: str | None = None,
    outcome: str = "and was rolled back; the database is as it was before it",
    advice: str = "Fix the migration and start again; nothing needs undoing by hand.",
    transactional: bool = True,
) -> MigrationError:
    """The :class:`MigrationError` for ``error`` raised by ``migration``: file, line,
    statement, database error, what was not attempted, and what to do.

    ``what`` (default ``"Migration <id>"``), ``outcome`` and ``advice`` word
    the first and last lines for a down or a migration run outside a
    transaction (``transactional=False`` for the latter).
    """
    line: int | None = None
    statement: str | None = None
    cause: BaseException = error
    if isinstance(error, StatementError):
        line, statement, cause = error.statement.line, error.statement.sql, error.error
    else:
        line = line_in(error, migration.location)
    where = migration.location + (f", line {line}" if line is not None else "")
    later = [m.id for m in status.pending if m.version > migration.version]
    lines = [
        f"{what or f'Migration {migration.id}'} failed on database {database} {outcome}"
        f" (version {_version(status.current_version)}).",
        f"  file: {where}",
    ]
    if statement is not None:
        lines.append(f"  statement: {_shorten(statement)}")
    lines.append(f"  error: {type(cause).__name__}: {cause}")
    if denied and denied[0] == _CLOSED:
        lines.append(
            "  The migration closed the connection selfmigrate gave it (conn.close()); closing it"
            + (" rolled back its transaction, so nothing of it is kept." if transactional else ".")
            + " Remove conn.close() (and 'with contextlib.closing(conn)') from the migration:"
            " selfmigrate opens and closes each migration's connection itself."
        )
    elif denied and denied[0] == _UNGUARDED:
        lines.append(
            "  The migration called conn.set_authorizer(), which removes the authorizer that keeps"
            " it inside selfmigrate's transaction. Remove that call; to restrict what SQL may do,"
            " check it in the migration's own code."
        )
    elif denied and denied[0] == _IGNORED:
        lines.append(
            "  On a database with content, page_size and auto_vacuum change only through a VACUUM"
            " after them, in the same migration (and page_size never in WAL mode): add 'VACUUM;'"
            " after the pragma, or remove it."
        )
    elif denied and denied[0] == TRANSACTION_ENDED:
        lines.append(
            "  SQLite ended the migration's transaction on its own and rolled it back (a trigger's"
            " RAISE(ROLLBACK, ...), INSERT OR ROLLBACK, or an error such as a full disk), and the"
            " migration went on: what it ran after that was refused, not committed statement by"
            " statement, and it is not recorded. Let that error end the migration instead of catching"
            " it, or use RAISE(ABORT, ...), which undoes only the statement."
        )
    elif denied and denied[0].removeprefix("PRAGMA ") in EMPTY_DATABASE_PRAGMAS:
        lines.append(
            f"  {denied[0]} takes effect only on an empty database, and when a migration runs the"
            " database already holds selfmigrate's tracker table, so SQLite would ignore it. Remove"
            " it; a database that must not be UTF-8 (SQLite's default) has to be created with its"
            " encoding before the first start."
        )
    elif denied and denied[0].startswith("PRAGMA "):
        lines.append(
            f"  {denied[0]} has no effect inside a transaction, and selfmigrate runs this migration in"
            " one. Move it to a migration of its own that runs outside a transaction: a first line"
            " '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)."
        )
    elif denied:
        lines.append(
            f"  The migration tried to {denied[0] or 'end'} the transaction selfmigrate runs it in."
            " Remove BEGIN/COMMIT/ROLLBACK (and conn.commit(), conn.executescript()) from it:"
            " selfmigrate commits each migration together with its tracker row."
        )
    elif transactional and isinstance(cause, sqlite3.Error) and _NEEDS_NO_TRANSACTION.search(str(cause)):
        lines.append(
            "  This statement is valid but cannot run inside a transaction, and selfmigrate runs this"
            " migration in one. Move it to a migration of its own that runs outside a transaction: a"
            " first line '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)."
            + (
                " (A DETACH can also simply go: selfmigrate closes each migration's connection after it,"
                " which detaches every database the migration attached.)"
                if str(cause).startswith("database ")
                else ""
            )
        )
    if isinstance(cause, sqlite3.Error) and getattr(cause, "sqlite_errorname", "") == "SQLITE_FULL":
        lines.append(
            "  The disk is full, or the database reached its size limit (PRAGMA max_page_count):"
            " free space (or raise the limit) before starting again."
        )
    if later:
        lines.append(f"  Not attempted: {', '.join(later)}.")
    lines.append(advice)
    return MigrationError(
        "\n".join(lines),
        version=migration.version,
        name=migration.name,
        path=migration.location,
        line=line,
        statement=statement,
    )


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


def _database_error(error: sqlite3.Error, database: str) -> SelfMigrateError:
    """A clear error for a database error met outside a migration (tracker, lock, commit)."""
    from .errors import DatabaseError

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


def _up_to(migrations: t.Sequence[Migration], target: int | None) -> tuple[Migration, ...]:
    return tuple(m for m in migrations if target is None or m.version <= target)


def _version(version: int | None) -> str:
    return "0 (empty)" if version is None else str(version)


def _shorten(sql: str, limit: int = 300) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
