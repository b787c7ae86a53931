"""Security: where files are written, what is executed, how the tracker is written, who may read snapshots."""

from __future__ import annotations

import ast
import logging
import os
import sqlite3
import stat
import typing as t
from pathlib import Path

import pytest
from helpers import connected

import selfmigrate
from selfmigrate.backends.sqlite.backend import SQLiteBackend
from selfmigrate.core.migration import Migration
from selfmigrate.core.tracker import STARTED, Tracker

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

TRAVERSALS = [
    "../../../evil",
    "/etc/passwd",
    "..\\..\\evil",
    "a/../../b",
    "x\x00y",
    "~/.bashrc",
    "${HOME}/x",
]


@pytest.mark.parametrize("message", TRAVERSALS)
@pytest.mark.parametrize("sql", [False, True])
def test_create_never_writes_outside_the_migrations_location(tmp_path: Path, message: str, sql: bool) -> None:
    folder = tmp_path / "project" / "migrations"
    folder.mkdir(parents=True)
    (folder / "0041_existing.sql").write_text("SELECT 1;\n")
    path = selfmigrate.create(str(folder), message, sql=sql)
    assert path.resolve().parent == folder.resolve()
    assert path.name.startswith("0042_") and "/" not in path.name and ".." not in path.name
    everything = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    expected = {Path("project"), Path("project/migrations"), Path("project/migrations/0041_existing.sql")}
    assert set(everything) - expected == {path.relative_to(tmp_path)}


def test_create_message_cannot_inject_code_into_the_template(tmp_path: Path) -> None:
    message = 'x"""; import os; os.system("touch pwned"); """ \\ end'
    path = selfmigrate.create(str(tmp_path / "migrations"), message)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring is not None and docstring.startswith(message)
    assert [type(node).__name__ for node in tree.body[1:]] == ["FunctionDef"]  # only up(), nothing injected
    sql = selfmigrate.create(str(tmp_path / "migrations"), "drop\nDROP TABLE note;", sql=True)
    assert all(line.startswith("--") or not line.strip() for line in sql.read_text().splitlines())


MARKER_CODE = 'import pathlib\npathlib.Path({marker!r}).write_text("ran")\n\n\ndef up(conn):\n    pass\n'


@pytest.mark.parametrize("filename", ["evil.py", "0002-evil.py", "0002_evil.PY", "v0002_evil.py"])
def test_a_file_breaking_the_naming_rule_is_never_executed(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, filename: str
) -> None:
    marker = tmp_path / "ran"
    location = make_migrations({"0001_init.sql": "CREATE TABLE t (x);\n"}, package=False)
    (Path(location) / filename).write_text(MARKER_CODE.format(marker=str(marker)))
    with pytest.raises(selfmigrate.DiscoveryError, match=filename):
        selfmigrate.migrate(db_path, location)
    assert not marker.exists()
    if db_path.exists():
        with connected(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_helpers_and_subfolders_are_never_executed(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"
    location = Path(make_migrations({"0001_init.sql": "CREATE TABLE t (x);\n"}, package=False))
    (location / "_helper.py").write_text(MARKER_CODE.format(marker=str(marker)))
    (location / ".0002_hidden.py").write_text(MARKER_CODE.format(marker=str(marker)))
    (location / "sub").mkdir()
    (location / "sub" / "0002_nested.py").write_text(MARKER_CODE.format(marker=str(marker)))
    (location / "_fixtures").mkdir()
    (location / "_fixtures" / "0003_sample.sql").write_text("CREATE TABLE never (x);\n")
    with caplog.at_level(logging.WARNING, logger="selfmigrate.registry"):
        report = selfmigrate.migrate(db_path, str(location))
    assert [r.version for r in report.applied] == [1]
    assert not marker.exists()
    # Not applied, but not silently either: the nested migration-named file is named.
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "selfmigrate.registry"]
    assert os.path.join("sub", "0002_nested.py") in warning and "top level" in warning
    assert "_fixtures" not in warning  # a folder named with '_' says it holds no migrations


HOSTILE = "x'); DROP TABLE note; --"


def test_tracker_is_written_with_bound_parameters(db_path: Path, tmp_path: Path) -> None:
    backend = SQLiteBackend(db_path)
    conn = backend.connect()
    conn.execute("CREATE TABLE note (body TEXT)")
    conn.execute("INSERT INTO note VALUES ('keep')")
    tracker = Tracker(backend)
    tracker.ensure(conn)
    (tmp_path / "f.sql").write_text(HOSTILE)
    hostile = Migration(7, HOSTILE, "sql", HOSTILE, resource=tmp_path / "f.sql")
    hostile.__dict__["checksum"] = HOSTILE  # what a cached checksum would hold
    tracker.record(conn, hostile, 1.0, state=STARTED, applied_at=HOSTILE)
    tracker.finish(conn, 7, 2.0)
    tracker.set_checksum(conn, 7, HOSTILE + "2")
    [row] = tracker.read(conn).values()
    assert (row.name, row.checksum, row.applied_at, row.state) == (HOSTILE, HOSTILE + "2", HOSTILE, "applied")
    tracker.remove(conn, 7)
    assert tracker.read(conn) == {}
    assert conn.execute("SELECT body FROM note").fetchall() == [("keep",)]
    conn.close()


def test_tracker_table_name_cannot_carry_sql(make_migrations: MigrationsFactory, db_path: Path) -> None:
    with pytest.raises(selfmigrate.ConfigError, match="not a plain SQL identifier"):
        selfmigrate.migrate(db_path, make_migrations({"0001_x.sql": "CREATE TABLE t (x);\n"}), table="t; DROP TABLE t")


def test_snapshots_are_not_world_readable_even_with_a_permissive_umask(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    selfmigrate.migrate(db_path, make_migrations({"0001_x.sql": "CREATE TABLE t (x);\n"}))
    os.chmod(db_path, 0o666)
    old = os.umask(0)
    try:
        report = selfmigrate.migrate(
            db_path, make_migrations({"0001_x.sql": "CREATE TABLE t (x);\n", "0002_y.sql": "CREATE TABLE u (x);\n"})
        )
        lock = SQLiteBackend(db_path).migration_lock()
        lock.acquire(1)
        lock.release()
    finally:
        os.umask(old)
    assert report.snapshot is not None
    assert stat.S_IMODE(os.stat(report.snapshot).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(lock.path).st_mode) & 0o007 == 0


def test_restore_only_accepts_snapshots_of_that_database(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path
) -> None:
    selfmigrate.migrate(db_path, make_migrations({"0001_x.sql": "CREATE TABLE t (x);\n"}))
    other = tmp_path / "elsewhere"
    other.mkdir()
    evil = sqlite3.connect(other / "evil.bak")
    evil.execute("CREATE TABLE t (x)")
    evil.close()
    before = db_path.read_bytes()
    for name in [str(other / "evil.bak"), "../elsewhere/evil.bak", "evil.bak"]:
        with pytest.raises(selfmigrate.BackupError, match="No snapshot named"):
            selfmigrate.restore(db_path, name)
    assert db_path.read_bytes() == before
