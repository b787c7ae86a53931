"""Repairs of a database's history: :func:`resolve` for an interrupted non-transactional migration.

Holds the operator's answer to "did it take effect?" (``done`` records it, ``retry``
forgets it; docs/reliability.rst). ``rehash`` and ``history`` are :class:`~selfmigrate.Runner`
methods, their public home. Must not name an engine: backends.select chooses it.
"""

from __future__ import annotations

import logging
import os
import typing as t

from ..backends.select import open_backend
from ..config import DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE
from ..core.tracker import APPLIED, STARTED, AppliedMigration, Tracker
from ..errors import ConfigError, LockTimeout

# The logger keeps the name it had before the package had layers: users configure it.
logger = logging.getLogger("selfmigrate.resolve")

Resolution = t.Literal["done", "retry"]


def resolve(
    database: str | os.PathLike[str],
    version: int,
    action: Resolution,
    *,
    table: str = DEFAULT_TABLE,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> AppliedMigration:
    """Resolve the interrupted migration ``version`` of ``database``.

    :param action: ``"done"`` records it as applied; ``"retry"`` deletes its
        tracker row so that the next start runs it again.
    :returns: the tracker row as it was (state ``started``).
    :raises ConfigError: ``version`` is not an interrupted migration, or the
        action is unknown.
    :raises LockTimeout: the migration is still running in another process (it
        holds the migration lock).
    """
    if action not in ("done", "retry"):
        raise ConfigError(f"Resolve an interrupted migration with 'done' or 'retry', not {action!r}.")
    backend = open_backend(database, lock_timeout=lock_timeout)
    tracker = Tracker(backend, table)
    conn = backend.connect(create=False)
    try:
        with backend.migration_lock() as lock:
            if not lock.try_acquire():
                raise LockTimeout(
                    f"A migration of database {backend.describe()} is running in another process right"
                    f" now (it holds {lock.describe()}); it is not interrupted. Wait for it to finish."
                )
            with backend.locked_transaction(conn):
                row = tracker.read(conn).get(version)
                if row is None or row.state != STARTED:
                    state = "not applied" if row is None else f"'{row.state}'"
                    raise ConfigError(
                        f"Migration {version} of database {backend.describe()} is {state}, not interrupted;"
                        " there is nothing to resolve. 'python -m selfmigrate status' shows what is."
                    )
                if action == "done":
                    tracker.finish(conn, version, row.duration_ms)
                else:
                    tracker.remove(conn, version)
    finally:
        conn.close()
    if action == "done":
        logger.warning(
            "Marked interrupted migration %s of %s as %s by hand (it was started %s by %s).",
            row.id,
            backend.describe(),
            APPLIED,
            row.applied_at,
            row.applied_by,
        )
    else:
        logger.warning(
            "Forgot interrupted migration %s of %s (started %s by %s); the next start runs it again.",
            row.id,
            backend.describe(),
            row.applied_at,
            row.applied_by,
        )
    return row
