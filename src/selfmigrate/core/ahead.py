"""A database ahead of the code: what a start does about it, and undoing from the tracker.

Holds the ``ahead`` policy's decisions (``SELFMIGRATE_AHEAD``: ``"warn"``, ``"refuse"``,
``"rollback"``) for applied migrations newer than every file
(:attr:`Status.ahead <selfmigrate.core.status.Status.ahead>`), their messages, and the
loading of a down from its copy stored in the tracker. Pure: must not know databases,
locks or engines; the runner takes the locks and runs the downs.
"""

from __future__ import annotations

from ..errors import AheadError, ChecksumMismatch

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    from ..config import AheadPolicy
    from .migration import LoadedMigration
    from .status import Status
    from .tracker import AppliedMigration


def to_undo(status: Status) -> tuple[AppliedMigration, ...]:
    """What going back to this code undoes, newest first.

    Every applied migration from the oldest incompatible ahead one up;
    compatible ones older than all incompatible ones stay (this code works with
    them). Empty when nothing incompatible is ahead.
    """
    incompatible = status.ahead_incompatible
    if not incompatible:
        return ()
    oldest = min(row.version for row in incompatible)
    return tuple(status.applied[v] for v in sorted(status.applied, reverse=True) if v >= oldest)


def target_before(status: Status, rows: t.Sequence[AppliedMigration]) -> int:
    """The version a rollback of ``rows`` goes to: the newest applied one below them (0: none)."""
    oldest = min(row.version for row in rows)
    return max((v for v in status.applied if v < oldest), default=0)


def stored_location(row: AppliedMigration, table: str) -> str:
    """Where a stored down is, for messages: ``"0003_x.sql as stored in schema_migrations_rollback"``."""
    return f"{row.id}.{row.kind} as stored in {table}"


def cannot_undo(row: AppliedMigration, stored: t.Mapping[int, str]) -> str | None:
    """Why ``row``'s migration cannot be undone from the tracker, or ``None`` if it can."""
    if row.down == "not stored":
        return "was applied before the tracker stored downs (down not stored)"
    if row.down == "none":
        return "has no down"
    if row.version not in stored:
        return "has lost its stored down"
    return None


def load_from_tracker(row: AppliedMigration, source: str, *, table: str, database: str) -> LoadedMigration:
    """``row``'s migration, ready to be rolled back with the down stored in ``table``.

    :raises ChecksumMismatch: the stored down is not what was stored (its
        checksum differs from the one recorded with it): it is never run.
    """
    from .migration import Migration, checksum, load_stored_down

    location = stored_location(row, table)
    found = checksum(source.encode("utf-8"))
    if found != row.down_checksum:
        raise ChecksumMismatch(
            f"The down of migration {row.id} stored in database {database}'s tracker ({table}) does not"
            f" match the checksum recorded with it (recorded {row.down_checksum}, now {found}): it was"
            " changed after it was stored, and selfmigrate does not run it. Nothing was rolled back."
            " Roll back with the code that has the migration's file (the newer release), or restore a"
            " snapshot from before the migration ('python -m selfmigrate snapshots')."
        )
    kind: t.Literal["sql", "py"] = "py" if row.kind == "py" else "sql"
    return load_stored_down(Migration(row.version, row.name, kind, location), source)


def blocked_advice(blocked: t.Sequence[AppliedMigration], command: str = "python -m selfmigrate") -> str:
    """What to do when ``blocked`` (ahead, to undo) cannot be undone from the tracker.

    The newer release's files can roll back a migration whose down was not stored,
    never one that has no down at all: then only a snapshot goes back.
    """
    files_can = all(row.down == "not stored" for row in blocked)
    return (
        "Deploy the release that has these migrations again"
        + (" (its files can roll them back)" if files_can else "")
        + f", or restore a snapshot from before them ('{command} snapshots', then '{command} restore NAME')."
    )


def undo_advice(status: Status, command: str = "python -m selfmigrate") -> str:
    """For ``status``: how to go back to this code from the incompatible migrations ahead.

    Names what ``rollback --to`` would undo (compatible ones older than every
    incompatible one stay), or, when one of them has no down stored in the
    tracker, why it cannot and what to do instead. Reads only the rows (whether
    each stored its down), not the stored downs themselves.
    """
    undo = to_undo(status)
    blocked = [row for row in undo if row.down != "stored"]
    if blocked:
        why = "; ".join(f"{row.id} {cannot_undo(row, {row.version: ''})}" for row in blocked)
        return f"It cannot be undone from the tracker: {why}. " + blocked_advice(blocked, command)
    return (
        f"Undo {_ids(undo)} with '{command} rollback --to {target_before(status, undo)}' (the downs"
        " stored in the tracker run), or deploy the code that has them."
    )


def _ids(rows: t.Iterable[AppliedMigration]) -> str:
    return ", ".join(row.id for row in rows)


def compatible_line(status: Status, database: str) -> str:
    """The INFO line of a start that finds only compatible migrations ahead."""
    return (
        f"Database {database} is ahead of this code by {_ids(status.ahead)}, marked compatible:"
        " this code works with it; starting normally."
    )


def warning_line(row: AppliedMigration, database: str) -> str:
    """The WARNING of the ``"warn"`` policy, one per migration ahead."""
    return (
        f"Database {database} has migration {row.id} applied ({row.applied_at}) but its file is not in the"
        " migrations; the database is ahead of this code (a rolled-back deploy?)"
        + ("." if row.compatible else ", and it is not marked compatible.")
    )


def refusal(
    status: Status,
    database: str,
    policy: AheadPolicy,
    stored: t.Mapping[int, str],
) -> AheadError:
    """The error of a start that must not go on: ``"refuse"``, or ``"rollback"`` that cannot."""
    undo = to_undo(status)
    incompatible = status.ahead_incompatible
    target = target_before(status, undo)
    blocked = [(row, why) for row in undo if (why := cannot_undo(row, stored)) is not None]
    lines = [
        f"Database {database} is ahead of this code: {_ids(status.ahead)} applied, but not among"
        " this code's migrations (a newer release applied them), and"
        f" {_ids(incompatible)} {'is' if len(incompatible) == 1 else 'are'} not marked compatible,"
        " so this code may not work with the database.",
    ]
    if policy == "rollback" and blocked:
        lines.append(
            'SELFMIGRATE_AHEAD is "rollback", but not every one can be undone from the tracker;'
            " nothing was rolled back and the app does not start:"
        )
    else:
        lines.append(f'SELFMIGRATE_AHEAD is "{policy}": the app does not start.')
    if blocked:
        lines.extend(f"  {row.id} {why}" for row, why in blocked)
        lines.append(blocked_advice([row for row, _ in blocked]))
    else:
        lines.append(
            f"To undo {_ids(undo)} with the downs stored in the tracker (a snapshot is taken first), run"
            f" 'python -m selfmigrate rollback --to {target}' with this code; or deploy the release that"
            ' has them again; or set SELFMIGRATE_AHEAD = "rollback" to undo them at start.'
        )
    return AheadError("\n".join(lines), versions=[row.version for row in undo], target=target)
