"""What a migration run did: :class:`MigrationReport` and :class:`AppliedResult`.

Holds the two result values every start builds; plain classes that behave as dataclasses,
because the no-op start imports this module and must not pay for :mod:`dataclasses`.
Must not know databases or engines.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .errors import SelfMigrateError


class AppliedResult:
    """One migration this run applied (or rolled back)."""

    __slots__ = ("version", "name", "duration_ms")

    version: int
    name: str
    duration_ms: float

    def __init__(self, version: int, name: str, duration_ms: float) -> None:
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "duration_ms", duration_ms)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AppliedResult is immutable: cannot set {name!r}")

    def _fields(self) -> tuple[int, str, float]:
        return (self.version, self.name, self.duration_ms)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, AppliedResult)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"AppliedResult(version={self.version!r}, name={self.name!r}, duration_ms={self.duration_ms!r})"

    @property
    def id(self) -> str:
        """``"0002_add_column"``."""
        return f"{self.version:04d}_{self.name}"


class MigrationReport:
    """The outcome of :func:`selfmigrate.migrate` or :func:`selfmigrate.apply`.

    A run that raised carries its report on the error (``error.report``); a run
    under the ``"log"`` failure policy returns it with :attr:`error` set.
    """

    _FIELDS = ("database", "applied", "current_version", "pending", "error", "duration_ms", "snapshot", "rolled_back")

    #: The database, as a path.
    database: str
    #: Migrations this run applied, in order, with their durations.
    applied: list[AppliedResult]
    #: The newest applied version after the run (``None``: no history).
    current_version: int | None
    #: Versions still pending after the run (non-empty only after a failure).
    pending: tuple[int, ...]
    #: The error that stopped the run, under the ``"log"`` failure policy.
    error: SelfMigrateError | None
    #: How long the whole run took.
    duration_ms: float
    #: The snapshot of the database from before this run's first change: taken
    #: by this run, or by another process of the same start that changed the
    #: database first (``None``: none — backups off, a database that was empty,
    #: or nothing to apply).
    snapshot: str | None
    #: Migrations this start undid because the database was ahead of the code
    #: (the ``"rollback"`` ahead policy), newest first.
    rolled_back: list[AppliedResult]

    def __init__(
        self,
        database: str,
        applied: list[AppliedResult] | None = None,
        current_version: int | None = None,
        pending: tuple[int, ...] = (),
        error: SelfMigrateError | None = None,
        duration_ms: float = 0.0,
        snapshot: str | None = None,
        rolled_back: list[AppliedResult] | None = None,
    ) -> None:
        self.database = database
        self.applied = [] if applied is None else applied
        self.current_version = current_version
        self.pending = pending
        self.error = error
        self.duration_ms = duration_ms
        self.snapshot = snapshot
        self.rolled_back = [] if rolled_back is None else rolled_back

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"MigrationReport({fields})"

    @property
    def ok(self) -> bool:
        """Whether the run ended without an error."""
        return self.error is None
