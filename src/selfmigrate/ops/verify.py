"""Checking migrations without applying them: :func:`verify`, for CI and operators.

Holds every check startup makes, as a list of problems: the files (names, duplicates,
each loads, gaps) and, given a database, how it compares with them. Writes nothing;
must not know an engine (it reads the database through a Runner).
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass

from ..config import DEFAULT_TABLE
from ..errors import DiscoveryError, SelfMigrateError

if t.TYPE_CHECKING:
    from ..core.locations import LocationsSpec
    from ..core.migration import Migration
    from ..core.registry import MigrationRegistry

Severity = t.Literal["error", "warning"]
#: Problems about the files (``"files"``) or about a database against them (``"database"``).
Area = t.Literal["files", "database"]


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify` found."""

    #: A short tag: ``discovery``, ``load``, ``gap``, ``lint``, ``edited``,
    #: ``out-of-order``, ``missing`` or ``interrupted``.
    kind: str
    #: ``"error"`` (startup would refuse) or ``"warning"`` (startup would go on).
    severity: Severity
    area: Area
    #: What is wrong, where, and what to do.
    message: str


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`."""

    #: The migration files found (empty if discovery failed).
    migrations: tuple[Migration, ...]
    #: The database checked, or ``None`` when only the files were.
    database: str | None
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems startup would refuse to go on with."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The problems startup would only log."""
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        """Whether nothing startup would refuse was found."""
        return not self.errors


def verify(
    migrations: MigrationRegistry | LocationsSpec,
    database: str | os.PathLike[str] | None = None,
    *,
    table: str = DEFAULT_TABLE,
    allow_out_of_order: bool = False,
    lint: bool = True,
    certify: bool = False,
) -> Verification:
    """Check migration files, and a database against them if one is given.

    Files: names follow the rule, no two share a version, every file loads
    (not empty; a ``.py`` file compiles, imports and defines ``up``), and gaps
    in the numbering (a warning: a deleted or renumbered file?). Database:
    edited migrations, pending migrations older than the newest applied one
    (an error unless ``allow_out_of_order``), interrupted ones (errors), and
    applied migrations whose file is missing (a warning, as at startup).

    With ``lint`` (the default) and every file loading, the findings of
    :func:`selfmigrate.ops.lint.lint` are problems too, of kind ``lint``: its
    errors are errors, its warnings warnings (accepted findings are left out).
    An engine without a linter is not linted.

    :param certify: when the database is up to date with the files, store their
        fingerprint for the next start's quick check (what the ``verify`` command
        does; only if the write lock is free at once). Nothing else is written.
    :raises DatabaseError: the database cannot be opened or does not exist.
    :raises TrackerError: its tracker table has a foreign layout.
    """
    from ..core.registry import MigrationRegistry
    from ..core.runner import Runner

    registry = migrations if isinstance(migrations, MigrationRegistry) else MigrationRegistry(migrations)
    problems: list[Problem] = []
    try:
        found = registry.migrations
    except DiscoveryError as e:
        return Verification((), None if database is None else os.fspath(database), (_problem("discovery", e),))
    for migration in found:
        try:
            migration.load()
        except SelfMigrateError as e:
            problems.append(_problem("load", e))
    if lint and not problems:  # the linter loads every file: only once they all load
        problems.extend(_lint(registry, database))
    problems.extend(_gaps(found))
    if database is None:
        return Verification(found, None, tuple(problems))
    runner = Runner(database, registry, table=table)
    status = runner.status()
    where = runner.backend.describe()
    for migration, row in status.edited:
        problems.append(
            Problem(
                "edited",
                "error",
                "database",
                f"{migration.location} was edited after it was applied to {where} ({row.applied_at})."
                " Undo the edit and make the change in a new migration, or record the new checksum"
                f" with 'rehash {migration.version}' if the edit is cosmetic.",
            )
        )
    if status.out_of_order:
        names = ", ".join(m.location for m in status.out_of_order)
        problems.append(
            Problem(
                "out-of-order",
                "warning" if allow_out_of_order else "error",
                "database",
                f"{where} is at version {status.current_version}, but older migrations are pending:"
                f" {names}. Renumber them after the newest applied version, or allow out-of-order"
                " migrations.",
            )
        )
    for row in status.interrupted:
        problems.append(
            Problem(
                "interrupted",
                "error",
                "database",
                f"Migration {row.id} was started on {where} outside a transaction ({row.applied_at})"
                f" and never finished. Check the database, then 'resolve {row.version} --done' or"
                " '--retry'.",
            )
        )
    for row in status.missing:
        problems.append(
            Problem(
                "missing",
                "warning",
                "database",
                f"Migration {row.id} is applied to {where} ({row.applied_at}) but has no file: the"
                " database is ahead of this code (a rolled-back deploy?), or the file was deleted.",
            )
        )
    if certify and status.up_to_date and not any(p.severity == "error" for p in problems):
        runner.certify()
    return Verification(found, where, tuple(problems))


def _lint(registry: MigrationRegistry, database: str | os.PathLike[str] | None) -> list[Problem]:
    from ..backends.select import job
    from .lint import lint

    if job(database, "lint", what=None) is None:
        return []  # the engine has no linter
    return [
        Problem("lint", "error" if f.level == "error" else "warning", "files", str(f))
        for f in lint(registry, database=database).findings
        if f.level != "info"
    ]


def _problem(kind: str, error: SelfMigrateError) -> Problem:
    return Problem(kind, "error", "files", str(error))


def _gaps(migrations: tuple[Migration, ...]) -> list[Problem]:
    problems = []
    for before, after in zip(migrations, migrations[1:], strict=False):
        if after.version > before.version + 1:
            missing = (
                str(before.version + 1)
                if after.version == before.version + 2
                else f"{before.version + 1}–{after.version - 1}"
            )
            problems.append(
                Problem(
                    "gap",
                    "warning",
                    "files",
                    f"No migration has version {missing} (between {before.location} and"
                    f" {after.location}). Was a file deleted or renumbered?",
                )
            )
    return problems
