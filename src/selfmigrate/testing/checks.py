"""Checks of a project's own migrations; the model is pytest-alembic's built-in tests.

Plain functions that return what they found: the ready-made tests in
:mod:`selfmigrate.pytest_checks` are thin wrappers around them, and other test
runners can call them too.

- :func:`check_round_trips`: every migration with a down goes up, down and up
  again on a fresh database, and the schema after each step is compared (through
  ``sqlite_master`` and ``PRAGMA table_info``) with what it should be.
- :func:`edited_migrations`: the applied migrations of a given database whose
  files were edited since.
- :func:`schema` and :func:`schema_diff`: the comparison itself.
"""

from __future__ import annotations

import os
import re
import sqlite3
import typing as t
from dataclasses import dataclass, field

from .defaults import DEFAULT_TABLE
from .errors import SelfMigrateError
from .registry import LocationsSpec, MigrationRegistry
from .runner import Runner

if t.TYPE_CHECKING:
    from .migration import Migration
    from .tracker import AppliedMigration


@dataclass(frozen=True)
class SchemaObject:
    """One table, index, view or trigger, as far as a round trip compares it."""

    #: ``"table"``, ``"index"``, ``"view"`` or ``"trigger"``.
    type: str
    #: The table it belongs to (its own name for a table).
    table: str
    #: Its ``CREATE`` statement, normalised (see :func:`normalise_sql`).
    sql: str
    #: For a table, ``PRAGMA table_info``: (name, type, notnull, default, pk) per column.
    columns: tuple[tuple[object, ...], ...] = ()


#: A database's schema: object name → :class:`SchemaObject`.
Schema = dict[str, SchemaObject]

_SPACE = re.compile(r"\s+")
_SPACE_AROUND = re.compile(r"\s*([(),;])\s*")
_QUOTES = re.compile(r"[\"`\[\]]")


def normalise_sql(sql: str | None) -> str:
    """``sql`` with runs of white space, spaces around ``( ) , ;`` and identifier quotes removed.

    SQLite keeps ``CREATE`` statements as written, and rewrites them when a table
    is altered or renamed (``ALTER TABLE new_t RENAME TO t`` stores ``"t"``); a
    round trip that rebuilds a table should not fail on quoting or layout.
    """
    if sql is None:
        return ""
    text = _QUOTES.sub("", sql)
    text = _SPACE.sub(" ", text).strip()
    return _SPACE_AROUND.sub(r"\1", text)


def schema(conn: sqlite3.Connection, *, exclude: t.Collection[str] = ()) -> Schema:
    """Read the schema of ``conn``'s main database.

    SQLite's own objects (``sqlite_sequence``, automatic indexes) and the tables
    named in ``exclude`` (the tracker) and their indexes are left out.
    """
    found: Schema = {}
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
    for kind, name, table, sql in rows:
        if name.startswith("sqlite_") or name in exclude or table in exclude:
            continue
        columns: tuple[tuple[object, ...], ...] = ()
        if kind == "table":
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = tuple(tuple(row[1:]) for row in info)
        found[name] = SchemaObject(kind, table, normalise_sql(sql), columns)
    return found


def read_schema(database: str | os.PathLike[str], *, exclude: t.Collection[str] = ()) -> Schema:
    """:func:`schema` of a database file (opened for reading only)."""
    conn = sqlite3.connect(database)
    try:
        return schema(conn, exclude=exclude)
    finally:
        conn.close()


def schema_diff(expected: Schema, actual: Schema) -> list[str]:
    """The differences between two schemas, one readable line each (empty: same)."""
    lines: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        if got is None:
            assert want is not None
            lines.append(f"{want.type} {name} is missing")
        elif want is None:
            lines.append(f"{got.type} {name} should not be there")
        elif want.columns != got.columns:
            lines.append(
                f"{want.type} {name}: columns should be {_columns(want.columns)}, are {_columns(got.columns)}"
            )
        elif want != got:
            lines.append(f"{want.type} {name}: should be {want.sql!r}, is {got.sql!r}")
    return lines


def _columns(columns: tuple[tuple[object, ...], ...]) -> str:
    return "(" + ", ".join(" ".join(str(part) for part in col[:2] if part) for col in columns) + ")"


@dataclass
class RoundTripReport:
    """What :func:`check_round_trips` found."""

    #: Migrations that went up, down and up again with the expected schema.
    checked: list[str] = field(default_factory=list)
    #: Migrations without a down (applied, not round-tripped).
    without_down: list[str] = field(default_factory=list)
    #: The first problem, naming the migration and what differed; ``None``: all fine.
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every migration with a down round-tripped."""
        return self.problem is None


def check_round_trips(
    database: str | os.PathLike[str],
    migrations: MigrationRegistry | LocationsSpec,
    *,
    table: str = DEFAULT_TABLE,
) -> RoundTripReport:
    """Walk a new database through every migration, round-tripping each one with a down.

    For each migration in version order: note the schema, apply it, note the
    schema; if it has a down, roll it back and compare with the schema before,
    then apply it again and compare with the schema after. The walk stops at the
    first problem (the database is then in no known state).

    :param database: a database file that does not exist yet (it is created).
    :returns: what was checked, and the first problem, if any.
    """
    runner = Runner(database, migrations, table=table, backup=False)
    report = RoundTripReport()
    exclude = (table, f"{table}_fingerprint")  # selfmigrate's own tables
    for migration in runner.registry.migrations:
        before = _schema_of(runner, exclude)
        problem = _up(runner, migration, "applying it")
        if problem:
            report.problem = problem
            break
        after = read_schema(database, exclude=exclude)
        if not migration.load().has_down:
            report.without_down.append(migration.id)
            continue
        try:
            runner.rollback(steps=1)
        except SelfMigrateError as e:
            report.problem = f"Migration {migration.id} ({migration.location}): its down failed.\n{e}"
            break
        differences = schema_diff(before, read_schema(database, exclude=exclude))
        if differences:
            report.problem = _mismatch(migration, "up then down does not give back the schema before it", differences)
            break
        problem = _up(runner, migration, "applying it again after its down")
        if problem:
            report.problem = problem
            break
        differences = schema_diff(after, read_schema(database, exclude=exclude))
        if differences:
            report.problem = _mismatch(migration, "up, down, up does not give the schema of the first up", differences)
            break
        report.checked.append(migration.id)
    return report


def _schema_of(runner: Runner, exclude: t.Collection[str]) -> Schema:
    if not runner.backend.exists():
        return {}
    return read_schema(runner.backend.path, exclude=exclude)


def _up(runner: Runner, migration: Migration, doing: str) -> str | None:
    try:
        runner.apply(target=migration.version)
    except SelfMigrateError as e:
        return f"Migration {migration.id} ({migration.location}): {doing} failed.\n{e}"
    return None


def _mismatch(migration: Migration, what: str, differences: list[str]) -> str:
    listed = "\n  ".join(differences)
    return (
        f"Migration {migration.id} ({migration.location}): {what}:\n  {listed}\n"
        "Make its down undo exactly what its up does."
    )


def edited_migrations(
    database: str | os.PathLike[str],
    migrations: MigrationRegistry | LocationsSpec,
    *,
    table: str = DEFAULT_TABLE,
) -> tuple[tuple[Migration, AppliedMigration], ...]:
    """The migrations applied to ``database`` whose files changed since; reads only.

    :raises DatabaseError: the database does not exist (it is never created).
    """
    return Runner(database, migrations, table=table).status().edited
