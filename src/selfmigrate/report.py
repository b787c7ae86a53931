"""What a migration run did: :class:`MigrationReport`."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from .errors import SelfMigrateError


@dataclass(frozen=True)
class AppliedResult:
    """One migration this run applied (or rolled back)."""

    version: int
    name: str
    duration_ms: float

    @property
    def id(self) -> str:
        """``"0002_add_column"``."""
        return f"{self.version:04d}_{self.name}"


@dataclass
class MigrationReport:
    """The outcome of :func:`selfmigrate.migrate` or :func:`selfmigrate.apply`.

    A run that raised carries its report on the error (``error.report``); a run
    under the ``"log"`` failure policy returns it with :attr:`error` set.
    """

    #: The database, as a path.
    database: str
    #: Migrations this run applied, in order, with their durations.
    applied: list[AppliedResult] = field(default_factory=list)
    #: The newest applied version after the run (``None``: no history).
    current_version: int | None = None
    #: Versions still pending after the run (non-empty only after a failure).
    pending: tuple[int, ...] = ()
    #: The error that stopped the run, under the ``"log"`` failure policy.
    error: SelfMigrateError | None = None
    #: How long the whole run took.
    duration_ms: float = 0.0
    #: The snapshot of the database from before this run's first change: taken
    #: by this run, or by another process of the same start that changed the
    #: database first (``None``: none — backups off, a database that was empty,
    #: or nothing to apply).
    snapshot: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run ended without an error."""
        return self.error is None
