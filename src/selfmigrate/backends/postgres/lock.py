"""PostgreSQL advisory locks for migrations: keys, polling the *try* form, who holds one.

Holds :func:`lock_key` (from the tracker's schema-qualified name), :func:`poll` (the
bounded wait with backoff, never a blocking ``pg_advisory_lock`` in the server),
:func:`describe_holders` (from ``pg_locks`` and ``pg_stat_activity``) and
:class:`SessionLock`, the migration lock of non-transactional migrations on a
connection of its own. Must not know the tracker's rows or the runner.
"""

from __future__ import annotations

import hashlib
import random
import time
import typing as t

from ...errors import LockTimeout

if t.TYPE_CHECKING:
    import psycopg

#: First pause between two tries, and the longest one (seconds).
FIRST_PAUSE = 0.01
MAX_PAUSE = 0.5

#: What the transactional migrations lock, and what the non-transactional ones do.
TRANSACTION_LOCK = "migrations"
SESSION_LOCK = "no-transaction migrations"


def lock_key(qualified_table: str, purpose: str) -> int:
    """A signed 64-bit advisory lock key for ``purpose`` on the tracker ``qualified_table``.

    Derived from the schema-qualified name, so two apps (two schemas, or two
    tracker tables) on one server never wait for each other; advisory locks are
    per database already.
    """
    digest = hashlib.sha256(f"selfmigrate:{purpose}:{qualified_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def key_parts(key: int) -> tuple[int, int]:
    """``pg_locks``' ``classid`` and ``objid`` of a bigint advisory lock ``key`` (its ``objsubid`` is 1)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def poll(try_once: t.Callable[[], bool], timeout: float) -> float | None:
    """Call ``try_once`` until it returns true or ``timeout`` seconds passed.

    Pauses grow from :data:`FIRST_PAUSE` to :data:`MAX_PAUSE` (with jitter, so
    that processes started together do not retry together). Returns the seconds
    waited, or ``None`` if the lock was never taken.
    """
    started = time.monotonic()
    pause = FIRST_PAUSE
    while True:
        if try_once():
            return time.monotonic() - started
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            return None
        time.sleep(min(left, pause * random.uniform(0.5, 1.0)))
        pause = min(pause * 2, MAX_PAUSE)


def describe_holders(conn: psycopg.Connection[t.Any], key: int) -> str:
    """Who holds advisory lock ``key`` in this database, for a lock timeout message.

    Reads ``pg_locks`` and ``pg_stat_activity``; a role without
    ``pg_read_all_stats`` sees less of other roles' sessions, which is said.
    """
    classid, objid = key_parts(key)
    rows = conn.execute(
        "SELECT a.pid, a.application_name, host(a.client_addr), a.usename,"
        " to_char(coalesce(a.xact_start, a.state_change, a.backend_start) AT TIME ZONE 'UTC',"
        ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), a.state, l.mode'
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.classid::bigint = %s AND l.objid::bigint = %s"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (classid, objid),
    ).fetchall()
    if not rows:
        return "no session holds it any more (it was released just now)"
    described = []
    for pid, application, address, user, since, state, _mode in rows:
        described.append(
            f"server pid {pid} (application_name {application or 'not set'!r}, client"
            f" {address or 'local socket or not visible'}, user {user or 'not visible'}, holding it since"
            f" {since or 'unknown'}, {state or 'state not visible'})"
        )
    return "held by " + "; ".join(described)


def try_xact_lock(conn: psycopg.Connection[t.Any], key: int) -> bool:
    """One try of ``pg_try_advisory_xact_lock(key)`` in the open transaction."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def timeout_error(conn: psycopg.Connection[t.Any], key: int, what: str, database: str, waited: float) -> LockTimeout:
    """The :class:`LockTimeout` for a lock not taken in ``waited`` seconds, naming its holder."""
    import psycopg

    try:
        holders = describe_holders(conn, key)
    except psycopg.Error as e:
        holders = f"its holder could not be read ({type(e).__name__}: {e})"
    return LockTimeout(
        f"Timed out after {waited:.1f} s waiting for the selfmigrate lock of {what} on database"
        f" {database} (advisory lock {key}); {holders}. Another process is migrating this database:"
        " if a long migration is running, raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT);"
        " if that session is stuck, end it with SELECT pg_terminate_backend(<pid>)."
    )


class SessionLock:
    """The migration lock of non-transactional migrations: a session-level advisory lock.

    Held on a connection of its own (opened by ``connect``), so that the server
    releases it when that session ends, however the process ends. Taken by
    polling ``pg_try_advisory_lock``; a connection through a transaction-pooling
    pgbouncer is refused before any wait (see :func:`.pooler.check_direct`).

    :param connect: opens the lock's connection (autocommit).
    :param key: the advisory lock key.
    :param database: the database, for messages.
    :param check_direct: raises if the connection is not a direct one.
    """

    def __init__(
        self,
        connect: t.Callable[[], psycopg.Connection[t.Any]],
        key: int,
        database: str,
        check_direct: t.Callable[[psycopg.Connection[t.Any]], None],
    ) -> None:
        self._connect = connect
        self.key = key
        self.database = database
        self._check_direct = check_direct
        self.conn: psycopg.Connection[t.Any] | None = None
        self._held = False
        self._checked = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._held

    def _open(self, *, direct: bool = True) -> psycopg.Connection[t.Any]:
        if self.conn is None or self.conn.closed:
            self.conn = self._connect()
            self._checked = False
        if direct and not self._checked:
            try:
                self._check_direct(self.conn)
            except BaseException:
                self.conn.close()
                self.conn = None
                raise
            self._checked = True
        return self.conn

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether it was taken."""
        if self._held:
            return True
        conn = self._open()
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        self._held = bool(row and row[0])
        return self._held

    def acquire(self, timeout: float) -> None:
        """Take the lock, polling for at most ``timeout`` seconds.

        :raises LockTimeout: not taken in time; the message names the holder.
        """
        waited = poll(self.try_acquire, timeout)
        if waited is None:
            assert self.conn is not None
            raise timeout_error(self.conn, self.key, SESSION_LOCK, self.database, timeout)

    def held_elsewhere(self) -> bool:
        """Whether another session holds the lock now (reads ``pg_locks`` only)."""
        conn = self._open(direct=False)  # reading pg_locks works through a pooler too
        classid, objid = key_parts(self.key)
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid::bigint = %s AND objid::bigint = %s AND pid <> pg_backend_pid()"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (classid, objid),
        ).fetchone()
        return bool(row and row[0])

    def release(self) -> None:
        """Release the lock and close its connection (closing alone would release it too)."""
        conn, self.conn = self.conn, None
        held, self._held = self._held, False
        if conn is None:
            return
        # Closing the session releases the lock too; unlocking first says so in the server's log.
        try:
            if held and not conn.closed and conn.info.transaction_status == 0:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        finally:
            conn.close()

    def describe(self) -> str:
        """The lock, for messages."""
        return f"session advisory lock {self.key} on {self.database}"

    def __enter__(self) -> SessionLock:
        self.acquire(60.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
