"""What a run may do, decided before it changes anything: the checks of apply and rollback.

Holds :func:`check` (edited, interrupted, out-of-order migrations, the target) and
:func:`rollback_range` (which applied migrations a rollback undoes), pure functions of a
:class:`~selfmigrate.core.status.Status`. Must not know databases, locks or engines.
"""

from __future__ import annotations

from ..errors import ChecksumMismatch, ConfigError, OutOfOrderError, StateError
from .migration import LoadedMigration
from .tracker import STARTED

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    from .migration import Migration
    from .status import Status


def up_to(migrations: t.Sequence[Migration], target: int | None) -> tuple[Migration, ...]:
    """The migrations up to ``target`` (all when ``None``)."""
    return tuple(m for m in migrations if target is None or m.version <= target)


#: How every message and command shows the version of a database with no migration applied.
NO_VERSION = "none (no migration applied)"


def version_label(version: int | None) -> str:
    """A version for messages: :data:`NO_VERSION` for no history."""
    return NO_VERSION if version is None else str(version)


def check(status: Status, target: int | None, *, allow_out_of_order: bool, database: str) -> None:
    """Raise what stops ``apply`` before its next change, if anything does.

    :raises StateError: an interrupted migration needs resolving.
    :raises ChecksumMismatch: an applied migration's file was edited.
    :raises ConfigError: ``target`` is below the current version, or no file's.
    :raises OutOfOrderError: an older migration is pending and that is not allowed.
    """
    if status.interrupted:
        row = status.interrupted[0]
        raise StateError(
            f"Migration {row.id} was started on database {database} ({row.applied_at}, by"
            f" {row.applied_by}) outside a transaction and never finished. selfmigrate will"
            " not guess whether it took effect: check the database, then mark it done with"
            f" 'python -m selfmigrate resolve {row.version} --done' or restore the backup"
            f" and retry with 'python -m selfmigrate resolve {row.version} --retry'."
        )
    if status.edited:
        lines = "\n  ".join(f"{m.location} (version {m.version}, applied {row.applied_at})" for m, row in status.edited)
        raise ChecksumMismatch(
            f"These migrations were edited after they were applied to database {database}:\n"
            f"  {lines}\n"
            "An applied migration must not change: undo the edit and make the change in a new"
            " migration ('python -m selfmigrate create \"message\"'). If the edit is cosmetic"
            " (comments, whitespace), record the new checksum with"
            " 'python -m selfmigrate rehash VERSION'."
        )
    if target is not None and status.current_version is not None and target < status.current_version:
        raise ConfigError(
            f"Target version {target} is below database {database}'s current version"
            f" {status.current_version}; applying never goes back. Use 'rollback --to {target}'."
        )
    if target is not None and all(m.version != target for m in status.migrations):
        raise ConfigError(f"Target version {target} is not the version of any migration file.")
    out_of_order = up_to(status.out_of_order, target)
    if out_of_order and not allow_out_of_order:
        names = ", ".join(m.location for m in out_of_order)
        raise OutOfOrderError(
            f"Database {database} is at version {status.current_version}, but older"
            f" migrations are still pending: {names}. This is usually two branches merged:"
            " renumber the pending file(s) after the newest applied version, or allow"
            " out-of-order migrations (SELFMIGRATE_ALLOW_OUT_OF_ORDER = True,"
            " allow_out_of_order=True)."
        )


