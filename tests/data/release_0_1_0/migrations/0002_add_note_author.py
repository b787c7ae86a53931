"""A Python migration with a down: a column and a backfill."""

from __future__ import annotations

import sqlite3


def up(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE note ADD COLUMN author TEXT")
    conn.execute("UPDATE note SET author = 'unknown'")


def down(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE note DROP COLUMN author")
