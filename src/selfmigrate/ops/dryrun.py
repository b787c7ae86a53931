"""A dry run on a copy of the real data: :func:`dry_run`, and the report it returns.

Holds the engine-neutral part: copy (the engine's ``dryrun`` module, through
backends.select), apply the pending migrations to the copy one at a time with the
:class:`~selfmigrate.Runner` (snapshots off), and report each one's outcome, duration
and rows changed per table. Must not know an engine nor a face.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

from ..config import DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE
from ..errors import DatabaseError, MigrationError, SelfMigrateError

if t.TYPE_CHECKING:
    import os

    from ..core.locations import LocationsSpec
    from ..core.migration import Migration
    from ..core.registry import MigrationRegistry


@dataclass(frozen=True)
class TableChange:
    """What one migration did to the rows of one table."""

    table: str
    #: Rows before the migration (``None``: the table did not exist).
    rows_before: int | None
    #: Rows after it (``None``: the migration dropped the table).
    rows_after: int | None
    inserted: int
    deleted: int
    updated: int

    @property
    def changed(self) -> int:
        """Rows inserted, deleted or updated."""
        return self.inserted + self.deleted + self.updated


@dataclass(frozen=True)
class DryRunStep:
    """One migration of a dry run."""

    migration: Migration
    #: Whether it applied to the copy.
    ok: bool
    #: How long the migration ran (its transaction) on the copy; for a failed
    #: one, the whole attempt.
    duration_ms: float
    #: The error the real run would raise (``None`` when it succeeded).
    error: SelfMigrateError | None
    #: The tables whose rows it changed (or that it created or dropped).
    changes: tuple[TableChange, ...]


@dataclass(frozen=True)
class DryRunReport:
    """The result of :func:`dry_run`."""

    #: The real database (never written).
    database: str
    #: Its version before (and, since it is never written, after) the dry run.
    current_version: int | None
    steps: tuple[DryRunStep, ...]
    #: Pending migrations after a failed one, not attempted (as in a real run).
    not_attempted: tuple[Migration, ...]
    #: The size of the copy, in bytes.
    copy_size: int

    @property
    def ok(self) -> bool:
        """Whether every pending migration would apply."""
        return all(step.ok for step in self.steps)

    @property
    def failed(self) -> DryRunStep | None:
        """The step that failed, if one did."""
        return next((step for step in self.steps if not step.ok), None)


def dry_run(
    database: str | os.PathLike[str],
    migrations: MigrationRegistry | LocationsSpec,
    *,
    target: int | None = None,
    table: str = DEFAULT_TABLE,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    allow_out_of_order: bool = False,
    directory: str | os.PathLike[str] | None = None,
) -> DryRunReport:
    """Apply the pending migrations to a temporary copy of ``database`` and report each one.

    A migration that fails is a failed step of the report (with the
    :class:`~selfmigrate.MigrationError` the real run would raise), not
    an exception; later ones are not attempted. The copy is deleted afterwards,
    also when a migration fails or the run is interrupted; the real database is
    only read.

    :param directory: where the copy goes (default: the database's folder, which
        has room for the snapshots ``apply`` takes anyway; the system's temporary
        folder is often a small in-memory file system).
    :raises DatabaseError: the database does not exist or cannot be read.
    :raises BackupError: the copy cannot be written (no room, no permission).
    :raises ConfigError: the database's engine has no dry run.
    :raises SelfMigrateError: what ``apply`` would raise before its first change
        (edited or out-of-order migrations, a bad target, a file that does not
        load), worded for the real database.
    """
    from ..backends.select import job, open_backend
    from ..core.registry import MigrationRegistry
    from ..core.runner import Runner

    engine = job(database, "dryrun", what="A dry run")
    real = open_backend(database, lock_timeout=lock_timeout)
    registry = migrations if isinstance(migrations, MigrationRegistry) else MigrationRegistry(migrations)
    where = real.describe()
    if real.missing():
        raise DatabaseError(
            f"Database {where} does not exist, so there is nothing to copy for a dry run; 'apply' would create it"
            f" and apply all {len(registry.migrations)} migration(s). Check the path."
        )
    with engine.ScratchCopy(database, directory, lock_timeout=lock_timeout) as copy:
        runner = Runner(
            copy.location,
            registry,
            table=table,
            lock_timeout=lock_timeout,
            allow_out_of_order=allow_out_of_order,
            backup=False,
        )
        here = runner.backend.describe()
        try:
            todo = runner.plan(target=target)
            current = runner.status().current_version
        except SelfMigrateError as e:
            raise _reworded(e, here, where) from e.__cause__
        # selfmigrate's own tables change on every apply; they are not the migrations' rows.
        exclude = set(runner.tracker.own_tables)
        steps: list[DryRunStep] = []
        files = {m.version: m for m in runner.registry.migrations}
        remaining = [body.migration for body in todo]
        while remaining:
            migration = remaining[0]
            # Out-of-order migrations (when allowed) cannot be targeted one by one: the
            # runner refuses a target below the current version, so they go together.
            step_target = migration.version if current is None else max(migration.version, current)
            before = copy.tables(exclude)
            started = time.perf_counter()
            try:
                report = runner.apply(target=step_target)
            except MigrationError as e:
                elapsed = (time.perf_counter() - started) * 1000.0
                done = e.report.applied if e.report is not None else []
                steps.extend(DryRunStep(files[r.version], True, r.duration_ms, None, ()) for r in done)
                failed = files.get(e.version, migration)
                steps.append(DryRunStep(failed, False, elapsed, _reworded(e, here, where), ()))
                applied = {r.version for r in done} | {failed.version}
                remaining = [m for m in remaining if m.version not in applied]
                return DryRunReport(where, current, tuple(steps), tuple(remaining), copy.size())
            except SelfMigrateError as e:
                raise _reworded(e, here, where) from e.__cause__
            changes = tuple(TableChange(*change) for change in engine.changes(before, copy.tables(exclude, before)))
            for index, result in enumerate(report.applied):
                last = index == len(report.applied) - 1
                steps.append(DryRunStep(files[result.version], True, result.duration_ms, None, changes if last else ()))
            applied = {r.version for r in report.applied}
            if not applied:  # pragma: no cover - the plan said it was pending
                break
            remaining = [m for m in remaining if m.version not in applied]
        return DryRunReport(where, current, tuple(steps), (), copy.size())


def _reworded(error: SelfMigrateError, copy: str, real: str) -> SelfMigrateError:
    """``error`` with the copy's name replaced by the real database's, as the real run words it."""
    error.message = error.message.replace(copy, real)
    error.args = (error.message,)
    return error
