"""Keeping a migration inside the transaction selfmigrate runs it in.

Holds :func:`transaction_control` (does an SQL statement begin, end or prepare a
transaction?) and :class:`GuardedConnection`, the thin wrapper a Python migration's
``up(conn)`` gets: the psycopg connection with ``commit()``, ``rollback()``, autocommit
changes and transaction-ending SQL refused. Must not run anything itself.
"""

from __future__ import annotations

import re
import typing as t

from .sqltext import SQLTextError, split_statements

if t.TYPE_CHECKING:
    import psycopg

_CONTROL = re.compile(
    r"(?P<word>begin|start\s+transaction|commit|end|abort|prepare\s+transaction"
    r"|rollback(?!\s+(?:work\s+|transaction\s+)?to\b))\b",
    re.IGNORECASE,
)


def transaction_control(sql: str) -> str | None:
    """The transaction-control command ``sql`` starts with (``"COMMIT"``…), or ``None``.

    ``ROLLBACK TO SAVEPOINT`` is not one (it keeps the transaction open); neither
    is ``BEGIN`` inside a ``DO`` block or a function body (not the statement's start).
    """
    match = _CONTROL.match(sql.lstrip())
    return None if match is None else " ".join(match.group("word").upper().split())


class TransactionControlRefused(Exception):
    """A migration tried to end (or begin, or prepare) the transaction it runs in."""


def _text(query: object, conn: psycopg.Connection[t.Any]) -> str | None:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)
    return None if as_string is None else str(as_string(conn))


class _Guard:
    def __init__(self, conn: psycopg.Connection[t.Any], refused: list[str]) -> None:
        self.conn = conn
        self.refused = refused

    def refuse(self, what: str) -> t.NoReturn:
        self.refused.append(what)
        raise TransactionControlRefused(
            f"{what} refused: selfmigrate runs this migration in a transaction and commits it with its tracker row"
        )

    def check(self, query: object) -> None:
        text = _text(query, self.conn)
        if text is None:
            return
        try:
            statements = split_statements(text)
        except SQLTextError:
            return  # the server says what is wrong with it
        for statement in statements:
            word = transaction_control(statement.sql)
            if word is not None:
                self.refuse(word)


class GuardedCursor:
    """A psycopg cursor whose ``execute`` refuses transaction control; the rest is the cursor's."""

    def __init__(self, cursor: psycopg.Cursor[t.Any], guard: _Guard) -> None:
        self._cursor = cursor
        self._guard = guard

    def execute(self, query: t.Any, params: t.Any = None, **kwargs: t.Any) -> GuardedCursor:
        """``cursor.execute``, refusing BEGIN/COMMIT/ROLLBACK/END/ABORT/PREPARE TRANSACTION."""
        self._guard.check(query)
        self._cursor.execute(query, params, **kwargs)
        return self

    def executemany(self, query: t.Any, params_seq: t.Any, **kwargs: t.Any) -> None:
        """``cursor.executemany``, guarded as :meth:`execute`."""
        self._guard.check(query)
        self._cursor.executemany(query, params_seq, **kwargs)

    def __iter__(self) -> t.Iterator[t.Any]:
        return iter(self._cursor)

    def __enter__(self) -> GuardedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._cursor, name)


class GuardedConnection:
    """The psycopg connection a Python migration gets, inside its transaction.

    ``execute``, ``cursor``, ``transaction()`` (a savepoint), ``info``… behave as
    psycopg's; ending the transaction in any of the usual ways is refused with
    :class:`TransactionControlRefused` and noted in ``refused``. It is a guard
    against mistakes, not a sandbox: the raw connection stays reachable.
    """

    def __init__(self, conn: psycopg.Connection[t.Any], refused: list[str]) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_guard", _Guard(conn, refused))

    @property
    def connection(self) -> psycopg.Connection[t.Any]:
        """The underlying psycopg connection (for APIs that check its type)."""
        conn: psycopg.Connection[t.Any] = object.__getattribute__(self, "_conn")
        return conn

    def execute(self, query: t.Any, params: t.Any = None, **kwargs: t.Any) -> psycopg.Cursor[t.Any]:
        """``connection.execute``, refusing transaction control."""
        self._guard.check(query)
        return self.connection.execute(query, params, **kwargs)

    def cursor(self, *args: t.Any, **kwargs: t.Any) -> GuardedCursor:
        """A cursor whose ``execute`` is guarded too."""
        return GuardedCursor(self.connection.cursor(*args, **kwargs), self._guard)

    def commit(self) -> None:
        """Refused: selfmigrate commits the migration with its tracker row."""
        self._guard.refuse("COMMIT")

    def rollback(self) -> None:
        """Refused: raise an exception instead, and the migration is rolled back."""
        self._guard.refuse("ROLLBACK")

    def close(self) -> None:
        """Refused: the connection is selfmigrate's."""
        self._guard.refuse("close()")

    def set_autocommit(self, value: bool) -> None:
        """Refused: autocommit would end the transaction."""
        self._guard.refuse("autocommit")

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self.connection, name)

    def __setattr__(self, name: str, value: object) -> None:
        if name in {"autocommit", "isolation_level", "read_only", "deferrable"}:
            self._guard.refuse(f"setting {name}")
        setattr(self.connection, name, value)
