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
#: How a flag is written as text (an environment variable, any case): true, then false.
FLAG_TRUE: tuple[str, ...] = ("1", "true", "yes", "on")
FLAG_FALSE: tuple[str, ...] = ("0", "false", "no", "off")
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
#: PostgreSQL: how long one statement of a migration waits for a table lock
#: (``SET LOCAL lock_timeout``; ``table_lock_timeout``).
DEFAULT_TABLE_LOCK_TIMEOUT = "5s"
#: PostgreSQL: how long one statement of a migration may run (``SET LOCAL
#: statement_timeout``; ``"0"``: no limit).
DEFAULT_STATEMENT_TIMEOUT = "0"
#: PostgreSQL: how many more times a migration that timed out on a table lock is tried.
DEFAULT_LOCK_RETRIES = 3
#: The engine settings a value of ``None`` leaves to an environment variable of the
#: same name, read when the backend is opened (as before they were options), then
#: to the default; every other setting's default is a value.
ENGINE_DEFAULTS: dict[str, object] = {
    "direct_database": None,
    "table_lock_timeout": DEFAULT_TABLE_LOCK_TIMEOUT,
    "statement_timeout": DEFAULT_STATEMENT_TIMEOUT,
    "lock_retries": DEFAULT_LOCK_RETRIES,
}
#: The duration units PostgreSQL reads that selfmigrate accepts (none: milliseconds).
DURATION_UNITS = ("", "ms", "s", "min", "h", "d")
#: The prefix of the environment variables and the Flask config keys.
KEY_PREFIX = "SELFMIGRATE_"
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
    "SELFMIGRATE_DIRECT_DATABASE": "direct_database",
    "SELFMIGRATE_TABLE_LOCK_TIMEOUT": "table_lock_timeout",
    "SELFMIGRATE_STATEMENT_TIMEOUT": "statement_timeout",
    "SELFMIGRATE_LOCK_RETRIES": "lock_retries",
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
        "direct_database",
        "table_lock_timeout",
        "statement_timeout",
        "lock_retries",
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
    #: PostgreSQL: a URL that reaches the server directly, for the session lock and the
    #: non-transactional migrations when the database URL goes through pgbouncer.
    #: ``None``: ``SELFMIGRATE_DIRECT_DATABASE`` if set, else none.
    direct_database: str | None
    #: PostgreSQL: each migration's ``SET LOCAL lock_timeout`` (a duration, ``"5s"``).
    #: ``None``: ``SELFMIGRATE_TABLE_LOCK_TIMEOUT`` if set, else :data:`DEFAULT_TABLE_LOCK_TIMEOUT`.
    table_lock_timeout: str | None
    #: PostgreSQL: each migration's ``SET LOCAL statement_timeout`` (``"0"``: no limit).
    #: ``None``: ``SELFMIGRATE_STATEMENT_TIMEOUT`` if set, else :data:`DEFAULT_STATEMENT_TIMEOUT`.
    statement_timeout: str | None
    #: PostgreSQL: how many more times a migration that timed out on a table lock is tried.
    #: ``None``: ``SELFMIGRATE_LOCK_RETRIES`` if set, else :data:`DEFAULT_LOCK_RETRIES`.
    lock_retries: int | None

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
        direct_database: str | None = None,
        table_lock_timeout: str | None = None,
        statement_timeout: str | None = None,
        lock_retries: int | None = None,
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
        self.direct_database = direct_database
        self.table_lock_timeout = table_lock_timeout
        self.statement_timeout = statement_timeout
        self.lock_retries = lock_retries

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
        for name in ENGINE_DEFAULTS:
            problem = engine_setting_problem(name, getattr(self, name))
            if problem is not None:
                _fail(f"{name} ({KEY_PREFIX}{name.upper()}) {problem}")
        return self


def is_duration(value: object) -> bool:
    """Whether ``value`` is a duration PostgreSQL reads (``"5s"``, ``"500ms"``, ``"2min"``, ``"0"``)."""
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz").rstrip()
    whole, dot, fraction = number.partition(".")
    digits = whole.isascii() and whole.isdigit() and (not dot or (fraction.isascii() and fraction.isdigit()))
    return digits and text[len(number) :].strip() in DURATION_UNITS


def engine_setting_problem(name: str, value: object) -> str | None:
    """What is wrong with ``value`` for the engine setting ``name`` (``None``: nothing, or not set).

    The words follow the setting's name in a :class:`ConfigError`: each face
    names the key it read (``SELFMIGRATE_LOCK_RETRIES``, a pyproject.toml key).
    """
    if value is None:
        return None
    if name == "lock_retries":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"must be a whole number of retries, 0 or more, not {value!r}."
        return None
    if name == "direct_database":
        if not isinstance(value, str) or not value.strip():
            return f"must be a database URL (postgresql://user@host:5432/database), not {value!r}."
        return None
    if not is_duration(value):
        return f"must be a duration such as '5s', '500ms', '2min' or '0' (no limit), not {value!r}."
    return None


def _fail(message: str) -> t.NoReturn:
    from .errors import ConfigError  # only on the error path: the no-op start never pays for it

    raise ConfigError(message)
