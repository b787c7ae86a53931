"""The tracker table: its layout, reading and writing rows, foreign tables left alone."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import typing as t
from pathlib import Path

import pytest

import selfmigrate
from selfmigrate import ConfigError, MigrationRegistry, TrackerError
from selfmigrate.backends.sqlite.backend import SQLiteBackend
from selfmigrate.core.tracker import APPLIED, COLUMNS, Tracker

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory


@pytest.fixture
def conn(db_path: Path) -> t.Iterator[sqlite3.Connection]:
    connection = SQLiteBackend(db_path).connect()
    yield connection
    connection.close()


def test_ensure_creates_the_table_once(db_path: Path, conn: sqlite3.Connection) -> None:
    tracker = Tracker(SQLiteBackend(db_path))
    assert tracker.read(conn) == {}
    assert not tracker.check_layout(conn)
    tracker.ensure(conn)
    tracker.ensure(conn)
    assert tracker.check_layout(conn)
    assert [r[1] for r in conn.execute("PRAGMA table_info(schema_migrations)")] == list(COLUMNS)
    assert tracker.read(conn) == {}


def test_record_read_set_checksum_remove(
    make_migrations: MigrationsFactory, db_path: Path, conn: sqlite3.Connection
) -> None:
    migrations = MigrationRegistry(make_migrations({"0001_a.sql": "SELECT 1;", "0007_b.sql": "SELECT 7;"})).migrations
    tracker = Tracker(SQLiteBackend(db_path))
    tracker.ensure(conn)
    written = [tracker.record(conn, m, 12.34567) for m in migrations]
    rows = tracker.read(conn)
    assert list(rows) == [1, 7]
    assert list(rows.values()) == written
    row = rows[7]
    assert (row.version, row.name, row.id, row.checksum) == (7, "b", "0007_b", migrations[1].checksum)
    assert row.duration_ms == 12.346 and row.state == APPLIED
    assert dt.datetime.fromisoformat(row.applied_at).utcoffset() == dt.timedelta(0)
    assert str(os.getpid()) in row.applied_by

    tracker.set_checksum(conn, 7, "f" * 64)
    assert tracker.read(conn)[7].checksum == "f" * 64
    tracker.remove(conn, 1)
    assert list(tracker.read(conn)) == [7]


def test_versions_are_unique(make_migrations: MigrationsFactory, db_path: Path, conn: sqlite3.Connection) -> None:
    (migration,) = MigrationRegistry(make_migrations({"0001_a.sql": "SELECT 1;"})).migrations
    tracker = Tracker(SQLiteBackend(db_path))
    tracker.ensure(conn)
    tracker.record(conn, migration, 1.0)
    with pytest.raises(sqlite3.IntegrityError):
        tracker.record(conn, migration, 1.0)


@pytest.mark.parametrize("name", ["", "schema migrations", "x; DROP TABLE t", "1abc", 'a"b'])
def test_table_name_must_be_an_identifier(db_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        Tracker(SQLiteBackend(db_path), name)


def test_foreign_table_of_the_same_name_is_never_touched(make_migrations: MigrationsFactory, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE schema_migrations (filename TEXT PRIMARY KEY, ran_at TEXT)")
    conn.executemany(
        "INSERT INTO schema_migrations VALUES (?, ?)", [("001_init.sql", "2024-01-01"), ("002_x.sql", "2024-02-01")]
    )
    conn.commit()
    before = "\n".join(conn.iterdump())
    conn.close()

    location = make_migrations({"0001_a.sql": "CREATE TABLE a (x);"})
    with pytest.raises(TrackerError) as info:
        selfmigrate.migrate(db_path, location)
    message = str(info.value)
    assert str(db_path) in message and "schema_migrations" in message
    assert "filename, ran_at" in message
    assert "adopt" in message and "never alters or drops" in message

    conn = sqlite3.connect(db_path)
    assert "\n".join(conn.iterdump()) == before  # not altered, no table a
    conn.close()

    # Another tracker name works beside it, and still leaves it alone.
    selfmigrate.migrate(db_path, location, table="selfmigrate_history")
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT filename FROM schema_migrations").fetchall() == [("001_init.sql",), ("002_x.sql",)]
    assert conn.execute("SELECT version FROM selfmigrate_history").fetchall() == [(1,)]
    conn.close()


def test_tracker_with_a_missing_column_is_foreign(db_path: Path, conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, checksum TEXT, applied_at TEXT)"
    )
    with pytest.raises(TrackerError):
        Tracker(SQLiteBackend(db_path)).read(conn)


def test_rows_read_are_the_values_the_constructor_makes(tmp_path: Path) -> None:
    import inspect

    from selfmigrate.core.tracker import _FIELDS, AppliedMigration

    assert tuple(inspect.signature(AppliedMigration).parameters) == _FIELDS == AppliedMigration._fields
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\n-- migrate:down\nDROP TABLE a;\n")
    (folder / "0002_b.py").write_text("def up(conn):\n    conn.execute('CREATE TABLE b (id INTEGER)')\n")
    database = tmp_path / "app.sqlite"
    selfmigrate.migrate(database, str(folder), backup=False)
    backend = SQLiteBackend(database)
    conn = backend.connect()
    try:
        rows = Tracker(backend).read(conn)
    finally:
        conn.close()
    for row in rows.values():
        rebuilt = AppliedMigration(**{name: getattr(row, name) for name in _FIELDS})
        assert row == rebuilt and hash(row) == hash(rebuilt) and repr(row) == repr(rebuilt)
    assert [(r.kind, r.compatible, r.down) for r in rows.values()] == [("sql", False, "stored"), ("py", False, "none")]
    for migration in MigrationRegistry(str(folder)).migrations:
        assert tuple(inspect.signature(type(migration)).parameters) == type(migration)._fields
        fields = {name: getattr(migration, name) for name in type(migration)._fields}
        assert migration == type(migration)(**fields) and hash(migration) == hash(type(migration)(**fields))


def test_values_behave_as_the_frozen_dataclasses_they_replace(tmp_path: Path) -> None:
    # Made without dataclasses (see backends/base.py Value): equality within one class,
    # hashing, the repr a frozen dataclass shows, and no assignment.
    from selfmigrate.backends.base import SQLScript, Statement
    from selfmigrate.core.migration import LoadedMigration, Migration
    from selfmigrate.core.tracker import AppliedMigration

    row = AppliedMigration(3, "c", "0" * 64, "2026-11-24T21:00:00+00:00", 1.5, "web-1 pid 3")
    assert repr(row) == (
        "AppliedMigration(version=3, name='c', checksum='" + "0" * 64 + "', applied_at='2026-11-24T21:00:00+00:00',"
        " duration_ms=1.5, applied_by='web-1 pid 3', state='applied', kind=None, compatible=None, down_checksum=None)"
    )
    assert row.as_dict()["state"] == "applied" and list(row.as_dict())[0] == "version"
    with pytest.raises(AttributeError):
        row.version = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del row.name
    one = Migration(1, "a", "sql", str(tmp_path / "0001_a.sql"), stat=(1, 2, 3))
    same = Migration(1, "a", "sql", str(tmp_path / "0001_a.sql"), package="p")
    assert one == same and hash(one) == hash(same)  # resource, package and stat do not count
    assert repr(one) == f"Migration(version=1, name='a', kind='sql', location={str(tmp_path / '0001_a.sql')!r})"
    assert Statement("x", 1) != SQLScript("x", 1) and Statement("x", 1) == Statement("x", 1)
    assert LoadedMigration(one) == LoadedMigration(same) != LoadedMigration(one, compatible=True)
