"""Running one direction of one migration through the backend, and wording its failure.

Holds :func:`run_up`, :func:`run_down`, :func:`run_outside` and :func:`failure`, which
turn what the backend raised into a :class:`MigrationError` naming file, line, statement
and fix. Must not know an engine: the backend runs the step and explains its refusals.
"""

from __future__ import annotations

import time

from ..backends.base import COMMITTED_ITSELF, Refused, StatementError
from ..errors import MigrationError
from .migration import NO_TRANSACTION_MARKER, line_in
from .plan import version_label

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    from ..backends.base import Backend, Connection, MigrationFunction, SQLScript, Step
    from .migration import LoadedMigration, Migration
    from .status import Status


def _step(script: SQLScript | None, function: MigrationFunction | None) -> Step:
    if script is not None:
        return script
    assert function is not None
    return function


def _cause(error: Exception) -> BaseException:
    # Chain the database error itself, not the wrapper that says which statement.
    return error.error if isinstance(error, StatementError) else error


def run_up(backend: Backend, conn: Connection, body: LoadedMigration, status: Status | t.Callable[[], Status]) -> None:
    """Run a migration's up in the open transaction, guarded.

    ``status`` (or a function that makes it, called only on failure) words the
    failure's message.

    :raises MigrationError: it failed, or tried to end the transaction (even if
        it caught the refusal: what it meant to do did not happen as written).
    """
    refused: list[str] = []
    try:
        backend.run_in_transaction(conn, _step(body.up_sql, body.up_function), refused)
    except Exception as e:
        raise failure(backend, body.migration, e, refused, status) from _cause(e)


def run_down(backend: Backend, conn: Connection, body: LoadedMigration, status: Status) -> None:
    """Run a migration's down in the open transaction, guarded.

    :raises MigrationError: it failed, or tried to end the transaction.
    """
    migration = body.migration
    refused: list[str] = []
    try:
        backend.run_in_transaction(conn, _step(body.down_sql, body.down_function), refused)
    except Exception as e:
        if isinstance(e, Refused):
            raise MigrationError(
                f"Rolling back migration {migration.id} tried to {refused[0] or 'end'} the transaction"
                " selfmigrate runs it in, and was undone. Remove BEGIN/COMMIT/ROLLBACK from its down.",
                version=migration.version,
                name=migration.name,
                path=migration.location,
            ) from None
        raise failure(
            backend,
            migration,
            e,
            refused,
            status,
            what=f"Rolling back migration {migration.id} (its down)",
            outcome="and was rolled back; the database is as it was before this down",
            advice=ROLLBACK_ADVICE,
            down=True,
        ) from _cause(e)


#: What to do after a migration failed and was rolled back.
_FIX_AND_START = "Fix the migration and start again; nothing needs undoing by hand."

#: What to do after a down failed: a start does not run downs, the rollback does.
ROLLBACK_ADVICE = (
    "Fix the down (after '-- migrate:down', or down(conn)) and run the rollback again; nothing needs undoing by hand."
)


def run_outside(
    backend: Backend, conn: Connection, body: LoadedMigration, status: Status | t.Callable[[], Status]
) -> None:
    """Run a non-transactional migration's up with no transaction open.

    :raises MigrationError: it failed; what it did before the error is not undone.
    """
    migration = body.migration
    refused: list[str] = []
    try:
        backend.run_outside_transaction(conn, _step(body.up_sql, body.up_function), refused)
    except Exception as e:
        raise failure(
            backend,
            migration,
            e,
            refused,
            status,
            outcome="outside a transaction; what it did before the error is NOT undone",
            transactional=False,
            advice="It stays recorded as started, and selfmigrate will not start until it is resolved:"
            f" check the database, then 'python -m selfmigrate resolve {migration.version} --done'"
            " if its change is complete, or undo what it did (by hand, or from a snapshot if one"
            f" is named below) and 'python -m selfmigrate resolve {migration.version} --retry'.",
        ) from _cause(e)


