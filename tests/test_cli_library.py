"""The library functions behind the commands return values a program can use."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from helpers import connected
from test_cli import FILES, NEWER, tracker, write

import selfmigrate
from selfmigrate.ops.adopt import adoption_plan, baseline, baseline_plan
from selfmigrate.ops.verify import verify

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory


@pytest.fixture
def folder(make_migrations: MigrationsFactory) -> Path:
    return Path(make_migrations(FILES, package=False))


def test_plan_rollback_history_rehash(folder: Path, db_path: Path) -> None:
    runner = selfmigrate.Runner(db_path, folder)
    selfmigrate.migrate(db_path, folder, target=1)
    planned = runner.plan()
    assert [body.migration.version for body in planned] == [2, 3]
    assert planned[0].up_sql is not None and "ADD COLUMN price" in planned[0].up_sql.text
    assert planned[1].up_function is not None
    runner.apply()
    assert [body.migration.version for body in runner.rollback_plan(target=1)] == [3, 2]
    report = runner.rollback(target=1)
    assert [r.version for r in report.applied] == [3, 2]
    assert report.current_version == 1 and report.ok
    assert [row.version for row in runner.history()] == [1]
    path = folder / "0001_create_items.sql"
    path.write_text(path.read_text() + "-- note\n")
    runner = selfmigrate.Runner(db_path, folder)  # a registry reads the files once
    old, new = runner.rehash(1)
    assert old != new and runner.history()[0].checksum == new


def test_verify_result(folder: Path, db_path: Path) -> None:
    write(folder, {"0005_later.sql": "SELECT 1;"})
    files_only = verify(folder)
    assert files_only.ok and files_only.database is None
    assert [(p.kind, p.severity) for p in files_only.problems] == [("gap", "warning")]
    selfmigrate.migrate(db_path, folder)
    (folder / "0002_add_price.sql").write_text("ALTER TABLE items ADD COLUMN price REAL;\n")
    with_db = verify(folder, db_path)
    assert not with_db.ok
    assert [p.kind for p in with_db.errors] == ["edited"]


def test_baseline_and_adoption_plans_change_nothing(folder: Path, db_path: Path) -> None:
    with connected(db_path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price INTEGER)")
        conn.execute("CREATE TABLE legacy_log (script TEXT, at TEXT)")
        conn.execute("INSERT INTO legacy_log VALUES ('0001_create_items.sql', '2024-01-05T10:00:00+01:00')")
    conn.close()
    before = db_path.read_bytes()
    runner = selfmigrate.Runner(db_path, folder)
    plan = baseline_plan(runner, 2)
    assert [m.version for m in plan.record] == [1, 2] and plan.already_recorded == ()
    adoption = adoption_plan(runner, legacy_table="legacy_log")
    assert (adoption.name_column, adoption.date_column, adoption.row_count) == ("script", "at", 1)
    assert [(e.migration.version, e.applied_at) for e in adoption.entries] == [(1, "2024-01-05T09:00:00+00:00")]
    assert [m.version for m in adoption.pending] == [2, 3]
    assert db_path.read_bytes() == before
    done = baseline(runner, 2)
    assert done.record == plan.record
    assert tracker(db_path) == [(1, "create_items"), (2, "add_price")]
    write(folder, NEWER)
    forced = baseline(selfmigrate.Runner(db_path, folder), 4, force=True)
    assert [m.version for m in forced.record] == [3, 4] and forced.already_recorded == (1, 2)
