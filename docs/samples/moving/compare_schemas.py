"""Compare the schemas of two SQLite databases; list the differences.

Before recording migrations as applied without running them (``baseline``,
``adopt``), check that the database really has the schema those migrations
build: build a fresh database with them and compare.

Usage::

    python compare_schemas.py EXPECTED_DATABASE ACTUAL_DATABASE

Exits 0 when the schemas match, 1 when they differ (each difference printed).
Tables are compared by structure (columns with their types, defaults and NOT
NULL, primary keys, UNIQUE constraints, foreign keys, indexes), so a column
added by ``ALTER TABLE`` matches one written in ``CREATE TABLE``; CHECK
constraints are not compared. Views and triggers are compared by their SQL.
Migration tools' bookkeeping tables are left out. Both databases are opened
read-only.
"""

from __future__ import annotations

import sqlite3
import sys
import typing as t

SKIPPED_TABLES = (
    "alembic_version",  # Flask-Migrate / Alembic
    "schema_migrations",  # selfmigrate's tracker (the default name) ...
    "schema_migrations_fingerprint",  # ... and its companions
    "schema_migrations_layout",
    "schema_migrations_rollback",
    "schema_migrations_legacy",  # a home-made table moved aside by 'adopt'
)


def describe(database: str) -> dict[str, t.Any]:
    """Everything that makes up the schema, by object name."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        objects: dict[str, t.Any] = {}
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        ).fetchall()
        for kind, name, table, sql in rows:
            if table in SKIPPED_TABLES:
                continue
            if kind == "table":
                objects[f"table {name}"] = {
                    "columns": conn.execute(f'PRAGMA table_xinfo("{name}")').fetchall(),
                    "foreign keys": conn.execute(f'PRAGMA foreign_key_list("{name}")').fetchall(),
                    # UNIQUE and PRIMARY KEY constraints, as SQLite's automatic indexes.
                    "constraints": sorted(
                        (unique, origin, conn.execute(f'PRAGMA index_info("{index}")').fetchall())
                        for _, index, unique, origin, _ in conn.execute(f'PRAGMA index_list("{name}")')
                        if origin != "c"
                    ),
                }
            elif kind == "index":
                unique = conn.execute('SELECT "unique" FROM pragma_index_list(?) WHERE name = ?', (table, name))
                objects[f"index {name}"] = {
                    "table": table,
                    "unique": bool(unique.fetchone()[0]),
                    "columns": conn.execute(f'PRAGMA index_xinfo("{name}")').fetchall(),
                }
            else:
                objects[f"{kind} {name}"] = " ".join(sql.split())
        return objects
    finally:
        conn.close()


def differences(expected: str, actual: str) -> list[str]:
    """What differs between the two schemas, one line per object."""
    want, have = describe(expected), describe(actual)
    lines = [f"missing: {name}" for name in sorted(want.keys() - have.keys())]
    lines += [f"unexpected: {name}" for name in sorted(have.keys() - want.keys())]
    lines += [
        f"different: {name}\n  expected {want[name]}\n  actual   {have[name]}"
        for name in sorted(want.keys() & have.keys())
        if want[name] != have[name]
    ]
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    found = differences(argv[1], argv[2])
    for line in found:
        print(line)
    if not found:
        print("The schemas match.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