def failure(
    backend: Backend,
    migration: Migration,
    error: Exception,
    refused: list[str],
    status: Status | t.Callable[[], Status],
    *,
    what: str | None = None,
    outcome: str = "and was rolled back; the database is as it was before it",
    advice: str = _FIX_AND_START,
    transactional: bool = True,
    down: bool = False,
) -> MigrationError:
    """The :class:`MigrationError` for ``error`` raised by ``migration``: file, line,
    statement, database error, what the engine says of it, what was not
    attempted, and what to do.

    ``what`` (default ``"Migration <id>"``), ``outcome`` and ``advice`` word
    the first and last lines for a down or a migration run outside a
    transaction (``transactional=False`` for the latter).
    """
    if callable(status):
        status = status()
    if refused and refused[0] == COMMITTED_ITSELF:
        # Nothing to roll back: what it did before ending its transaction is in the database.
        outcome = "after ending its transaction itself: what it did until then is committed, NOT undone"
        advice = (
            "It is not recorded as applied. Undo what it committed (by hand, or from a snapshot if one"
            " is named below), remove the calls that ended its transaction, and start again."
        )
    line: int | None = None
    statement: str | None = None
    cause: BaseException = error
    if isinstance(error, StatementError):
        line, statement, cause = error.statement.line, error.statement.sql, error.error
    else:
        line = line_in(error, migration.location)
    where = migration.location + (f", line {line}" if line is not None else "")
    # A down's later pending migrations are those the rollback already undid, not ones it skipped.
    later = [] if down else [m for m in status.pending if m.version > migration.version]
    lines = [
        f"{what or f'Migration {migration.id}'} failed on database {backend.describe()} {outcome}"
        f" (version {version_label(status.current_version)}).",
        f"  file: {where}",
    ]
    if statement is not None:
        lines.append(f"  statement: {_shorten(statement)}")
    lines.append(f"  error: {type(cause).__name__}: {cause}")
    advice_lines = backend.failure_advice(cause, refused, transactional=transactional)
    if down and any(NO_TRANSACTION_MARKER in line for line in advice_lines):
        # "A migration of its own marked no-transaction" is a fix for an up: a down always runs
        # in a transaction, whatever its up's marker.
        advice_lines = [
            kept
            for line in advice_lines
            if (kept := " ".join(s for s in line.split(". ") if NO_TRANSACTION_MARKER not in s))
        ]
        advice_lines = [line if line.endswith(".") else line + "." for line in advice_lines]
        advice_lines.append(
            "A down always runs in a transaction, even that of a migration marked"
            f" '{NO_TRANSACTION_MARKER}': write the down with statements that can (DROP INDEX without"
            " CONCURRENTLY, no VACUUM), or undo the change in a new migration instead of rolling back."
        )
    lines.extend(f"  {line}" for line in advice_lines)
    if not status.applied and what is None and "already exists" in str(cause) and advice == _FIX_AND_START:
        # The first migration meets what it creates: the database was built before selfmigrate
        # (an init-db script, create_all(), another tool). The migration is not what is wrong.
        lines.append(
            "  The database has no migration recorded, yet already holds what this one creates: it was"
            " built before these migrations (an init-db script, create_all(), another tool). If it has"
            " what the migrations up to N create, record them as applied with 'python -m selfmigrate"
            " baseline --version N' (docs/adopting.rst) instead of changing the migration."
        )
        advice = "Baseline the database, or fix the migration, and start again; nothing needs undoing by hand."
    if later:
        lines.append(f"  Not attempted: {not_attempted(later)}.")
    lines.append(advice)
    return MigrationError(
        "\n".join(lines),
        version=migration.version,
        name=migration.name,
        path=migration.location,
        line=line,
        statement=statement,
    )


#: Up to this many later migrations are named one by one in a failure message; more are
#: counted, with the first and the last named, so that the message stays short at any N.
LISTED_LATER = 5


def not_attempted(later: t.Sequence[Migration]) -> str:
    """The later migrations a failure left unattempted, for its message.

    ``0002_b, 0003_c`` for a few; ``5999 later migrations (0002_x … 6000_y)`` for many.
    """
    if len(later) <= LISTED_LATER:
        return ", ".join(m.id for m in later)
    return f"{len(later)} later migrations ({later[0].id} … {later[-1].id})"


def _shorten(sql: str, limit: int = 300) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def ms_since(start: float) -> float:
    """Milliseconds since ``start`` (a :func:`time.perf_counter` value)."""
    return (time.perf_counter() - start) * 1000.0
