"""SQLite schema introspection for the migration checks: ``sqlite_master`` and ``PRAGMA table_info``.

Holds :func:`schema` and :func:`read_schema`, which describe a database as
:class:`~selfmigrate.backends.base.SchemaObject` values. Must not know migrations or the
round trip that compares them (:mod:`selfmigrate.testing.roundtrip`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import typing as t

from ..base import Schema, SchemaObject

_SPACE = re.compile(r"\s+")
_SPACE_AROUND = re.compile(r"\s*([(),;])\s*")
_QUOTES = re.compile(r"[\"`\[\]]")


def normalise_sql(sql: str | None) -> str:
    """``sql`` with runs of white space, spaces around ``( ) , ;`` and identifier quotes removed.

    SQLite keeps ``CREATE`` statements as written, and rewrites them when a table
    is altered or renamed (``ALTER TABLE new_t RENAME TO t`` stores ``"t"``); a
    round trip that rebuilds a table should not fail on quoting or layout.
    """
    if sql is None:
        return ""
    text = _QUOTES.sub("", sql)
    text = _SPACE.sub(" ", text).strip()
    return _SPACE_AROUND.sub(r"\1", text)


def schema(conn: sqlite3.Connection, *, exclude: t.Collection[str] = ()) -> Schema:
    """Read the schema of ``conn``'s main database.

    SQLite's own objects (``sqlite_sequence``, automatic indexes) and the tables
    named in ``exclude`` (the tracker) and their indexes are left out.
    """
    found: Schema = {}
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
    for kind, name, table, sql in rows:
        if name.startswith("sqlite_") or name in exclude or table in exclude:
            continue
        columns: tuple[tuple[object, ...], ...] = ()
        if kind == "table":
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = tuple(tuple(row[1:]) for row in info)
        found[name] = SchemaObject(kind, table, normalise_sql(sql), columns)
    return found


def read_schema(database: str | os.PathLike[str], *, exclude: t.Collection[str] = ()) -> Schema:
    """:func:`schema` of a database file."""
    conn = sqlite3.connect(database)
    try:
        return schema(conn, exclude=exclude)
    finally:
        conn.close()
