"""Applying migrations: plan, lock, re-read, one transaction per migration — :class:`Runner`.

Holds the startup contract: discover and compare without a lock, then for each pending
migration take the write lock, re-read the tracker inside it and apply the oldest one with
its row in one transaction; and the rollback, rehash and history built on the same steps.
Must not name an engine: every engine decision goes through the injected Backend.
"""

from __future__ import annotations

import os
import time

from ..config import DEFAULT_AHEAD, DEFAULT_BACKUP_KEEP, DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE, Options
from ..errors import ConfigError, DatabaseError, LockTimeout, MigrationError, StateError
from ..logs import Logger
from ..report import AppliedResult, MigrationReport
from .execute import failure, ms_since, run_down, run_outside, run_up
from .fingerprint import Certified, read_certificate
from .plan import check, rollback_range, up_to, version_label
from .registry import MigrationRegistry, versions_of
from .status import Status, compare
from .tracker import LAYOUT, STARTED, AppliedMigration, Tracker

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    from ..backends.base import Backend, Connection, MigrationLock
    from ..config import AheadPolicy
    from .fingerprint import Files, Key
    from .locations import LocationsSpec
    from .migration import LoadedMigration, Migration



# The logger keeps the name it had before the package had layers: users configure it.
logger = Logger("selfmigrate.runner")
#: What to do after a step's COMMIT failed (a full disk, an I/O error): the statements ran, so
#: the migration (or its down) is not what to fix.
_COMMIT_FAILED = "Once the cause above is fixed, start again; nothing needs undoing by hand."
_COMMIT_FAILED_ROLLBACK = "Once the cause above is fixed, run the rollback again; nothing needs undoing by hand."
#: Said of a migration rolled back with the down stored in the tracker.
_FROM_TRACKER = " with the down stored in the tracker (its file is not in the migrations)"


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
        snapshot of it (see :func:`selfmigrate.take_snapshot`).
    :param backup_dir: where snapshots go (default: the database's folder).
    :param backup_keep: how many snapshots of the database to keep (``None``: all).
    :param ahead: what a start does when the database has migrations this code
        lacks and not all of them are compatible: ``"warn"`` (log and start),
        ``"refuse"`` (raise :class:`~selfmigrate.AheadError`), ``"rollback"``
        (undo them from the downs stored in the tracker, newest first, after a
        snapshot; needs ``backup``).
    :param backend: the database's backend, if the caller made it (the test
        templates do); by default the one :mod:`selfmigrate.backends.select`
        chooses for ``database``.
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
        ahead: AheadPolicy = DEFAULT_AHEAD,
        backend: Backend | None = None,
    ) -> None:
        options = Options(
            table=table,
            lock_timeout=lock_timeout,
            allow_out_of_order=allow_out_of_order,
            backup=backup,
            backup_dir=backup_dir,
            backup_keep=backup_keep,
            ahead=ahead,
        )
        self._setup(database, migrations, options, backend)

    @classmethod
    def from_options(
        cls,
        database: str | os.PathLike[str],
        migrations: MigrationRegistry | LocationsSpec,
        options: Options,
        *,
        backend: Backend | None = None,
    ) -> Runner:
        """A runner for ``database`` set up from ``options`` (what the faces build)."""
        runner = cls.__new__(cls)
        runner._setup(database, migrations, options, backend)
        return runner

    def _setup(
        self,
        database: str | os.PathLike[str],
        migrations: MigrationRegistry | LocationsSpec,
        options: Options,
        backend: Backend | None,
    ) -> None:
        self.options = options.check()
        if backend is None:
            from ..backends.select import open_backend

            backend = open_backend(database, options, lock_timeout=float(options.lock_timeout))
        self.backend: Backend = backend
        self.registry = migrations if isinstance(migrations, MigrationRegistry) else MigrationRegistry(migrations)
        self.tracker = Tracker(self.backend, options.table)

    @property
    def allow_out_of_order(self) -> bool:
        """Whether pending migrations older than the newest applied one are applied."""
        return self.options.allow_out_of_order

    @property
    def backup(self) -> bool:
        """Whether a non-empty database is snapshotted before its first change."""
        return bool(self.options.backup)

    @property
    def backup_dir(self) -> str | os.PathLike[str] | None:
        """Where snapshots go (``None``: the database's folder)."""
        return self.options.backup_dir

    @property
    def backup_keep(self) -> int | None:
        """How many snapshots are kept (``None``: all)."""
        return self.options.backup_keep

    @property
    def ahead(self) -> AheadPolicy:
        """What a start does when the database is ahead of the code (``SELFMIGRATE_AHEAD``)."""
        return self.options.ahead

    def __repr__(self) -> str:
        return f"Runner({self.backend.describe()!r}, {self.registry!r})"

    def status(self, conn: Connection | None = None) -> Status:
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
        if self.backend.missing():
            raise DatabaseError(
                f"Database {self.backend.describe()} does not exist; 'apply' would create it and"
                f" apply all {len(migrations)} migration(s). Check the path."
            )
        status = self.status()
        self._check(status, target)
        return tuple(m.load() for m in up_to(status.pending, target))

    def rollback_plan(self, *, target: int | None = None, steps: int | None = None) -> tuple[LoadedMigration, ...]:
        """The applied migrations :meth:`rollback` would undo, newest first; changes nothing.

        :param target: undo every applied migration newer than this version
            (``0`` undoes all).
        :param steps: undo this many of the newest applied migrations. With
            neither ``target`` nor ``steps``, one.
        :raises ConfigError: a bad target or step count, or a migration in the
            range has no down (the message names every such migration).
        :raises StateError: a migration in the range is edited, interrupted, or
            has neither a file nor a stored down.
        :raises ChecksumMismatch: a stored down no longer matches its checksum.
        """
        conn = self.backend.connect(create=False)
        try:
            status = self.status(conn)
            return self._rollback_range(status, target, steps, self._stored_downs(conn, status))
        finally:
            conn.close()

    def _stored_downs(self, conn: Connection, status: Status) -> dict[int, str]:
        """The stored downs of the migrations whose file is missing, by version."""
        found: dict[int, str] = {}
        for row in status.missing:
            source = self.tracker.stored_down(conn, row)
            if source is not None:
                found[row.version] = source
        return found

    def _rollback_range(
        self, status: Status, target: int | None, steps: int | None, stored: dict[int, str]
    ) -> tuple[LoadedMigration, ...]:
        return rollback_range(
            status, target, steps, database=self.backend.describe(), stored=stored, table=self.tracker.rollback_table
        )

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
            status = self.status(conn)
            todo = self._rollback_range(status, target, steps, self._stored_downs(conn, status))
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
                logger.info(
                    "Rolled back migration %s on %s in %.1f ms%s.",
                    migration.id,
                    database,
                    duration,
                    _FROM_TRACKER if body.from_tracker else "",
                )
            report.current_version = self.status(conn).current_version
        except MigrationError as e:
            report.current_version = self.status(conn).current_version
            report.duration_ms = ms_since(started)
            e.report = report
            raise
        finally:
            conn.close()
        report.duration_ms = ms_since(started)
        return report

    def _roll_back_one(
        self,
        conn: Connection,
        body: LoadedMigration,
        migrations: tuple[Migration, ...],
        report: MigrationReport,
        since: float,
    ) -> float:
        """Under the write lock, run ``body``'s down and remove its tracker row; return its duration."""
        migration = body.migration
        database = self.backend.describe()
        committing = False
        try:
            with self.backend.locked_transaction(conn):
                status = compare(migrations, self.tracker.read(conn))
                if status.current_version != migration.version:
                    raise StateError(
                        f"Database {database} changed during the rollback: its newest applied"
                        f" version is {version_label(status.current_version)}, not {migration.version}."
                        " Nothing more was rolled back; check 'status' before going on."
                    )
                self._take_snapshot(conn, status, report, since)
                t0 = time.perf_counter()
                run_down(self.backend, conn, body, status)
                duration = ms_since(t0)
                committing = True
                self.tracker.remove(conn, migration.version)
        except self.backend.engine_errors as e:
            if not committing:
                raise
            raise failure(
                self.backend,
                migration,
                e,
                [],
                status,
                what=f"Rolling back migration {migration.id} (its down)",
                outcome="at its commit, and was rolled back; the database is as it was before the rollback",
                advice=_COMMIT_FAILED_ROLLBACK,
                down=True,
            ) from e
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
            with self.backend.locked_transaction(conn):
                row = self.tracker.read(conn).get(version)
                if row is None:
                    raise ConfigError(
                        f"Migration {migration.id} is not applied to database {database}; there is no"
                        " checksum to update. Apply it instead."
                    )
                if row.checksum != migration.checksum:
                    self.tracker.set_checksum(conn, version, migration.checksum)
        finally:
            conn.close()
        # The files verified again, against the new row: the next start takes the quick path.
        self.certify()
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

    def apply(self, *, target: int | None = None, waited: float = 0.0) -> MigrationReport:
        """Apply every pending migration (up to ``target``, if given), in order.

        Every migration runs on a connection of its own, opened as the backend
        opens every connection: whatever one migration sets on its connection
        (a pragma such as ``foreign_keys``, a function, a row factory) never
        reaches the next.

        With nothing to apply and files that were not certified yet (a deploy
        gave them new change times), the files are verified and then certified
        for the next start if the write lock is free at once (see :meth:`certify`).

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
        # Taken from the listing discovery saw, before any file is read: a file edited
        # from now on has a newer change time than the one certified.
        files = self.registry.files()
        self.backend.reset_wait(waited)
        conn = self.backend.connect()
        lock: MigrationLock | None = None
        try:
            # Read before the tracker: a commit after it shows at the first step, which
            # then reads the tracker again (one before it, this read sees).
            marker = self.backend.change_marker(conn)
            applied = self.tracker.read(conn)
            # The files' fingerprint (names, sizes, change times) against the one stored
            # the last time they were verified: if equal, no applied file was edited
            # since and none needs reading, which keeps a no-op start near the cost of
            # listing a folder.
            key = None if files is None else self.tracker.key(files, applied)
            stored = None if key is None else self.tracker.read_fingerprint(conn)
            verified = key is not None and stored == key.digest()
            # Else the files still as they were certified (a migration added to the same
            # tree) need no reading either: only the new and the changed ones are read.
            certificate = None
            if not verified and stored is not None and files is not None and key is not None:
                found = read_certificate(self.tracker.read_fingerprint(conn, certificate=True))
                if found is not None:
                    certificate = Certified(found, files, versions_of)
            known = _known(certificate, migrations, applied, key)
            status = compare(migrations, applied, verified=verified or known)
            # What the first read saw, for _certify: None once the tracker is read again.
            seen = None if marker is None or key is None else (marker, key)
            if status.interrupted:
                # A non-transactional migration is running, or its process died: wait for
                # the lock that dies with its process, then look again.
                lock = self.backend.migration_lock()
                self.backend.acquire(lock)
                status = compare(migrations, self.tracker.read(conn))
                seen = None
                self._explain_interrupted(conn, status)
            rolled_back = self._handle_ahead(conn, status, report, started)
            if rolled_back:
                status = compare(migrations, self.tracker.read(conn))
            self._check(status, target)
            todo = up_to(status.pending, target)
            # A tracker of an older layout is upgraded by the first start that sees it,
            # in a locked transaction of its own (the loop below), pending or not.
            upgrade = 0 < self.tracker.layout(conn) < LAYOUT
            if not todo and not upgrade and not rolled_back:
                if not verified and files is not None:
                    self._certify(conn, files, status, seen=seen)
                report.current_version = status.current_version
                report.duration_ms = ms_since(started)
                logger.info("Database %s is up to date at version %s.", database, version_label(status.current_version))
                if not migrations and not applied:
                    # Silent otherwise: a wheel built without its .sql files starts "up to date".
                    logger.warning(
                        "No migration file in %s, so database %s stays empty. If the app has migrations,"
                        " they are not there: point the migrations setting at them, or include the .sql"
                        " files in the package (setuptools needs them in package-data).",
                        ", ".join(location.name for location in self.registry.locations),
                        database,
                    )
                return report
            if todo:
                logger.info(
                    "Database %s is at version %s; %d migration(s) pending: %s.",
                    database,
                    version_label(status.current_version),
                    len(todo),
                    _listed(todo),
                )
            loaded = {m.version: m.load() for m in todo}
            # Snapshot only a database that held something when this run looked at it
            # first: a fresh database gets none, even from a worker that applies its
            # second migration after another worker applied the first.
            snapshot_since: float | None = None
            if self.backup and self.backend.has_objects(conn):
                snapshot_since = time.time() - (time.perf_counter() - started)
            if lock is None and not all(body.transactional for body in loaded.values()):
                # Taken before any write lock, never while holding one (no deadlock).
                lock = self.backend.migration_lock()
                self.backend.acquire(lock)
            run = _Progress(migrations=migrations, status=status, files=files, target=target, certificate=certificate)
            if applied and not upgrade and not rolled_back:
                # What was read above still holds at the first step if nobody committed
                # since: this connection's change marker says so. (An upgrade of the
                # tracker, or a rollback of what is ahead, makes the first step read in full.)
                run.watch(conn, marker)
            try:
                while run.final is None:
                    self._apply_next(run, loaded, report, lock=lock, snapshot_since=snapshot_since)
            finally:
                run.forget()
            status = run.final
        except MigrationError as e:
            done = {r.version for r in report.applied}
            report.current_version = max(done, default=status.current_version)
            report.pending = tuple(m.version for m in status.pending if m.version not in done)
            report.duration_ms = ms_since(started)
            if report.snapshot is not None:
                e.message += (
                    f"\nThe data from before this run is in the snapshot {report.snapshot}"
                    f" ('python -m selfmigrate restore {os.path.basename(report.snapshot)}' puts it back)."
                )
                e.args = (e.message,)
            e.report = report
            raise
        except self.backend.engine_errors as e:
            # Not from a migration (those become MigrationError): from reading or writing
            # the tracker, the lock, a commit. Nothing half-done: each step is a transaction.
            raise self.backend.database_error(e) from e
        finally:
            conn.close()
            if lock is not None:
                lock.release()
        report.current_version = status.current_version
        report.duration_ms = ms_since(started)
        if not report.applied and todo:
            logger.info(
                "Database %s was migrated to version %s by another process while this one waited.",
                database,
                version_label(status.current_version),
            )
        return report

    def certify(self) -> bool:
        """Verify every applied file and, if all match, certify them for the next start's quick check.

        What ``verify``, ``rehash`` and the first start after a deploy do: read
        and checksum the files, and store their fingerprint if the database is
        up to date with them (nothing pending, edited, missing or interrupted).
        Never waits: if another process holds the write lock, nothing is stored
        (the next start tries again).

        :returns: whether the fingerprint is now stored (``False`` also for
            files inside a zip file, which have none).
        """
        migrations = self.registry.migrations
        files = self.registry.files()
        if files is None:
            return False
        conn = self.backend.connect(create=False)
        try:
            applied = self.tracker.read(conn)
            key = self.tracker.key(files, applied)
            if self.tracker.read_fingerprint(conn) == key.digest():
                return True
            return self._certify(conn, files, compare(migrations, applied))
        finally:
            conn.close()

    def _certify(
        self, conn: Connection, files: Files, status: Status, *, seen: tuple[object, Key] | None = None
    ) -> bool:
        """Store the key of ``files`` verified against ``status.applied`` if the lock is free at once.

        Only in the state the quick check answers "up to date" for, and only if
        the tracker still holds the rows it was made of (read again inside the lock).

        :param seen: the change marker read on ``conn`` before ``status.applied`` was
            read, with the key made of those rows: the same marker inside the lock
            means nobody committed since, and the rows are not read again (10 000 of
            them are a tenth of the first start after a deploy).
        """
        if not status.up_to_date or status.missing or status.out_of_order:
            return False
        marker, key = seen if seen is not None else (None, self.tracker.key(files, status.applied))
        try:
            with self.backend.try_locked_transaction(conn) as locked:
                if not locked:
                    logger.debug(
                        "Database %s is locked; the files' fingerprint is left for the next start.",
                        self.backend.describe(),
                    )
                    return False
                again: t.Callable[[Connection], object | None] = getattr(
                    self.backend, "change_marker_again", self.backend.change_marker
                )
                unchanged = marker is not None and again(conn) == marker
                if not unchanged and self.tracker.key(files, self.tracker.read(conn)) != key:
                    return False  # another process changed the tracker since: the next start looks
                self.tracker.store_fingerprint(conn, key)
                return True
        except self.backend.engine_errors as e:
            # A database this process may read but not write (a read-only mount, a full
            # disk): the fingerprint is a shortcut for the next start, not a duty of this one.
            logger.debug("The files' fingerprint was not stored in %s: %s", self.backend.describe(), e)
            return False

    def _apply_next(
        self,
        run: _Progress,
        loaded: dict[int, LoadedMigration],
        report: MigrationReport,
        *,
        lock: MigrationLock | None = None,
        snapshot_since: float | None = None,
    ) -> None:
        """Under the lock, apply the oldest pending migration on a connection of its own.

        Inside the lock the tracker is re-read, in full when another connection
        committed since this run's last step (the backend's change marker), else
        from what this run knows. When nothing is left, ``run.final`` is set.
        """
        # The last step's connection when the backend proved it untouched by its migration
        # (see Backend.reusable), else a new one: either way, as the backend opens one.
        reused = run.take()
        conn = self.backend.connect() if reused is None else reused
        reusable: t.Callable[[Connection], bool] | None = getattr(self.backend, "reusable", None)
        migration: Migration | None = None
        outside: LoadedMigration | None = None
        committing = False
        finished = False
        untouched = False
        try:
            with self.backend.locked_transaction(conn):
                if not run.unchanged(self.backend, conn):
                    upgraded = self.tracker.ensure(conn)
                    if upgraded is not None:
                        logger.info(
                            "Upgraded the tracker of database %s from layout %d to %d (it stores each migration's"
                            " down from now on; migrations applied before show 'down not stored').",
                            self.backend.describe(),
                            upgraded,
                            LAYOUT,
                        )
                    applied = self.tracker.read(conn)
                    status = compare(run.migrations, applied, verified=_known(run.certificate, run.migrations, applied))
                    self._check(status, run.target)
                    run.restart(status)
                if not run.todo:
                    run.final = run.status_now()
                    # Certify the files as checked against these rows, for the next start's quick
                    # check (selfmigrate.core.quick) - only in the state it takes for "up to date".
                    if run.certifiable():
                        self.tracker.store_fingerprint(conn, run.key())
                    finished = True
                    return  # committed by the block; the connection closed below
                migration = run.todo[-1]
                body = loaded.get(migration.version) or migration.load()
                if not report.applied:
                    # Paid only when something is pending, before this run's first change.
                    self.backend.check_integrity(conn)
                if snapshot_since is not None and not report.applied:
                    self._take_snapshot(conn, run.status_now(), report, snapshot_since)
                if body.transactional:
                    t0 = time.perf_counter()
                    run_up(self.backend, conn, body, run.status_now)
                    duration = ms_since(t0)
                    untouched = reusable is not None and reusable(conn)
                    committing = True
                    run.advance(self.tracker.record(conn, migration, duration, body=body))
                    if not run.todo and run.certifiable():
                        # The last one: certify in its own transaction, and no step after it.
                        self.tracker.store_fingerprint(conn, run.key())
                        run.final = run.status_now()
                    # On a connection this run used before and its migration left untouched, the
                    # marker read at the step's start still holds: nobody else commits while the
                    # lock is held, and a connection's own commits do not change its marker.
                    again = untouched and conn is reused and run.seen is not None
                    run.mark(conn, run.seen if again else self.backend.change_marker(conn))
                else:
                    # Recorded as started and committed before it runs: if the process dies
                    # before the 'applied' row, the next start finds the row, sees the
                    # migration lock free, and refuses to guess (see plan.check).
                    if lock is None or not lock.held:
                        raise StateError(
                            f"Migration {migration.id} runs outside a transaction and needs the migration"
                            " lock, which this run does not hold. Start again."
                        )
                    self.tracker.record(conn, migration, 0.0, state=STARTED, body=body)
                    outside = body
        except self.backend.engine_errors as e:
            run.keep(None)
            conn.close()
            if not committing or migration is None:
                raise
            # A full disk, an I/O error at COMMIT: the migration did not take effect,
            # and it is this migration's failure.
            raise failure(
                self.backend,
                migration,
                e,
                [],
                run.retract(migration),
                outcome="at its commit, and was rolled back; the database is as it was before it",
                advice=_COMMIT_FAILED,
            ) from e
        except LockTimeout as e:
            run.keep(None)
            conn.close()
            if not committing or migration is None:
                raise
            # Readers kept the commit waiting: a lock timeout (as the startup contract
            # says), worded for the migration it held back.
            raise LockTimeout(f"Migration {migration.id} ({migration.location}) was not applied: {e}") from (
                e.__cause__
            )
        except BaseException:
            run.keep(None)
            conn.close()
            raise
        finally:
            if finished:
                run.keep(None)
                conn.close()
        if outside is not None:
            # Its connection is closed by the run, and its rows written through another:
            # the next step reads the tracker in full.
            run.keep(None)
            run.restart(None)
            duration = self._run_outside_transaction(conn, outside, run.status_now(), report)
        elif run.marked:
            # Kept open until the next step holds the lock: its change marker says whether
            # anyone else committed in between. Untouched, the next step runs on it.
            run.keep(conn, reuse=untouched)
        else:
            run.keep(None)
            conn.close()
        report.applied.append(AppliedResult(migration.version, migration.name, duration))
        logger.info("Applied migration %s to %s in %.1f ms.", migration.id, report.database, duration)

    def _run_outside_transaction(
        self, conn: Connection, body: LoadedMigration, status: Status, report: MigrationReport
    ) -> float:
        """Run a non-transactional migration whose 'started' row is committed; record it finished.

        ``conn`` is closed once the migration has run; the 'applied' row is
        written through a new connection. Returns the migration's duration.
        """
        migration = body.migration
        logger.info("Running migration %s on %s outside a transaction.", migration.id, report.database)
        t0 = time.perf_counter()
        try:
            run_outside(self.backend, conn, body, status)
        except BaseException:
            conn.close()  # the step's connection: nothing else closes it
            raise
        duration = ms_since(t0)
        # Recorded through a new connection: the migration's one carries whatever the
        # migration set on it, and is closed first so that none of its locks (an
        # exclusive locking mode keeps them) stands in the way.
        conn.close()
        finish = self.backend.connect()
        failures: tuple[type[Exception], ...] = (*self.backend.engine_errors, LockTimeout)
        try:
            with self.backend.locked_transaction(finish):
                self.tracker.finish(finish, migration.version, duration)
        except failures as e:
            raise failure(
                self.backend,
                migration,
                e,
                [],
                status,
                outcome="outside a transaction; it ran, but recording it as finished failed",
                advice="It stays recorded as started, and selfmigrate will not start until it is resolved:"
                f" check the database, then 'python -m selfmigrate resolve {migration.version} --done'"
                " if its change is complete.",
            ) from e
        finally:
            finish.close()
        return duration

    def _take_snapshot(self, conn: Connection, status: Status, report: MigrationReport, since: float) -> None:
        """Snapshot a non-empty database once per run, holding the write lock, before the first change.

        Inside the lock nobody else can write, so the snapshot (read through a
        second connection, which sees only committed data) is exactly the data
        from before this run's first migration.
        """
        if not self.backup or report.snapshot is not None or report.applied or report.rolled_back:
            return  # off, or not this run's first change
        if not self.backend.has_objects(conn, exclude=self.tracker.own_tables):
            return
        # The oldest tracker row, read inside the lock, is the database's lineage: it
        # ties the snapshot to this database in a folder that several databases share.
        oldest = min(status.applied.values(), key=lambda row: row.version, default=None)
        snapshot = self.backend.snapshot_before_change(
            since=since,
            version=status.current_version,
            oldest=None if oldest is None else (oldest.version, oldest.applied_at, oldest.applied_by),
            table=self.tracker.table,
            directory=self.backup_dir,
            keep=self.backup_keep,
        )
        if snapshot is not None:
            report.snapshot = str(snapshot.path)

    def _explain_interrupted(self, conn: Connection, status: Status) -> None:
        """Raise the interrupted-migration error with what the engine found it left behind.

        ``interrupted_advice(conn)`` is an optional Backend member (PostgreSQL: the
        INVALID index of an interrupted CREATE INDEX CONCURRENTLY).
        """
        advise = getattr(self.backend, "interrupted_advice", None)
        if not status.interrupted or advise is None:
            return
        advice = advise(conn)
        try:
            self._check(status, None)
        except StateError as e:
            if advice:
                e.message += " " + advice.replace("<version>", str(status.interrupted[0].version))
                e.args = (e.message,)
            raise

    def _handle_ahead(self, conn: Connection, status: Status, report: MigrationReport, started: float) -> bool:
        """Apply the ``ahead`` policy to the migrations the database has and this code lacks.

        Logs (compatible ones: INFO; ``"warn"``: WARNING), raises
        :class:`~selfmigrate.AheadError` (``"refuse"``, or ``"rollback"`` when one
        of them cannot be undone from the tracker) or undoes them; returns
        whether it undid any.
        """
        if not status.missing:
            return False  # nothing ahead either (ahead is part of missing)
        from . import ahead as ahead_rules

        database = self.backend.describe()
        for row in status.missing:
            if row not in status.ahead:
                logger.warning("%s", ahead_rules.warning_line(row, database))
        if not status.ahead:
            return False
        if not status.ahead_incompatible:
            logger.info("%s", ahead_rules.compatible_line(status, database))
            return False
        if self.ahead == "warn":
            for row in status.ahead:
                logger.warning("%s", ahead_rules.warning_line(row, database))
            return False
        if self.ahead == "rollback":
            # Decide on one consistent view, under the lock: another worker of the same
            # start may be undoing these right now, and it removes a row and its stored
            # down together. Read apart, the row could still be there and its down gone.
            with self.backend.locked_transaction(conn):
                status = compare(self.registry.migrations, self.tracker.read(conn))
                stored = self._stored_downs(conn, status)
        else:
            stored = self._stored_downs(conn, status)
        undo = ahead_rules.to_undo(status)
        if self.ahead == "refuse" or any(ahead_rules.cannot_undo(row, stored) for row in undo):
            raise ahead_rules.refusal(status, database, self.ahead, stored)
        # Every stored down is checked before the first change.
        for row in undo:
            ahead_rules.load_from_tracker(
                row, stored[row.version], table=self.tracker.rollback_table, database=database
            )
        since = time.time() - (time.perf_counter() - started)
        while True:
            # Each down on a connection of its own, as each migration is.
            step = self.backend.connect()
            try:
                if not self._undo_newest_ahead(step, report, since):
                    break
            finally:
                step.close()
        return True

    def _undo_newest_ahead(self, conn: Connection, report: MigrationReport, since: float) -> bool:
        """Under the write lock, undo the newest migration the ``"rollback"`` policy undoes.

        Re-reads inside the lock: another worker of the same start may have
        undone it already. Returns ``False`` when nothing is left to undo.
        """
        from . import ahead as ahead_rules

        database = self.backend.describe()
        with self.backend.locked_transaction(conn):
            status = compare(self.registry.migrations, self.tracker.read(conn))
            undo = ahead_rules.to_undo(status)
            if not undo:
                return False
            row = undo[0]
            stored = self._stored_downs(conn, status)
            if ahead_rules.cannot_undo(row, stored) is not None:
                raise ahead_rules.refusal(status, database, self.ahead, stored)
            body = ahead_rules.load_from_tracker(
                row, stored[row.version], table=self.tracker.rollback_table, database=database
            )
            self._take_snapshot(conn, status, report, since)
            t0 = time.perf_counter()
            run_down(self.backend, conn, body, status)
            duration = ms_since(t0)
            self.tracker.remove(conn, row.version)
        report.rolled_back.append(AppliedResult(row.version, row.name, duration))
        logger.warning(
            "Rolled back migration %s on %s in %.1f ms%s: this code does not have it and it is not"
            ' compatible (SELFMIGRATE_AHEAD = "rollback").',
            row.id,
            database,
            duration,
            _FROM_TRACKER,
        )
        return True

    def _check(self, status: Status, target: int | None) -> None:
        check(status, target, allow_out_of_order=self.allow_out_of_order, database=self.backend.describe())


def _known(
    certificate: Certified | None,
    migrations: t.Sequence[Migration],
    applied: dict[int, AppliedMigration],
    key: Key | None = None,
) -> set[int]:
    """The applied versions whose files a stored certificate still certifies (see :meth:`Certified.known`).

    :param migrations: the files the certificate was compared with (it holds what it
        found of them).
    :param key: the key of the files against ``applied``, if made already: its rows'
        texts are compared with the certified ones whole.
    """
    if certificate is None:
        return set()
    return certificate.known(applied, None if key is None else (key.versions, key.checksums, key.states))


def _listed(todo: t.Sequence[Migration]) -> str:
    """The pending migrations for the log: all of a few, the count and the ends of many."""
    from .execute import LISTED_LATER, not_attempted

    # The count is in the line already: "54 migration(s) pending: 0001_a … 0055_b".
    return not_attempted(todo) if len(todo) <= LISTED_LATER else f"{todo[0].id} … {todo[-1].id}"


class _Progress:
    """What a run of :meth:`Runner.apply` knows between its steps, so that each step costs
    the same at any N: the rows now, what is left to apply, and the last step's connection
    with its change marker (see :meth:`Backend.change_marker`)."""

    def __init__(
        self,
        *,
        migrations: tuple[Migration, ...],
        status: Status,
        files: Files | None,
        target: int | None,
        certificate: Certified | None = None,
    ) -> None:
        self.migrations = migrations
        self.certificate = certificate
        self.files = files
        self.target = target
        #: The last full comparison; :attr:`applied` and :attr:`todo` moved on from it.
        self.status = status
        self.applied: dict[int, AppliedMigration] = dict(status.applied)
        self.todo: list[Migration] = list(up_to(status.pending, target))
        self.todo.reverse()  # the next one last: taken off in O(1) per step
        self.final: Status | None = None
        self._known = False  # whether applied/todo hold the tracker as of the last step
        self._previous: Connection | None = None
        self._marker: object | None = None
        self._borrowed = False  # the connection to check is the run's own (not to be closed here)
        self._reuse = False  # the connection kept may run the next step (Backend.reusable said so)
        #: The change marker :meth:`unchanged` read on the step's own connection.
        self.seen: object | None = None

    # -- the tracker as this run knows it --------------------------------------------------

    def take(self) -> Connection | None:
        """The connection kept for the next step to run on, if the last step left it untouched."""
        return self._previous if self._reuse else None

    def unchanged(self, backend: Backend, conn: Connection) -> bool:
        """Inside the lock of ``conn``: whether nobody else committed since the last step (then no re-read)."""
        previous, marker, borrowed = self._previous, self._marker, self._borrowed
        self._previous = self._marker = self.seen = None
        self._borrowed = self._reuse = False
        if previous is None:
            return False
        try:
            known = self._known and marker is not None
            # An optional Backend member: the marker of a connection read before (its
            # marker was not None then), cheaper than change_marker.
            again: t.Callable[[Connection], object | None] = getattr(
                backend, "change_marker_again", backend.change_marker
            )
            now = again(previous) if known or previous is conn else None
            if previous is conn:
                self.seen = now
            return known and now == marker
        finally:
            if not borrowed and previous is not conn:
                previous.close()

    def watch(self, conn: Connection, marker: object | None) -> None:
        """Check the first step against ``conn`` (the run's own, read from outside the lock)."""
        self._previous, self._marker, self._borrowed = conn, marker, True
        self._known = marker is not None

    def restart(self, status: Status | None) -> None:
        """Start again from a full comparison (``None``: the next step makes one)."""
        if status is None:
            self._known = False
            return
        self.status = status
        self.applied = dict(status.applied)
        self.todo = list(reversed(up_to(status.pending, self.target)))
        self._known = True

    def advance(self, row: AppliedMigration) -> None:
        """The oldest pending migration was recorded as applied (in the open transaction)."""
        self.todo.pop()
        self.applied[row.version] = row

    def retract(self, migration: Migration) -> Status:
        """``migration``'s transaction failed at its commit: the status without its row.

        :meth:`advance` counted it before the commit; the error must give the version
        the database is at, the one before it.
        """
        row = self.applied.get(migration.version)
        if row is not None and row.state != STARTED:
            del self.applied[migration.version]
            self.todo.append(migration)
        return self.status_now()

    def mark(self, conn: Connection, marker: object | None) -> None:
        """Remember the step's marker, read inside its transaction before it commits."""
        self._marker = marker
        self._known = self._known and marker is not None

    @property
    def marked(self) -> bool:
        """Whether the last step left a change marker (its connection may be kept)."""
        return self._marker is not None

    def keep(self, conn: Connection | None, *, reuse: bool = False) -> None:
        """Keep ``conn`` (a step's, committed) open for the next step's check; close the one kept before.

        :param reuse: the next step runs on ``conn`` itself (see :meth:`take`).
        """
        if self._previous is not None and self._previous is not conn and not self._borrowed:
            self._previous.close()
        self._previous = conn
        self._borrowed = False
        self._reuse = reuse and conn is not None

    def forget(self) -> None:
        """Close whatever the run kept open."""
        self.keep(None)

    # -- views -----------------------------------------------------------------------------

    def status_now(self) -> Status:
        """The status as this run knows it now (built on demand: it costs O(N))."""
        base = self.status
        pending = tuple(m for m in base.pending if m.version not in self.applied)
        newest = max(self.applied) if self.applied else None
        return Status(
            migrations=base.migrations,
            applied=dict(self.applied),
            pending=pending,
            missing=base.missing,
            edited=base.edited,
            out_of_order=tuple(m for m in pending if newest is not None and m.version < newest),
            interrupted=tuple(row for row in self.applied.values() if row.state == STARTED),
        )

    def certifiable(self) -> bool:
        """Whether the state after this step is one the quick check may call up to date."""
        if self.files is None or self.todo or self.status.missing or self.status.interrupted:
            return False
        return len(self.applied) >= len(self.migrations) and all(m.version in self.applied for m in self.migrations)

    def key(self) -> Key:
        """The fingerprint key of the files against the rows now."""
        assert self.files is not None
        return Tracker.key(self.files, self.applied)
