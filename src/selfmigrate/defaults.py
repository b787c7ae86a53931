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
#: The tracker's layout version (see :mod:`selfmigrate.tracker`); here because the
#: quick check's fingerprint format includes it and must not import the tracker.
TRACKER_LAYOUT = 2

if TYPE_CHECKING:
    #: What a start does when the database has an incompatible migration this code lacks.
    AheadPolicy = t.Literal["warn", "refuse", "rollback"]

#: The ``ahead`` policies (``SELFMIGRATE_AHEAD``).
AHEAD_POLICIES: tuple[AheadPolicy, ...] = ("warn", "refuse", "rollback")
#: The default ``ahead`` policy: log a warning and start, as before the policy existed.
DEFAULT_AHEAD: AheadPolicy = "warn"
