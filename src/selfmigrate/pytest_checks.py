"""Ready-made tests of a project's migrations; import them into a test module to run them.

In ``tests/test_migrations.py``::

    from selfmigrate.pytest_checks import (
        test_applied_migrations_unchanged,
        test_migration_versions_unique,
        test_migrations_apply_from_empty,
        test_migrations_lint,
        test_migrations_round_trip,
    )

pytest collects test functions a module imports, so each becomes a test of that
module. They check the migrations of the ``selfmigrate_migrations`` fixture
(the ini option, or a conftest.py override) with the ``selfmigrate_table``:

- :func:`test_migration_versions_unique`: every file follows the naming rule and
  no two share a version;
- :func:`test_migrations_apply_from_empty`: all migrations apply, in order, to a
  new database;
- :func:`test_migrations_round_trip`: each migration with a down goes up, down
  and up again and leaves the same schema (see
  :func:`selfmigrate.testing.roundtrip.check_round_trips`);
- :func:`test_migrations_lint`: :func:`selfmigrate.ops.lint.lint` finds no error
  and no warning that a ``migrate:accept`` comment does not accept;
- :func:`test_applied_migrations_unchanged`: no migration applied to the
  database of the ``selfmigrate_check_database`` fixture (ini option
  ``selfmigrate_check_database``, e.g. a copy of production) was edited since;
  skipped when there is none.
"""

from __future__ import annotations

import typing as t

import pytest

from .core.registry import MigrationRegistry
from .errors import SelfMigrateError
from .startup import migrate
from .testing.checks import edited_migrations
from .testing.roundtrip import check_round_trips

if t.TYPE_CHECKING:
    from pathlib import Path

    from .core.locations import LocationsSpec

__all__ = [
    "test_applied_migrations_unchanged",
    "test_migration_versions_unique",
    "test_migrations_apply_from_empty",
    "test_migrations_lint",
    "test_migrations_round_trip",
]


def test_migration_versions_unique(selfmigrate_migrations: LocationsSpec) -> None:
    """Every migration file follows the naming rule and has a version of its own."""
    try:
        MigrationRegistry(selfmigrate_migrations).migrations  # noqa: B018 - discovery is the check
    except SelfMigrateError as e:
        pytest.fail(str(e), pytrace=False)


def test_migrations_apply_from_empty(
    selfmigrate_migrations: LocationsSpec, selfmigrate_table: str, tmp_path: Path
) -> None:
    """Every migration applies, in version order, to a new database."""
    registry = MigrationRegistry(selfmigrate_migrations)
    try:
        report = migrate(tmp_path / "from_empty.sqlite", registry, table=selfmigrate_table, backup=False)
    except SelfMigrateError as e:
        pytest.fail(str(e), pytrace=False)
    assert report.current_version == registry.head


def test_migrations_round_trip(selfmigrate_migrations: LocationsSpec, selfmigrate_table: str, tmp_path: Path) -> None:
    """Each migration with a down goes up, down and up again, leaving the same schema."""
    report = check_round_trips(tmp_path / "round_trip.sqlite", selfmigrate_migrations, table=selfmigrate_table)
    if report.problem is not None:
        pytest.fail(report.problem, pytrace=False)


def test_migrations_lint(selfmigrate_migrations: LocationsSpec) -> None:
    """The linter finds nothing (errors and warnings) that a ``migrate:accept`` comment does not accept."""
    from .ops.lint import lint

    try:
        report = lint(selfmigrate_migrations)
    except SelfMigrateError as e:
        pytest.fail(str(e), pytrace=False)
    failing = report.failing(strict=True)
    if failing:
        lines = "\n".join(str(f) for f in failing)
        pytest.fail(
            f"The linter found {len(failing)} problem(s) in the migrations (see docs/lint.rst):\n{lines}\n"
            "Fix them, or accept one for its file with a comment line '-- migrate:accept CODE'"
            " ('# migrate:accept CODE' in a .py file).",
            pytrace=False,
        )


def test_applied_migrations_unchanged(
    selfmigrate_migrations: LocationsSpec, selfmigrate_table: str, selfmigrate_check_database: Path | None
) -> None:
    """No migration applied to the check database was edited after it was applied."""
    if selfmigrate_check_database is None:
        pytest.skip("no database to compare with: set the ini option selfmigrate_check_database")
    try:
        edited = edited_migrations(selfmigrate_check_database, selfmigrate_migrations, table=selfmigrate_table)
    except SelfMigrateError as e:
        pytest.fail(str(e), pytrace=False)
    if edited:
        lines = "\n  ".join(f"{m.location} (version {m.version}, applied {row.applied_at})" for m, row in edited)
        pytest.fail(
            f"These migrations were edited after they were applied to {selfmigrate_check_database}:\n"
            f"  {lines}\n"
            "Undo the edit and make the change in a new migration ('python -m selfmigrate create"
            " \"message\"'); if the edit is cosmetic, record the new checksum on that database"
            " with 'python -m selfmigrate rehash VERSION'.",
            pytrace=False,
        )
