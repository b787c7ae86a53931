"""Adopting a database migrated by a home-made system: ``adopt`` / ``baseline --from-legacy``.

Each test builds the legacy database itself: an app table with data, and a
home-made ``schema_migrations`` table of its own layout. After adoption every
legacy row must still be there (in the renamed table), the history must be
imported with its dates, and the next apply must run only what is new.
"""

from __future__ import annotations

import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from helpers import connected
from test_cli import FILES, tables, tracker, write

import selfmigrate
from selfmigrate.faces.cli.main import cli

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

LEGACY_ROWS = [
    ("0001_create_items.sql", "2024-01-05 10:00:00"),
    ("0002_add_price.sql", "2024-02-01 09:30:00"),
]


def build_legacy(db: Path, rows: t.Sequence[tuple[object, object]] = LEGACY_ROWS) -> None:
    """What an entrypoint script that records file names leaves behind."""
    with connected(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price INTEGER)")
        conn.executemany("INSERT INTO items (title, price) VALUES (?, ?)", [("lamp", 40), ("desk", 250)])
        conn.execute(
            "CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, filename TEXT NOT NULL,"
            " applied_on TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        conn.executemany("INSERT INTO schema_migrations (filename, applied_on) VALUES (?, ?)", rows)
    conn.close()


def dump(db: Path, table: str) -> list[tuple[object, ...]]:
    with connected(db) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    conn.close()
    return rows


def items(db: Path) -> list[tuple[object, ...]]:
    return dump(db, "items")


@pytest.fixture
def folder(make_migrations: MigrationsFactory) -> Path:
    return Path(make_migrations(FILES, package=False))


def run(db: Path, folder: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-d", str(db), "-m", str(folder), *args], input=input)


def applied_at(db: Path) -> dict[int, str]:
    with connected(db) as conn:
        rows = conn.execute("SELECT version, applied_at, applied_by FROM schema_migrations").fetchall()
    conn.close()
    assert all(by.startswith("adopted from ") for _, _, by in rows)
    return {version: at for version, at, _ in rows}


def test_adopt_keeps_every_row_and_imports_dates(folder: Path, db_path: Path) -> None:
    build_legacy(db_path)
    legacy_before = dump(db_path, "schema_migrations")
    items_before = items(db_path)
    with pytest.raises(selfmigrate.TrackerError, match="adopt"):
        selfmigrate.migrate(db_path, folder)  # startup refuses the foreign table and points here

    result = run(db_path, folder, "adopt", "--yes")
    assert result.exit_code == 0, result.output
    assert "table schema_migrations (2 row(s); migrations named by column filename, dates from column" in result.stdout
    assert "renamed to schema_migrations_legacy" in result.stdout
    assert "Pending after adoption: 0003_add_index." in result.stdout
    assert dump(db_path, "schema_migrations_legacy") == legacy_before
    assert tracker(db_path) == [(1, "create_items"), (2, "add_price")]
    assert applied_at(db_path) == {1: "2024-01-05T10:00:00+00:00", 2: "2024-02-01T09:30:00+00:00"}

    report = selfmigrate.migrate(db_path, folder)
    assert [r.version for r in report.applied] == [3]
    assert items(db_path) == items_before
    assert "items_title" in tables(db_path)


def test_baseline_from_legacy_is_adopt(folder: Path, db_path: Path) -> None:
    build_legacy(db_path)
    result = run(db_path, folder, "baseline", "--from-legacy", "--yes")
    assert result.exit_code == 0, result.output
    assert tracker(db_path) == [(1, "create_items"), (2, "add_price")]
    assert len(dump(db_path, "schema_migrations_legacy")) == 2


def test_asks_first_and_declining_changes_nothing(folder: Path, db_path: Path) -> None:
    build_legacy(db_path)
    before = db_path.read_bytes()
    result = run(db_path, folder, "adopt", input="n\n")
    assert result.exit_code == 1
    assert "0002_add_price  2024-02-01T09:30:00+00:00  (was 0002_add_price.sql)" in result.stdout
    assert db_path.read_bytes() == before


def test_another_layout_and_table_name(folder: Path, db_path: Path) -> None:
    """Versions as numbers, Unix times, a table of another name, duplicates from a re-run."""
    with connected(db_path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price INTEGER)")
        conn.execute("CREATE TABLE migration_log (id INTEGER PRIMARY KEY, version INTEGER, ran INTEGER, note TEXT)")
        conn.executemany(
            "INSERT INTO migration_log (version, ran, note) VALUES (?, ?, ?)",
            [(1, 1704448800, "first"), (2, 1706779800, None), (2, 1706780000, "re-run by hand")],
        )
    conn.close()
    legacy_before = dump(db_path, "migration_log")
    result = run(db_path, folder, "adopt", "--legacy-table", "migration_log", "--date-column", "ran", "--yes")
    assert result.exit_code == 0, result.output
    assert "more than once; the earliest date is kept" in result.stdout
    assert dump(db_path, "migration_log_legacy") == legacy_before
    assert "migration_log" not in tables(db_path)
    assert applied_at(db_path) == {1: "2024-01-05T10:00:00+00:00", 2: "2024-02-01T09:30:00+00:00"}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([*LEGACY_ROWS, ("0009_dropped.sql", "2024-03-01 00:00:00")], "no file of their version: 0009_dropped.sql"),
        ([("0001_make_items.sql", "2024-01-05 10:00:00")], "0001_make_items.sql → 0001_create_items.sql"),
    ],
    ids=["unknown-version", "other-name"],
)
def test_rows_that_do_not_match_change_nothing(
    folder: Path, db_path: Path, rows: list[tuple[str, str]], expected: str
) -> None:
    build_legacy(db_path, rows)
    before = db_path.read_bytes()
    result = run(db_path, folder, "adopt", "--yes")
    assert result.exit_code == 2
    assert expected in result.stderr and "Nothing was changed" in result.stderr
    assert result.stderr.count("\n") == 1
    assert db_path.read_bytes() == before


