"""Let a saved search carry its own SQL: the custom_sql_query column.

Version 2 of the app reads and writes this column. Before selfmigrate, a new
image started against the old database and every request failed until someone
added the column by hand; now the app adds it when it starts.
"""

from __future__ import annotations

import sqlite3


def up(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE saved_search ADD COLUMN custom_sql_query TEXT")
    # Before version 2 people pasted SQL into the text query; copy it to the new
    # column. Same transaction as the ALTER: both stay, or neither does.
    rows = conn.execute("SELECT id, query FROM saved_search").fetchall()
    for search_id, query in rows:
        if query.lstrip().upper().startswith("SELECT "):
            conn.execute("UPDATE saved_search SET custom_sql_query = ? WHERE id = ?", (query, search_id))


def down(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE saved_search DROP COLUMN custom_sql_query")
