"""The boundary between selfmigrate and a database engine: the :class:`Backend` protocol.

Holds what the core and the operator tasks call on an engine (connect, the locked
transaction, guarded scripts, the migration lock, probes, errors, snapshots, schema) and
the values that cross it. Must not know any engine: no driver, no SQL dialect here.
"""

from __future__ import annotations

from ..config import DEFAULT_TABLE

# Not typing.TYPE_CHECKING: importing typing costs a start that applies something about
# 2 ms, and nothing here needs it at run time. The protocols below exist for the type
# checker only; every module that names them imports them under TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as dt
    import os
    import typing as t
    from pathlib import Path

    from ..errors import SelfMigrateError


class Value:
    """A frozen value, as ``@dataclass(frozen=True)`` makes one, without :mod:`dataclasses`.

    Making a dataclass imports :mod:`inspect` (with :mod:`ast`, :mod:`dis` and
    :mod:`tokenize`) and compiles its methods: several milliseconds of every start
    that applies something. A subclass fills its fields in ``__init__`` through
    ``__dict__`` and names them in ``_fields`` (in the constructor's order);
    ``_hidden`` are those that neither compare nor show
    (``field(compare=False, repr=False)``). Instances of one class with equal
    fields are equal and hash alike; the repr is ``Name(field=value, ...)``;
    setting or deleting an attribute raises :class:`AttributeError`.
    """

    __slots__ = ()
    _fields: t.ClassVar[tuple[str, ...]] = ()
    _hidden: t.ClassVar[frozenset[str]] = frozenset()

    def _compared(self) -> tuple[object, ...]:
        fields = self.__dict__
        return tuple(fields[name] for name in self._fields if name not in self._hidden)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Value)
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        fields = self.__dict__
        shown = ", ".join(f"{name}={fields[name]!r}" for name in self._fields if name not in self._hidden)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")


class SQLScript(Value):
    """SQL text from a migration file and the line of the file it starts on."""

    _fields = ("text", "first_line")
    text: str
    #: 1-based line number of the file on which :attr:`text` starts.
    first_line: int

    def __init__(self, text: str, first_line: int) -> None:
        self.__dict__.update(text=text, first_line=first_line)




class Statement(Value):
    """One SQL statement of a script, and the line of its file it starts on."""

    _fields = ("sql", "line")
    sql: str
    line: int

    def __init__(self, sql: str, line: int) -> None:
        self.__dict__.update(sql=sql, line=line)


class StatementError(Exception):
    """A statement of a script failed; carries which one and the engine's error."""

    def __init__(self, statement: Statement, error: Exception) -> None:
        super().__init__(str(error))
        self.statement = statement
        self.error = error


class Refused(Exception):
    """A migration carried on after the backend refused its transaction control.

    Raised by :meth:`Backend.run_in_transaction` after the step returned: what
    the migration meant to do did not happen as written, so it must not be
    recorded as applied.
    """


#: Put first in a step's ``refused`` list by a backend that cannot undo what the step did: it
#: ended its transaction itself, unguarded, so what it had done was committed. Its failure
#: must say so, not "rolled back" (see :func:`selfmigrate.core.execute.failure`).
COMMITTED_ITSELF = "committed itself"


class Snapshot(Value):
    """A snapshot file of a database."""

    _fields = ("path", "created", "version", "size", "key")
    #: The snapshot file.
    path: Path
    #: When it was taken (UTC).
    created: dt.datetime
    #: The newest applied version it holds (``0``: none recorded).
    version: int
    #: Its size in bytes.
    size: int
    #: The identity key of the database it was taken of (its path and lineage);
    #: ``None`` for a snapshot in the older format, whose name has no key.
    key: str | None

    def __init__(self, path: Path, created: dt.datetime, version: int, size: int, key: str | None = None) -> None:
        self.__dict__.update(path=path, created=created, version=version, size=size, key=key)

    @property
    def name(self) -> str:
        """The file name; what ``restore`` accepts."""
        return self.path.name


