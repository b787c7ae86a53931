"""Comparing migration files with tracker rows (pure), and Runner.status() on a database."""

from __future__ import annotations

import sqlite3
import typing as t
from pathlib import Path

import pytest

import selfmigrate
from selfmigrate import DatabaseError, MigrationRegistry, Runner
from selfmigrate.core.status import compare
from selfmigrate.core.tracker import APPLIED, STARTED, AppliedMigration

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

    from selfmigrate import Migration


def row(migration: Migration, *, checksum: str | None = None, state: str = APPLIED) -> AppliedMigration:
    return AppliedMigration(
        version=migration.version,
        name=migration.name,
        checksum=checksum or migration.checksum,
        applied_at="2026-11-24T21:00:00+00:00",
        duration_ms=1.0,
        applied_by="test pid 1",
        state=state,
    )


def ghost(version: int) -> AppliedMigration:
    return AppliedMigration(version, "gone", "0" * 64, "2026-11-24T21:00:00+00:00", 1.0, "test pid 1")


@pytest.fixture
def migrations(make_migrations: MigrationsFactory) -> tuple[Migration, ...]:
    files = {f"000{v}_m{v}.sql": f"SELECT {v};" for v in (1, 2, 3, 4)}
    return MigrationRegistry(make_migrations(files)).migrations


def test_fresh_database(migrations: tuple[Migration, ...]) -> None:
    status = compare(migrations, {})
    assert [m.version for m in status.pending] == [1, 2, 3, 4]
    assert status.current_version is None and status.head == 4
    assert not status.up_to_date
    assert status.missing == status.edited == status.out_of_order == status.interrupted == ()


def test_up_to_date(migrations: tuple[Migration, ...]) -> None:
    status = compare(migrations, {m.version: row(m) for m in migrations})
    assert status.up_to_date and status.pending == () and status.current_version == 4


def test_pending_after_the_newest_applied(migrations: tuple[Migration, ...]) -> None:
    status = compare(migrations, {m.version: row(m) for m in migrations[:2]})
    assert [m.version for m in status.pending] == [3, 4]
    assert status.out_of_order == () and status.current_version == 2


def test_out_of_order(migrations: tuple[Migration, ...]) -> None:
    applied = {m.version: row(m) for m in (migrations[0], migrations[2])}
    status = compare(migrations, applied)
    assert [m.version for m in status.pending] == [2, 4]
    assert [m.version for m in status.out_of_order] == [2]


def test_missing_files(migrations: tuple[Migration, ...]) -> None:
    applied = {**{m.version: row(m) for m in migrations}, 9: ghost(9)}
    status = compare(migrations, applied)
    assert [r.version for r in status.missing] == [9]
    assert status.current_version == 9
    assert status.up_to_date  # missing is a warning, not something that blocks


def test_ahead_is_newer_than_every_file_and_compatible_only_when_stored_so(
    migrations: tuple[Migration, ...],
) -> None:
    files = tuple(m for m in migrations if m.version != 2)  # 1, 3, 4
    applied = {m.version: row(m) for m in files}
    applied[2] = ghost(2)  # a deleted file below the newest one: missing, not ahead
    applied[7] = AppliedMigration(7, "new", "1" * 64, "2026-11-24T21:00:00+00:00", 1.0, "x", compatible=True)
    applied[8] = ghost(8)  # nothing stored with it: not known to be compatible
    status = compare(files, applied)
    assert [r.version for r in status.missing] == [2, 7, 8]
    assert [r.version for r in status.ahead] == [7, 8]
    assert [r.version for r in status.ahead_incompatible] == [8]
    del applied[8]
    assert compare(files, applied).ahead_incompatible == ()


def test_edited(migrations: tuple[Migration, ...]) -> None:
    applied = {m.version: row(m) for m in migrations}
    applied[2] = row(migrations[1], checksum="e" * 64)
    status = compare(migrations, applied)
    assert [(m.version, r.checksum) for m, r in status.edited] == [(2, "e" * 64)]
    assert not status.up_to_date


def test_interrupted(migrations: tuple[Migration, ...]) -> None:
    applied = {m.version: row(m) for m in migrations[:2]}
    applied[3] = row(migrations[2], checksum="e" * 64, state=STARTED)
    status = compare(migrations, applied)
    assert [r.version for r in status.interrupted] == [3]
    assert status.edited == ()  # a started row is reported as interrupted, not edited
    assert not status.up_to_date


def test_runner_status_reads_without_writing(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations({"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x);"})
    runner = Runner(db_path, location)
    with pytest.raises(DatabaseError, match="does not exist"):
        runner.status()
    assert not db_path.exists()

    selfmigrate.migrate(db_path, location, target=1)
    before = db_path.read_bytes()
    status = runner.status()
    assert status.current_version == 1 and [m.version for m in status.pending] == [2]
    assert db_path.read_bytes() == before

    conn = sqlite3.connect(db_path)
    try:
        assert runner.status(conn).current_version == 1
    finally:
        conn.close()
