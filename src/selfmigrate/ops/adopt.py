"""Adopting a database that predates selfmigrate: :func:`baseline` and :func:`adopt`.

Holds both tasks and their ``*_plan`` twins (what they would do, changing nothing); each
runs in one locked transaction and re-plans inside it (docs/adopting.rst). Must not name
an engine: it works through a Runner's backend and tracker.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import typing as t
from dataclasses import dataclass

from ..core.tracker import COLUMNS, utc_now, who
from ..errors import ConfigError, DatabaseError, StateError

if t.TYPE_CHECKING:
    from ..backends.base import Connection
    from ..core.migration import Migration
    from ..core.runner import Runner

# The logger keeps the name it had before the package had layers: users configure it.
logger = logging.getLogger("selfmigrate.adopt")

#: A legacy table's entry that names a migration: ``7``, ``0007_add_x`` or ``0007_add_x.sql``.
LEGACY_NAME = re.compile(r"0*(?P<version>[0-9]+)(?:_(?P<slug>[A-Za-z0-9_]*?))?(?:\.(?:sql|py))?")
_NAME_HINTS = ("file", "name", "migration", "version", "script")
_DATE_HINTS = ("date", "time", "applied", "created", "_at", "run")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class BaselinePlan:
    """What :func:`baseline` records."""

    database: str
    #: The version given; every migration up to it is recorded.
    version: int
    #: Migrations to record as applied (without running them), oldest first.
    record: tuple[Migration, ...]
    #: Versions already in the tracker (non-empty only with ``force``).
    already_recorded: tuple[int, ...]


@dataclass(frozen=True)
class LegacyEntry:
    """A migration the legacy table says was applied, matched with its file."""

    migration: Migration
    #: The legacy table's entry as it was (``"0002_add_users.sql"``).
    legacy_name: str
    #: The legacy date, as stored.
    legacy_date: object
    #: The date recorded in selfmigrate's tracker: ISO 8601 UTC if it could
    #: be read as a date, else the legacy text unchanged.
    applied_at: str


@dataclass(frozen=True)
class AdoptionPlan:
    """What :func:`adopt` does."""

    database: str
    #: The home-made table whose history is imported.
    legacy_table: str
    #: Its new name once moved aside.
    rename_to: str
    #: Its column that names migrations, and its date column (``None``: none found).
    name_column: str
    date_column: str | None
    #: How many rows it has (all of them are kept).
    row_count: int
    #: One entry per version it records, oldest first.
    entries: tuple[LegacyEntry, ...]
    #: Migration files it does not mention: pending after the adoption.
    pending: tuple[Migration, ...]
    #: Notes for the operator (duplicate rows, dates that could not be read).
    notes: tuple[str, ...]


def baseline_plan(runner: Runner, version: int, *, force: bool = False) -> BaselinePlan:
    """Say what :func:`baseline` would record; change nothing.

    :raises ConfigError: ``version`` is not a migration's version, the database
        does not exist, or it already has selfmigrate history and ``force`` is
        false.
    """
    conn = runner.backend.connect(create=False)
    try:
        return _baseline_plan(runner, conn, version, force)
    finally:
        conn.close()


def baseline(runner: Runner, version: int, *, force: bool = False) -> BaselinePlan:
    """Record every migration up to ``version`` as applied, without running it.

    For a database whose schema already is at ``version`` (built before
    selfmigrate was used). The rows are written in one transaction under the
    write lock, with the time of the baseline and ``applied_by`` starting with
    ``"baseline"``. With ``force``, a database that already has selfmigrate
    history gets the versions up to ``version`` that it lacks.

    :returns: what was recorded.
    """
    conn = runner.backend.connect(create=False)
    try:
        try:
            with runner.backend.locked_transaction(conn):
                plan = _baseline_plan(runner, conn, version, force)
                runner.tracker.ensure(conn)
                now, by = utc_now(), f"baseline by {who()}"
                for migration in plan.record:
                    runner.tracker.record(conn, migration, 0.0, applied_at=now, applied_by=by)
        except runner.backend.engine_errors as e:
            raise DatabaseError(
                f"Recording the baseline in database {runner.backend.describe()} failed: {e}. Nothing was recorded."
            ) from e
    finally:
        conn.close()
    logger.info(
        "Baseline of database %s: recorded %d migration(s) up to version %d as applied without running them.",
        plan.database,
        len(plan.record),
        version,
    )
    return plan


def _baseline_plan(runner: Runner, conn: Connection, version: int, force: bool) -> BaselinePlan:
    database = runner.backend.describe()
    migrations = runner.registry.migrations
    if runner.registry.get(version) is None:
        raise ConfigError(
            f"No migration file has version {version}. Give the version of the newest migration"
            " the database's schema already has."
        )
    applied = runner.tracker.read(conn)
    if applied and not force:
        raise StateError(
            f"Database {database} already has selfmigrate history (versions"
            f" {_span(sorted(applied))}); baseline is for a database that predates selfmigrate."
            f" Nothing was recorded. To record the versions up to {version} that it lacks, add --force."
        )
    return BaselinePlan(
        database=database,
        version=version,
        record=tuple(m for m in migrations if m.version <= version and m.version not in applied),
        already_recorded=tuple(v for v in sorted(applied) if v <= version),
    )


def adoption_plan(
    runner: Runner,
    *,
    legacy_table: str | None = None,
    rename_to: str | None = None,
    name_column: str | None = None,
    date_column: str | None = None,
) -> AdoptionPlan:
    """Say what :func:`adopt` would do; change nothing. Takes the same arguments."""
    conn = runner.backend.connect(create=False)
    try:
        return _adoption_plan(runner, conn, legacy_table, rename_to, name_column, date_column)
    finally:
        conn.close()


def adopt(
    runner: Runner,
    *,
    legacy_table: str | None = None,
    rename_to: str | None = None,
    name_column: str | None = None,
    date_column: str | None = None,
) -> AdoptionPlan:
    """Import a home-made migration table's history into selfmigrate's tracker.

    Each row of ``legacy_table`` names an applied migration (``0002_users.sql``,
    ``0002_users`` or ``2``); it is matched with the migration file of that
    version, and recorded as applied on its legacy date. The legacy table is then
    renamed to ``rename_to`` — every row kept, nothing altered — and the
    tracker created. All of it happens in one transaction under the write lock:
    either everything is done or nothing.

    :param legacy_table: the home-made table; default: the tracker's name
        (``schema_migrations``).
    :param rename_to: where to move it; default ``<legacy_table>_legacy``.
    :param name_column: its column naming migrations; default: found by name
        and content.
    :param date_column: its column of dates; default: found by name and
        content, else the adoption's time is recorded.
    :returns: what was done.
    :raises ConfigError: no such table, it is already selfmigrate's, a row names
        a version with no file or a file of another name, or ``rename_to`` is
        taken. Nothing is changed.
    """
    conn = runner.backend.connect(create=False)
    try:
        try:
            with runner.backend.locked_transaction(conn):
                plan = _adoption_plan(runner, conn, legacy_table, rename_to, name_column, date_column)
                conn.execute(f'ALTER TABLE "{plan.legacy_table}" RENAME TO "{plan.rename_to}"')
                (kept,) = conn.execute(f'SELECT count(*) FROM "{plan.rename_to}"').fetchone()
                if kept != plan.row_count:  # a rename keeps every row; checked all the same
                    raise StateError(f"Moving {plan.legacy_table} aside kept {kept} of {plan.row_count} rows; undone.")
                runner.tracker.ensure(conn)
                by = f"adopted from {plan.rename_to} by {who()}"
                for entry in plan.entries:
                    runner.tracker.record(conn, entry.migration, 0.0, applied_at=entry.applied_at, applied_by=by)
        except runner.backend.engine_errors as e:
            raise DatabaseError(
                f"Adopting the history of database {runner.backend.describe()} failed: {e}."
                " Nothing was changed: the legacy table is as it was."
            ) from e
    finally:
        conn.close()
    logger.info(
        "Adopted database %s: imported %d migration(s) from %s, which is now %s (%d rows kept).",
        plan.database,
        len(plan.entries),
        plan.legacy_table,
        plan.rename_to,
        plan.row_count,
    )
    return plan


def _adoption_plan(
    runner: Runner,
    conn: Connection,
    legacy_table: str | None,
    rename_to: str | None,
    name_column: str | None,
    date_column: str | None,
) -> AdoptionPlan:
    backend, tracker = runner.backend, runner.tracker
    database = backend.describe()
    legacy = legacy_table or tracker.table
    target = rename_to or f"{legacy}_legacy"
    for what, name in (("legacy table", legacy), ("new name", target)):
        if not _IDENTIFIER.fullmatch(name):
            raise ConfigError(f"The {what} {name!r} is not a plain SQL identifier (letters, digits, underscores).")
    columns = backend.table_columns(conn, legacy)
    if columns is None:
        raise ConfigError(
            f"Database {database} has no table {legacy}; nothing to adopt. Name the home-made"
            " migration table with --legacy-table, or use 'baseline --version N' if there is none."
        )
    if tuple(columns) == COLUMNS:
        raise ConfigError(
            f"Table {legacy} in database {database} already is selfmigrate's tracker; nothing to adopt."
        )
    if backend.table_columns(conn, target) is not None:
        raise ConfigError(
            f"Database {database} already has a table {target}, so {legacy} cannot be moved there."
            " Choose another name with --rename-to."
        )
    if legacy != tracker.table and tracker.read(conn):
        raise StateError(
            f"Database {database} already has selfmigrate history in {tracker.table}; adopting"
            f" {legacy} would mix two histories. Nothing was changed."
        )
    rows = [dict(zip(columns, row, strict=True)) for row in conn.execute(f'SELECT * FROM "{legacy}"')]
    name_col = _name_column(columns, rows, name_column, legacy, database)
    date_col = _date_column(columns, rows, date_column, name_col, legacy)
    notes: list[str] = []
    if date_col is None:
        notes.append(f"{legacy} has no date column; the time of the adoption is recorded instead.")
    by_version: dict[int, LegacyEntry] = {}
    unknown: list[str] = []
    renamed: list[str] = []
    unreadable: list[str] = []
    for row in rows:
        raw = row[name_col]
        if raw is None:
            notes.append(f"A row of {legacy} has no {name_col}; it is kept in {target} but not imported.")
            continue
        match = LEGACY_NAME.fullmatch(str(raw).strip())
        assert match is not None  # _name_column checked every value
        migration = runner.registry.get(int(match["version"]))
        if migration is None:
            unknown.append(str(raw))
            continue
        if match["slug"] and match["slug"] != migration.name:
            renamed.append(f"{raw} → {migration.filename}")
            continue
        legacy_date = row[date_col] if date_col is not None else None
        applied_at = _iso_date(legacy_date)
        if applied_at is None:
            if legacy_date is not None:
                unreadable.append(str(legacy_date))
            applied_at = str(legacy_date) if legacy_date is not None else utc_now()
        entry = LegacyEntry(migration, str(raw), legacy_date, applied_at)
        earlier = by_version.get(migration.version)
        if earlier is not None:
            notes.append(f"{legacy} records version {migration.version} more than once; the earliest date is kept.")
            if earlier.applied_at <= entry.applied_at:
                continue
        by_version[migration.version] = entry
    if unknown:
        raise ConfigError(
            f"{legacy} in database {database} records migrations that have no file of their"
            f" version: {', '.join(unknown)}. Nothing was changed. Add those files to the migrations"
            " (with the change they made) and adopt again."
        )
    if renamed:
        raise ConfigError(
            f"{legacy} in database {database} names migrations differently from the files of the"
            f" same version: {', '.join(renamed)}. Nothing was changed. If they are the same"
            " migrations, rename the files to the recorded names; if not, renumber the files."
        )
    if unreadable:
        notes.append(f"Dates not read as dates, recorded as written: {', '.join(unreadable)}.")
    entries = tuple(by_version[v] for v in sorted(by_version))
    return AdoptionPlan(
        database=database,
        legacy_table=legacy,
        rename_to=target,
        name_column=name_col,
        date_column=date_col,
        row_count=len(rows),
        entries=entries,
        pending=tuple(m for m in runner.registry.migrations if m.version not in by_version),
        notes=tuple(dict.fromkeys(notes)),
    )


def _name_column(
    columns: list[str], rows: list[dict[str, object]], given: str | None, table: str, database: str
) -> str:
    def names_migrations(column: str) -> bool:
        values = [row[column] for row in rows if row[column] is not None]
        return bool(values) and all(LEGACY_NAME.fullmatch(str(v).strip()) for v in values)

    if given is not None:
        if given not in columns:
            raise ConfigError(f"Table {table} has no column {given}; its columns: {', '.join(columns)}.")
        if rows and not names_migrations(given):
            raise ConfigError(
                f"Column {given} of {table} does not name migrations in every row (expected"
                " 0007_add_x.sql, 0007_add_x or 7). Choose another with --name-column."
            )
        return given
    if not rows:  # an empty history: any column will do, nothing is imported
        return next((c for c in columns if any(h in c.lower() for h in _NAME_HINTS)), columns[0])
    candidates = [c for c in columns if names_migrations(c)]
    if not candidates:
        raise ConfigError(
            f"No column of {table} in database {database} names migrations in every row"
            f" (columns: {', '.join(columns)}). Name it with --name-column."
        )
    hinted = [c for c in candidates if any(h in c.lower() for h in _NAME_HINTS)]
    with_slugs = [c for c in candidates if any("_" in str(row[c]) for row in rows)]
    return (hinted or with_slugs or candidates)[0]


def _date_column(
    columns: list[str], rows: list[dict[str, object]], given: str | None, name_col: str, table: str
) -> str | None:
    if given is not None:
        if given not in columns:
            raise ConfigError(f"Table {table} has no column {given}; its columns: {', '.join(columns)}.")
        return given
    others = [c for c in columns if c != name_col]
    dated = [c for c in others if rows and all(_iso_date(row[c]) is not None for row in rows if row[c] is not None)]
    hinted = [c for c in others if any(h in c.lower() for h in _DATE_HINTS)]
    for column in hinted:
        if column in dated:
            return column
    return hinted[0] if hinted else (dated[0] if dated else None)


def _iso_date(value: object) -> str | None:
    """A legacy date as ISO 8601 UTC, or ``None`` if it does not read as one.

    ISO 8601 text (``2024-03-01 12:00:00``, SQLite's ``CURRENT_TIMESTAMP``)
    without a time zone is taken as UTC, as SQLite writes it; numbers are Unix
    times in seconds (from 1973 on, so that ids do not pass for dates).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if not 1e8 < value < 32503680000:  # 1973 to 3000: small numbers are ids, not times
            return None
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat()
    if not isinstance(value, str) or not value.strip() or not value.strip()[:4].isdigit():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat()


def _span(versions: list[int]) -> str:
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}–{versions[-1]}"
