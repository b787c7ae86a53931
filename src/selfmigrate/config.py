"""Every knob of a run and its default, in one place: :class:`Options`.

Holds the settings that :func:`~selfmigrate.migrate`, :class:`~selfmigrate.Runner`,
:func:`~selfmigrate.apply`, the CLI and the pytest plugin each build from their own
inputs, and the Flask config keys that name them. Must not know an engine or a face,
and imports nothing at all: the no-op start reads it (a plain class, no dataclasses).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    import typing as t

    #: What to do when migrating fails: raise, or log and let the app start.
    FailurePolicy = t.Literal["raise", "log"]
    #: What a start does when the database has an incompatible migration this code lacks.
    AheadPolicy = t.Literal["warn", "refuse", "rollback"]

#: The failure policies :func:`selfmigrate.migrate` accepts.
FAILURE_POLICIES: tuple[FailurePolicy, ...] = ("raise", "log")
#: The ``ahead`` policies (``SELFMIGRATE_AHEAD``), see :mod:`selfmigrate.core.ahead`.
AHEAD_POLICIES: tuple[AheadPolicy, ...] = ("warn", "refuse", "rollback")
#: The default ``ahead`` policy: log a warning and start, as before the policy existed.
DEFAULT_AHEAD: AheadPolicy = "warn"
#: The tracker's layout version (see :mod:`selfmigrate.core.tracker`); here because the
#: quick check's fingerprint format names it and must not import the tracker.
TRACKER_LAYOUT = 2
#: Default tracker table name.
DEFAULT_TABLE = "schema_migrations"
#: Default seconds to wait for the database's write lock.
DEFAULT_LOCK_TIMEOUT = 60.0
#: How many snapshots of a database are kept by default; older ones are pruned.
DEFAULT_BACKUP_KEEP = 5
#: The default name of the ``flask`` command group (``SELFMIGRATE_CLI_GROUP``);
#: Flask-Migrate's is ``db``.
DEFAULT_CLI_GROUP = "selfmigrate"
#: The migrations folder when none is given: where ``create`` writes, and the
#: folder beside a Flask app's code that :func:`selfmigrate.apply` looks for.
DEFAULT_MIGRATIONS_DIR = "migrations"

#: The Flask config keys :func:`selfmigrate.apply` reads into :class:`Options`, and the
#: field each one sets (``SELFMIGRATE_DATABASE``, ``SELFMIGRATE_MIGRATIONS`` and
#: ``SELFMIGRATE_CLI_GROUP`` are read by the Flask face itself).
FLASK_KEYS: dict[str, str] = {
    "SELFMIGRATE_TABLE": "table",
    "SELFMIGRATE_LOCK_TIMEOUT": "lock_timeout",
    "SELFMIGRATE_ON_FAILURE": "on_failure",
    "SELFMIGRATE_ALLOW_OUT_OF_ORDER": "allow_out_of_order",
    "SELFMIGRATE_BACKUP": "backup",
    "SELFMIGRATE_BACKUP_DIR": "backup_dir",
    "SELFMIGRATE_BACKUP_KEEP": "backup_keep",
    "SELFMIGRATE_AHEAD": "ahead",
}


class Options:
    """How to migrate: every setting of a run, with its default.

    Built once by each face from its own inputs (keyword arguments, Flask config,
    command-line flags, ini options), then handed to the runner. :meth:`check`
    says what is wrong with a value; nothing is checked on construction, so a
    face can first fill in what it read.
    """

    __slots__ = (
        "table",
        "lock_timeout",
        "allow_out_of_order",
        "on_failure",
        "target",
        "backup",
        "backup_dir",
        "backup_keep",
        "ahead",
    )

    #: The tracker table's name.
    table: str
    #: Seconds to wait for the write lock (and a busy database) before :class:`LockTimeout`.
    lock_timeout: float
    #: Apply pending migrations older than the newest applied one instead of refusing.
    allow_out_of_order: bool
    #: ``"raise"`` or ``"log"``: what :func:`~selfmigrate.migrate` does when migrating fails.
    on_failure: FailurePolicy
    #: Apply only up to this version (``None``: all).
    target: int | None
    #: Snapshot a non-empty database before its first change.
    backup: bool
    #: Where snapshots go (``None``: beside the database).
    backup_dir: str | os.PathLike[str] | None
    #: How many snapshots to keep (``None``: all).
    backup_keep: int | None
    #: ``"warn"``, ``"refuse"`` or ``"rollback"``: what a start does when the database
    #: has migrations this code lacks, not all marked compatible.
    ahead: AheadPolicy

    def __init__(
        self,
        *,
        table: str = DEFAULT_TABLE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        allow_out_of_order: bool = False,
        on_failure: FailurePolicy = "raise",
        target: int | None = None,
        backup: bool = True,
        backup_dir: str | os.PathLike[str] | None = None,
        backup_keep: int | None = DEFAULT_BACKUP_KEEP,
        ahead: AheadPolicy = DEFAULT_AHEAD,
    ) -> None:
        self.table = table
        self.lock_timeout = lock_timeout
        self.allow_out_of_order = allow_out_of_order
        self.on_failure = on_failure
        self.target = target
        self.backup = backup
        self.backup_dir = backup_dir
        self.backup_keep = backup_keep
        self.ahead = ahead

    def replace(self, **changes: object) -> Options:
        """A copy with ``changes`` applied."""
        copy = Options()
        for name in self.__slots__:
            setattr(copy, name, changes.pop(name, getattr(self, name)))
        if changes:
            raise TypeError(f"Options has no setting {', '.join(sorted(changes))}")
        return copy

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Options({fields})"

    def check(self) -> Options:
        """Return these options if every value is usable.

        The tracker table's name is checked where it is used (the tracker).

        :raises ConfigError: a value is out of range or of the wrong kind; the
            message names the setting and what it takes.
        """
        if self.on_failure not in FAILURE_POLICIES:
            _fail(f"on_failure must be one of {', '.join(FAILURE_POLICIES)}, not {self.on_failure!r}.")
        timeout = self.lock_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            _fail(f"lock_timeout must be a number of seconds, 0 or more, not {timeout!r}.")
        keep = self.backup_keep
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            _fail(f"backup_keep must be 1 or more (or None to keep all), not {keep!r}.")
        if self.ahead not in AHEAD_POLICIES:
            _fail(f"ahead (SELFMIGRATE_AHEAD) must be one of {', '.join(AHEAD_POLICIES)}, not {self.ahead!r}.")
        if self.ahead == "rollback" and not self.backup:
            _fail(
                'ahead="rollback" (SELFMIGRATE_AHEAD) undoes migrations at start after a snapshot, and'
                ' snapshots are off (backup=False, SELFMIGRATE_BACKUP). Turn them on, or use "refuse".'
            )
        return self


def _fail(message: str) -> t.NoReturn:
    from .errors import ConfigError  # only on the error path: the no-op start never pays for it

    raise ConfigError(message)
