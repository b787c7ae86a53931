"""Write a first migration that creates the schema of an existing SQLite database.

For moving to selfmigrate from another tool (Flask-Migrate/Alembic, a home-made
script): the schema the old tool built becomes ``0001``. A new database runs
it; an existing one records it as applied with ``baseline --version 1``.

Usage::

    python schema_to_migration.py DATABASE MIGRATION_FILE

Tables come first, then indexes, views and triggers, each in the order they
were created. SQLite's own tables and the old tools' bookkeeping tables are left
out. The database is opened read-only.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

#: Bookkeeping tables of migration tools: not part of the app's schema.
SKIPPED_TABLES = (
    "alembic_version",  # Flask-Migrate / Alembic
    "schema_migrations",  # selfmigrate's tracker (the default name) ...
    "schema_migrations_fingerprint",  # ... and its companions
    "schema_migrations_layout",
    "schema_migrations_rollback",
    "schema_migrations_legacy",  # a home-made table moved aside by 'adopt'
)
ORDER = {"table": 0, "index": 1, "view": 2, "trigger": 3}


def schema_statements(database: str) -> list[str]:
    """The ``CREATE`` statements of the database's schema, in an order that replays."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT type, tbl_name, sql FROM sqlite_schema"
            " WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    kept = [(kind, sql) for kind, table, sql in rows if table not in SKIPPED_TABLES]
    return [sql for kind, sql in sorted(kept, key=lambda row: ORDER[row[0]])]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    database, target = argv[1], Path(argv[2])
    if target.exists():
        print(f"{target} exists; not overwriting it.", file=sys.stderr)
        return 2
    statements = schema_statements(database)
    header = f"-- The schema of {Path(database).name} when it moved to selfmigrate.\n\n"
    target.write_text(header + "".join(f"{sql};\n\n" for sql in statements), encoding="utf-8")
    print(f"Wrote {len(statements)} statement(s) to {target}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
