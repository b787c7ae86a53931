"""The round trip of every migration with a down: up, down, up, comparing the schema each time.

Holds :func:`check_round_trips` and its :class:`RoundTripReport`, which
:mod:`selfmigrate.pytest_checks` and other test runners call. Must not know pytest; the
schema is read through the runner's backend.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass, field

from ..config import DEFAULT_TABLE
from ..core.runner import Runner
from ..errors import SelfMigrateError
from .checks import schema_diff

if t.TYPE_CHECKING:
    from ..core.locations import LocationsSpec
    from ..core.migration import Migration
    from ..core.registry import MigrationRegistry


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
    exclude = runner.tracker.own_tables
    for migration in runner.registry.migrations:
        before = runner.backend.read_schema(exclude=exclude)
        problem = _up(runner, migration, "applying it")
        if problem:
            report.problem = problem
            break
        after = runner.backend.read_schema(exclude=exclude)
        if not migration.load().has_down:
            report.without_down.append(migration.id)
            continue
        try:
            runner.rollback(steps=1)
        except SelfMigrateError as e:
            report.problem = f"Migration {migration.id} ({migration.location}): its down failed.\n{e}"
            break
        differences = schema_diff(before, runner.backend.read_schema(exclude=exclude))
        if differences:
            report.problem = _mismatch(migration, "up then down does not give back the schema before it", differences)
            break
        problem = _up(runner, migration, "applying it again after its down")
        if problem:
            report.problem = problem
            break
        differences = schema_diff(after, runner.backend.read_schema(exclude=exclude))
        if differences:
            report.problem = _mismatch(migration, "up, down, up does not give the schema of the first up", differences)
            break
        report.checked.append(migration.id)
    return report


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
