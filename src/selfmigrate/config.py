"""Default settings, shared by the runner and the faces.

Kept apart and free of imports so that the no-op start (:mod:`selfmigrate.startup`)
can read them without importing the runner.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    #: What to do when migrating fails: raise, or log and let the app start.
    FailurePolicy = t.Literal["raise", "log"]

#: The failure policies :func:`selfmigrate.migrate` accepts.
FAILURE_POLICIES: tuple[FailurePolicy, ...] = ("raise", "log")
#: Default seconds to wait for the database's write lock.
DEFAULT_LOCK_TIMEOUT = 60.0
#: Default tracker table name.
DEFAULT_TABLE = "schema_migrations"
#: How many snapshots of a database are kept by default; older ones are pruned.
DEFAULT_BACKUP_KEEP = 5
