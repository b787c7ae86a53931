"""Checks of a project's own migrations, as plain functions; the model is pytest-alembic's.

Holds :func:`schema_diff` (two schemas, one line per difference) and
:func:`edited_migrations`; the round trip is in :mod:`.roundtrip`, the ready-made tests
in :mod:`selfmigrate.pytest_checks`. Must not know pytest, nor an engine's catalogue.
"""

from __future__ import annotations

import os
import typing as t

from ..backends.base import Schema as Schema
from ..backends.base import SchemaObject as SchemaObject
from ..config import DEFAULT_TABLE
from ..core.runner import Runner

if t.TYPE_CHECKING:
    from ..core.locations import LocationsSpec
    from ..core.migration import Migration
    from ..core.registry import MigrationRegistry
    from ..core.tracker import AppliedMigration


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
