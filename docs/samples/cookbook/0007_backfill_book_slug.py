"""Backfill in Python: a new column computed from each row, where SQL is awkward.

The column, its values and its index are one transaction: either every book
has a slug and the index exists, or nothing changed.
"""

from __future__ import annotations

import re
import sqlite3


def up(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE book ADD COLUMN slug TEXT")
    books = conn.execute("SELECT id, title FROM book").fetchall()
    conn.executemany(
        "UPDATE book SET slug = ? WHERE id = ?",
        [(f"{slugify(title)}-{book_id}", book_id) for book_id, title in books],
    )
    conn.execute("CREATE UNIQUE INDEX book_slug ON book (slug)")


def down(conn: sqlite3.Connection) -> None:
    conn.execute("DROP INDEX book_slug")
    conn.execute("ALTER TABLE book DROP COLUMN slug")


def slugify(title: str) -> str:
    """``"The Name of the Rose!"`` -> ``"the-name-of-the-rose"``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
