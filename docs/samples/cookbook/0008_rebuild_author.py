"""Make author.email NOT NULL, UNIQUE and checked: a change ALTER TABLE cannot make.

SQLite's ALTER TABLE renames tables and columns, adds columns and drops them;
any other change (a constraint, a column's type or default, the column order) is
made by rebuilding the table, following the "12 steps" of SQLite's ALTER TABLE
documentation. selfmigrate does some of them for you: the migration already runs
in a transaction that commits with its tracker row (steps 2 and 11), and on
selfmigrate's connection foreign keys are not enforced (SQLite's default), so
steps 1 and 12 (turning them off and on) are not needed.
"""

from __future__ import annotations

import sqlite3


def up(conn: sqlite3.Connection) -> None:
    # Step 3: remember the table's indexes and triggers (automatic indexes have no sql).
    schema = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE tbl_name = 'author' AND type IN ('index', 'trigger') AND sql IS NOT NULL"
    ).fetchall()
    # Step 4: the table as it should be.
    conn.execute(
        """
        CREATE TABLE new_author (
            id INTEGER PRIMARY KEY,
            full_name TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE CHECK (email LIKE '%_@_%')
        )
        """
    )
    # Step 5: copy the rows. A row that breaks a new constraint fails here, and
    # the whole migration rolls back: the old table is still there, untouched.
    conn.execute("INSERT INTO new_author (id, full_name, email) SELECT id, full_name, email FROM author")
    # Steps 6 and 7: swap the tables. book's REFERENCES author (id) now points
    # at the new table, by name.
    conn.execute("DROP TABLE author")
    conn.execute("ALTER TABLE new_author RENAME TO author")
    # Step 8: the indexes and triggers again (step 9: views too, if any used the table).
    for (sql,) in schema:
        conn.execute(sql)
    # Step 10: every row that refers to an author still finds it.
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"Rows refer to missing authors after the rebuild (table, rowid, parent, fk): {problems}")
