"""Comparing the migration files with the tracker: what is applied, pending, odd.

Holds :class:`Status` and :func:`compare`, pure: what discovery found and what the
tracker holds in, a value out. Must not know databases, locks or the faces that show it.
"""

from __future__ import annotations

from ..backends.base import Value
from .tracker import STARTED, AppliedMigration

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    from .migration import Migration


class Status(Value):
    """The state of a database against a set of migration files."""

    _fields = ("migrations", "applied", "pending", "missing", "edited", "out_of_order", "interrupted")

    #: Every migration file, by version.
    migrations: tuple[Migration, ...]
    #: Every tracker row, by version.
    applied: dict[int, AppliedMigration]
    #: Files not yet applied, oldest first.
    pending: tuple[Migration, ...]
    #: Rows whose file is missing from the code (the database is ahead of it).
    missing: tuple[AppliedMigration, ...]
    #: Applied migrations whose file changed since: (file, row).
    edited: tuple[tuple[Migration, AppliedMigration], ...]
    #: Pending files older than the newest applied migration.
    out_of_order: tuple[Migration, ...]
    #: Rows of non-transactional migrations that started and never finished.
    interrupted: tuple[AppliedMigration, ...]

    def __init__(
        self,
        migrations: tuple[Migration, ...],
        applied: dict[int, AppliedMigration],
        pending: tuple[Migration, ...],
        missing: tuple[AppliedMigration, ...],
        edited: tuple[tuple[Migration, AppliedMigration], ...],
        out_of_order: tuple[Migration, ...],
        interrupted: tuple[AppliedMigration, ...],
    ) -> None:
        self.__dict__.update(
            migrations=migrations,
            applied=applied,
            pending=pending,
            missing=missing,
            edited=edited,
            out_of_order=out_of_order,
            interrupted=interrupted,
        )

    @property
    def current_version(self) -> int | None:
        """The newest applied version, or ``None`` for a database with no history."""
        return max(self.applied) if self.applied else None

    @property
    def head(self) -> int | None:
        """The newest version in the files."""
        return self.migrations[-1].version if self.migrations else None

    @property
    def ahead(self) -> tuple[AppliedMigration, ...]:
        """Applied migrations newer than every file: the database is ahead of the code
        (an older image on a newer database). A subset of :attr:`missing`."""
        head = self.head or 0
        return tuple(row for row in self.missing if row.version > head)

    @property
    def ahead_incompatible(self) -> tuple[AppliedMigration, ...]:
        """The :attr:`ahead` migrations not known to be compatible (not declared so,
        or applied before the tracker stored it)."""
        return tuple(row for row in self.ahead if not row.compatible)

    @property
    def up_to_date(self) -> bool:
        """Nothing pending and nothing that needs a person."""
        return not (self.pending or self.edited or self.interrupted)


def compare(
    migrations: t.Sequence[Migration],
    applied: dict[int, AppliedMigration],
    *,
    verified: bool | t.Collection[int] = False,
) -> Status:
    """Compare migration files (sorted by version) with tracker rows.

    :param verified: the applied files are known to match their recorded
        checksums (their fingerprint was checked before): skip reading them;
        or the versions of the files known to (the others are read).
    """
    known: t.Collection[int] = () if verified is False else verified if verified is not True else applied
    by_version = {m.version: m for m in migrations}
    newest = max(applied) if applied else None
    pending = tuple(m for m in migrations if m.version not in applied)
    # Whole-set differences first (thousands of rows, usually none left): only then a pass in order.
    gone = applied.keys() - by_version.keys()
    unknown: t.Collection[int]
    if verified is True:
        unknown = ()
    elif isinstance(known, (set, frozenset)):
        unknown = applied.keys() - known
    else:
        unknown = applied.keys()
    return Status(
        migrations=tuple(migrations),
        applied=applied,
        pending=pending,
        missing=tuple(row for v, row in applied.items() if v in gone) if gone else (),
        edited=tuple(
            (by_version[v], row)
            for v, row in applied.items()
            if v in unknown
            and v not in known
            and v in by_version
            and row.state != STARTED
            and by_version[v].checksum != row.checksum
        )
        if unknown
        else (),
        out_of_order=tuple(m for m in pending if newest is not None and m.version < newest),
        interrupted=tuple(row for row in applied.values() if row.state == STARTED),
    )
