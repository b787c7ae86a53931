"""Make author.email NOT NULL, UNIQUE and checked: a change ALTER TABLE cannot make.

SQLite's ALTER TABLE renames tables and columns, adds columns and drops them;
any other change (a constraint, a column's type or default, the column order) is
made by rebuilding the table, following the "12 steps" of SQLite's ALTER TABLE
documentation. selfmigrate.sqlite.transform does all of them: it builds the new
table, copies every row (rowids included), swaps the tables, recreates the
indexes, triggers and views, and checks the foreign keys, inside this
migration's transaction.
"""

from __future__ import annotations

import sqlite3

from selfmigrate.sqlite import transform


def up(conn: sqlite3.Connection) -> None:
    # A row that breaks a new constraint stops the migration, and nothing changes:
    # "UNIQUE constraint failed: author.email".
    transform(
        conn,
        "author",
        not_null={"email"},
        add_uniques=["email"],
        add_checks=["email LIKE '%_@_%'"],
    )