def rollback_range(
    status: Status,
    target: int | None,
    steps: int | None,
    *,
    database: str,
    stored: t.Mapping[int, str] | None = None,
    table: str = "the tracker",
) -> tuple[LoadedMigration, ...]:
    """The applied migrations a rollback to ``target`` (or of ``steps``) undoes, newest first, loaded.

    A migration whose file is missing is undone with its down in ``stored``
    (by version, as :meth:`Tracker.stored_down <selfmigrate.core.tracker.Tracker.stored_down>`
    read it from ``table``): the older image's case.

    :raises ConfigError: a bad target or step count, or a migration in the
        range has no down (the message names every such migration).
    :raises StateError: a migration in the range is edited, interrupted, or
        has neither a file nor a stored down.
    :raises ChecksumMismatch: a stored down no longer matches its checksum.
    """
    stored = {} if stored is None else stored
    if target is not None and steps is not None:
        raise ConfigError("Give a target version or a number of steps to roll back, not both.")
    newest_first = sorted(status.applied, reverse=True)
    if target is not None:
        known = {m.version for m in status.migrations} | set(status.applied) | {0}
        if target not in known:
            raise ConfigError(
                f"Target version {target} is not the version of any migration. Give an applied"
                " version to roll back to, or 0 to roll back everything."
            )
        if target > (status.current_version or 0):
            raise ConfigError(
                f"Target version {target} is not below database {database}'s current version"
                f" {version_label(status.current_version)}; rolling back never goes forward."
                f" Use 'apply --to {target}'."
            )
        versions = [v for v in newest_first if v > target]
    else:
        count = 1 if steps is None else steps
        if count < 1:
            raise ConfigError(f"The number of steps to roll back must be 1 or more, not {count}.")
        if count > len(newest_first):
            applied = f"{len(newest_first)} applied" if newest_first else NO_VERSION.partition(" ")[2].strip("()")
            raise ConfigError(f"Cannot roll back {count} migration(s): database {database} has {applied}.")
        versions = newest_first[:count]
    files = {m.version: m for m in status.migrations}
    edited = {m.version for m, _ in status.edited}
    todo: list[Migration | LoadedMigration] = []
    for version in versions:
        row = status.applied[version]
        if row.state == STARTED:
            raise StateError(
                f"Migration {row.id} on database {database} was interrupted; resolve it before"
                f" rolling back ('resolve {version} --done' or '--retry'). Nothing was rolled back."
            )
        migration = files.get(version)
        if migration is None:
            from . import ahead as ahead_rules  # a rollback from the tracker's copy only

            why = ahead_rules.cannot_undo(row, stored)
            if why is None:
                # The older image's case: the file is gone, its down is in the tracker.
                todo.append(ahead_rules.load_from_tracker(row, stored[version], table=table, database=database))
                continue
            if row.down == "none":
                raise ConfigError(
                    f"Cannot roll back past {row.id}: it has no down (it had none when it was applied"
                    f" to database {database}, and its file is not in the migrations). Nothing was"
                    " rolled back."
                    + (f" Roll back only what is after it (--to {version})." if version != versions[0] else "")
                )
            raise StateError(
                f"Migration {row.id} is applied to database {database} but its file is not in the"
                f" migrations, and it {why}, so its down cannot run. Restore the file (the release"
                " that has it can roll it back), restore a snapshot, or roll back less."
                " Nothing was rolled back."
            )
        if version in edited:
            raise ChecksumMismatch(
                f"Migration file {migration.location} was edited after it was applied to database"
                f" {database}; its down may not undo what ran. Undo the edit (or 'rehash {version}'"
                " if it is cosmetic) first. Nothing was rolled back."
            )
        todo.append(migration)
    loaded = tuple(m if isinstance(m, LoadedMigration) else m.load() for m in todo)
    without_down = [body.migration for body in loaded if not body.has_down]
    if without_down:
        names = ", ".join(f"{m.id} ({m.location})" for m in without_down)
        blocked = max(m.version for m in without_down)
        fix = "Add one"
        if blocked != versions[0]:
            fix += f", or roll back only what is after it (--to {blocked})"
        empty = [body.migration.id for body in loaded if body.empty_down]
        if empty:
            fix += (
                f" ({', '.join(empty)}: the '-- migrate:down' line is there but no statement follows it;"
                " write the statements that undo the up, or 'SELECT 1;' if there is truly nothing to undo)"
            )
        raise ConfigError(
            f"Cannot roll back past {names}: no down (a '-- migrate:down' section or a"
            f" down(conn) function). Nothing was rolled back. {fix}."
        )
    return loaded