def test_bad_input_changes_nothing(folder: Path, db_path: Path) -> None:
    build_legacy(db_path)
    with connected(db_path) as conn:
        conn.execute("CREATE TABLE schema_migrations_legacy (x)")
    conn.close()
    before = db_path.read_bytes()
    cases = [
        (["adopt", "--yes"], "--rename-to"),
        (["adopt", "--legacy-table", "nope", "--yes"], "has no table nope"),
        (["adopt", "--rename-to", "old", "--name-column", "applied_on", "--yes"], "does not name migrations"),
        (["adopt", "--rename-to", "old", "--date-column", "when", "--yes"], "has no column when"),
        (["adopt", "--rename-to", "old; DROP TABLE items", "--yes"], "not a plain SQL identifier"),
    ]
    for args, expected in cases:
        result = run(db_path, folder, *args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.stderr, (args, result.stderr)
    assert db_path.read_bytes() == before
    result = run(db_path, folder, "adopt", "--rename-to", "homemade_history", "--yes")
    assert result.exit_code == 0, result.output
    assert len(dump(db_path, "homemade_history")) == 2


def test_a_failure_half_way_is_undone(folder: Path, db_path: Path) -> None:
    """The tracker cannot be created (a view has its name) after the legacy table was renamed."""
    with connected(db_path) as conn:
        conn.execute("CREATE TABLE migration_log (filename TEXT, applied_on TEXT)")
        conn.execute("INSERT INTO migration_log VALUES ('0001_create_items.sql', '2024-01-05 10:00:00')")
        conn.execute("CREATE VIEW schema_migrations AS SELECT 1 AS one")
    conn.close()
    before = db_path.read_bytes()
    result = run(db_path, folder, "adopt", "--legacy-table", "migration_log", "--yes")
    assert result.exit_code == 2
    assert "Nothing was changed" in result.stderr and "Traceback" not in result.output
    assert db_path.read_bytes() == before
    assert dump(db_path, "migration_log") == [("0001_create_items.sql", "2024-01-05 10:00:00")]


def test_empty_legacy_table(folder: Path, db_path: Path) -> None:
    build_legacy(db_path, rows=[])
    result = run(db_path, folder, "adopt", "--yes")
    assert result.exit_code == 0, result.output
    assert "Adopted 0 migration(s)" in result.stdout
    assert "Pending after adoption: 0001_create_items, 0002_add_price, 0003_add_index." in result.stdout
    assert "schema_migrations_legacy" in tables(db_path) and tracker(db_path) == []


def test_nothing_to_adopt(folder: Path, db_path: Path) -> None:
    selfmigrate.migrate(db_path, folder)
    before = db_path.read_bytes()
    result = run(db_path, folder, "adopt", "--yes")
    assert result.exit_code == 2 and "already is selfmigrate's tracker" in result.stderr
    assert db_path.read_bytes() == before


def test_flask_face(folder: Path, db_path: Path) -> None:
    """An app whose start logs the foreign table (failure policy "log") adopts it with its own command."""
    build_legacy(db_path)
    app = Flask("legacy_app", root_path=str(db_path.parent))
    app.config.update(
        SELFMIGRATE_DATABASE=str(db_path), SELFMIGRATE_MIGRATIONS=str(folder), SELFMIGRATE_ON_FAILURE="log"
    )
    report = selfmigrate.apply(app)
    assert isinstance(report.error, selfmigrate.TrackerError)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["selfmigrate", "adopt", "--yes"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["selfmigrate", "apply"])
    assert result.exit_code == 0, result.output
    assert "Applied 0003_add_index" in result.stdout
    assert [v for v, _ in tracker(db_path)] == [1, 2, 3]
    assert len(dump(db_path, "schema_migrations_legacy")) == 2


def test_subprocess(folder: Path, db_path: Path) -> None:
    build_legacy(db_path)
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(db_path), "-m", str(folder), "adopt", "--yes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Adopted 2 migration(s); schema_migrations is now schema_migrations_legacy with all 2 row(s)." in done.stdout
    write(folder, {"0004_more.sql": "ALTER TABLE items ADD COLUMN stock INTEGER;"})
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(db_path), "-m", str(folder), "apply"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [v for v, _ in tracker(db_path)] == [1, 2, 3, 4]