class SchemaObject(Value):
    """One table, index, view or trigger, as far as a round trip compares it."""

    _fields = ("type", "table", "sql", "columns")
    #: ``"table"``, ``"index"``, ``"view"`` or ``"trigger"``.
    type: str
    #: The table it belongs to (its own name for a table).
    table: str
    #: Its definition, normalised so that quoting and layout do not count.
    sql: str
    #: For a table: (name, type, notnull, default, pk) per column.
    columns: tuple[tuple[object, ...], ...]

    def __init__(self, type: str, table: str, sql: str, columns: tuple[tuple[object, ...], ...] = ()) -> None:
        self.__dict__.update(type=type, table=table, sql=sql, columns=columns)


#: A database's schema: object name → :class:`SchemaObject`.
Schema = dict[str, SchemaObject]


if TYPE_CHECKING:
    class Cursor(t.Protocol):
        """What the core reads from :meth:`Connection.execute` (DB-API)."""

        def fetchone(self) -> t.Any: ...

        def fetchall(self) -> list[t.Any]: ...

        def __iter__(self) -> t.Iterator[t.Any]: ...


    class Connection(t.Protocol):
        """A connection as the core sees it: opaque, except DB-API ``execute`` and ``close``.

        The tracker's SQL is plain and uses :attr:`Backend.placeholder`; everything
        else an engine decides goes through the :class:`Backend`.
        """

        def execute(self, sql: str, parameters: t.Sequence[t.Any] = ..., /) -> Cursor: ...

        def close(self) -> None: ...

    #: A migration's Python ``up`` or ``down``: called with the connection.
    MigrationFunction = t.Callable[[t.Any], object]

    #: One direction of a migration: its SQL, or its Python function.
    Step = SQLScript | MigrationFunction


    class MigrationLock(t.Protocol):
        """The lock that serialises migrations which run outside a transaction.

        It must be released by the engine or the kernel when its holder dies, so that
        it never goes stale; a started row whose lock is free is an interrupted run.
        """

        @property
        def held(self) -> bool:
            """Whether this object holds the lock."""
            ...

        def acquire(self, timeout: float) -> None:
            """Take the lock, waiting up to ``timeout`` seconds (:class:`LockTimeout` after)."""
            ...

        def try_acquire(self) -> bool:
            """Take the lock if it is free, without waiting; return whether it was taken."""
            ...

        def held_elsewhere(self) -> bool:
            """Whether another process holds the lock right now (writes nothing)."""
            ...

        def release(self) -> None:
            """Release the lock if held."""
            ...

        def describe(self) -> str:
            """The lock, for messages."""
            ...

        def __enter__(self) -> t.Self: ...

        def __exit__(self, *exc: object) -> None: ...


    class Backend(t.Protocol):
        """Everything a database engine decides, for one database.

        The runner, the tracker, the status, the operator tasks and the test
        machinery call only this; a new engine is a folder under ``backends/`` with a
        class that has these members, and one line in :mod:`selfmigrate.backends.select`.
        """

        #: The engine's name (``"sqlite"``).
        name: str
        #: The DB-API parameter marker of the engine's driver (``"?"``, ``"%s"``).
        placeholder: str
        #: The column type of a version in the tracker: a signed 64-bit integer
        #: (``"INTEGER"`` in SQLite, ``"BIGINT"`` in PostgreSQL).
        integer_type: str
        #: Seconds to wait for the write lock and for a busy database.
        lock_timeout: float
        #: The driver's error classes, for :meth:`database_error`.
        engine_errors: tuple[type[Exception], ...]

        def describe(self) -> str:
            """The database, for messages."""
            ...

        def missing(self) -> bool:
            """Whether the database does not exist (``apply`` would create it)."""
            ...

        def reset_wait(self, waited: float = 0.0) -> None:
            """Start a run's wait budget: :attr:`lock_timeout` in all for every wait from now on
            (busy database, write lock, migration lock), ``waited`` of it already spent."""
            ...

        def acquire(self, lock: MigrationLock) -> None:
            """Take ``lock``, waiting as long as the budget allows (:class:`LockTimeout` after)."""
            ...

        def connect(self, *, create: bool = True) -> Connection:
            """Open the database, transactions explicit; ``create=False``: a missing one is an error."""
            ...

        def locked_transaction(self, conn: Connection) -> t.ContextManager[None]:
            """``with backend.locked_transaction(conn):`` a transaction holding the write lock.

            Commits when the block ends, rolls back when it raises. Waits for the lock
            at most :attr:`lock_timeout` seconds (:class:`LockTimeout`).
            """
            ...

        def try_locked_transaction(self, conn: Connection) -> t.ContextManager[bool]:
            """``with backend.try_locked_transaction(conn) as locked:`` the write lock, if it is free now.

            Never waits for another writer: ``locked`` is ``False`` (and no
            transaction is open) when one holds the lock, or the database cannot be
            written. When ``True``, the block runs in a transaction holding the lock,
            committed when it ends, rolled back when it raises; a commit that would
            have to wait is rolled back instead. For writes that may be skipped (the
            runner's re-certification of the files' fingerprint): the next start tries again.
            """
            ...

        def change_marker(self, conn: Connection) -> object | None:
            """A value that stays equal on ``conn`` for as long as no other connection commits.

            Read inside a :meth:`locked_transaction` of ``conn``; read again later on
            the same connection (idle, still open), an equal value means that nobody
            else has committed in between, so what this run knows of the tracker
            still holds. ``None``: the engine cannot tell, or ``conn`` must not stay
            open (the runner closes it, and re-reads the tracker in full next time).
            """
            ...

        def run_in_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
            """Run ``step`` in the open transaction, refusing transaction control meanwhile.

            Each refused statement is appended to ``refused``; if any was, this raises
            (:class:`Refused` when the step caught the refusal and returned). A
            failing statement is a :class:`StatementError`; the caller rolls back.
            """
            ...

        def run_outside_transaction(self, conn: Connection, step: Step, refused: list[str]) -> None:
            """Run ``step`` with no transaction open (a non-transactional migration).

            Raises if it fails or leaves a transaction open (what is open is rolled
            back); what the backend refused is appended to ``refused``.
            """
            ...

        def failure_advice(self, error: BaseException, refused: list[str], *, transactional: bool = True) -> list[str]:
            """The lines of a migration's failure message the engine adds: why ``error`` or
            ``refused[0]`` happened and what to do (a full disk, a statement that needs
            no transaction). ``transactional``: the migration ran in selfmigrate's transaction.
            """
            ...

        def database_error(self, error: Exception) -> SelfMigrateError:
            """A clear selfmigrate error for an engine error met outside a migration."""
            ...

        def migration_lock(self) -> MigrationLock:
            """The lock for migrations that run outside a transaction."""
            ...

        def check_integrity(self, conn: Connection) -> None:
            """Refuse (:class:`DatabaseError`) to migrate a damaged or read-only database."""
            ...

        def has_objects(self, conn: Connection, *, exclude: t.Collection[str] = ()) -> bool:
            """Whether the database holds any table, index, view… other than ``exclude``."""
            ...

        def table_columns(self, conn: Connection, table: str) -> list[str] | None:
            """The column names of ``table``, or ``None`` if there is no such table."""
            ...

        def snapshot_before_change(
            self,
            *,
            since: float,
            version: int | None,
            oldest: tuple[int, str, str] | None,
            table: str,
            directory: str | os.PathLike[str] | None,
            keep: int | None,
        ) -> Snapshot | None:
            """A snapshot of the database as it is now (inside the write lock).

            ``oldest`` is the tracker's oldest row (version, applied at, applied
            by): the database's lineage, which tells its snapshots from those of
            other databases. One taken since ``since`` (a time stamp) by another
            process of the same start, or one of the same unchanged data, is reused.
            ``None``: the engine takes none in this configuration (it says so in its
            log), and none is claimed.
            """
            ...

        def list_snapshots(
            self, *, directory: str | os.PathLike[str] | None = None, table: str = DEFAULT_TABLE
        ) -> list[Snapshot]:
            """The database's snapshots, newest first (never another database's)."""
            ...

        def find_snapshot(
            self,
            name: str | os.PathLike[str],
            *,
            directory: str | os.PathLike[str] | None = None,
            table: str = DEFAULT_TABLE,
        ) -> Snapshot:
            """The snapshot named ``name`` (:class:`BackupError` listing those there are)."""
            ...

        def restore(
            self,
            snapshot: str | os.PathLike[str],
            *,
            directory: str | os.PathLike[str] | None = None,
            wait: float = 0.5,
            table: str = DEFAULT_TABLE,
        ) -> Snapshot:
            """Put one of the database's snapshots back; return the snapshot of what it replaced."""
            ...

        def read_schema(self, *, exclude: t.Collection[str] = ()) -> Schema:
            """The database's schema (empty if it does not exist), without ``exclude`` and their indexes."""
            ...
