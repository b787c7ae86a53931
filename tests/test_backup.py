"""Snapshots before migrating: taken with the backup API, named in errors, pruned, restored."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import dump

import selfmigrate
from selfmigrate.backends.sqlite.backend import SQLiteBackend
from selfmigrate.faces.cli.main import cli

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

INIT = {
    "0001_init.sql": "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\nINSERT INTO note (body) VALUES ('a');\n"
}
SECOND = {**INIT, "0002_more.sql": "INSERT INTO note (body) VALUES ('b');\nALTER TABLE note ADD COLUMN tag TEXT;\n"}
BROKEN = {**INIT, "0002_broken.sql": "DELETE FROM note;\nINSERT INTO missing VALUES (1);\n"}


def bodies(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT body FROM note ORDER BY id")]
    finally:
        conn.close()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def at_version_1(make_migrations: MigrationsFactory, db_path: Path) -> Path:
    selfmigrate.migrate(db_path, make_migrations(INIT, package=False))
    assert selfmigrate.list_snapshots(db_path) == []  # a fresh database is not copied
    return db_path


def test_snapshot_holds_the_data_from_before(make_migrations: MigrationsFactory, at_version_1: Path) -> None:
    before = dump(at_version_1)
    report = selfmigrate.migrate(at_version_1, make_migrations(SECOND))
    assert report.snapshot is not None
    snapshot = Path(report.snapshot)
    assert snapshot.parent == at_version_1.parent
    assert dump(snapshot) == before
    assert dump(at_version_1) != before
    conn = sqlite3.connect(snapshot)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    [listed] = selfmigrate.list_snapshots(at_version_1)
    assert listed.path == snapshot and listed.version == 1 and listed.size == snapshot.stat().st_size


def test_no_snapshot_when_nothing_is_pending_or_backups_are_off(
    make_migrations: MigrationsFactory, at_version_1: Path
) -> None:
    same, more = make_migrations(INIT), make_migrations(SECOND)
    listing = files(at_version_1.parent)
    selfmigrate.migrate(at_version_1, same)
    assert files(at_version_1.parent) == listing
    report = selfmigrate.migrate(at_version_1, more, backup=False)
    assert report.snapshot is None and [r.version for r in report.applied] == [2]
    assert files(at_version_1.parent) == listing


@pytest.mark.parametrize("db_mode", [0o644, 0o600, 0o660, 0o666])
def test_snapshot_is_never_wider_than_the_database_nor_world_readable(
    make_migrations: MigrationsFactory, at_version_1: Path, db_mode: int
) -> None:
    os.chmod(at_version_1, db_mode)
    report = selfmigrate.migrate(at_version_1, make_migrations(SECOND))
    assert report.snapshot is not None
    mode = stat.S_IMODE(os.stat(report.snapshot).st_mode)
    assert mode & 0o007 == 0, oct(mode)
    assert mode & ~db_mode == 0, (oct(mode), oct(db_mode))


def test_backup_dir_is_created_private(make_migrations: MigrationsFactory, at_version_1: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups" / "app"
    report = selfmigrate.migrate(at_version_1, make_migrations(SECOND), backup_dir=folder)
    assert report.snapshot is not None and Path(report.snapshot).parent == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [s.path for s in selfmigrate.list_snapshots(at_version_1, directory=folder)] == [Path(report.snapshot)]


def test_oldest_snapshots_are_pruned(make_migrations: MigrationsFactory, at_version_1: Path) -> None:
    files_so_far = dict(INIT)
    taken = []
    for version in range(2, 6):
        files_so_far[f"{version:04d}_step.sql"] = f"INSERT INTO note (body) VALUES ('v{version}');\n"
        report = selfmigrate.migrate(at_version_1, make_migrations(files_so_far), backup_keep=2)
        assert report.snapshot is not None
        taken.append(Path(report.snapshot))
    kept = selfmigrate.list_snapshots(at_version_1)
    assert [s.path for s in kept] == taken[:-3:-1]  # the two newest, newest first
    assert [s.version for s in kept] == [4, 3]
    assert not taken[0].exists() and not taken[1].exists()
    assert bodies(kept[0].path) == ["a", "v2", "v3", "v4"]


def test_failed_migration_names_the_snapshot_and_restore_puts_it_back(
    make_migrations: MigrationsFactory, at_version_1: Path
) -> None:
    before = dump(at_version_1)
    with pytest.raises(selfmigrate.MigrationError) as info:
        selfmigrate.migrate(at_version_1, make_migrations(BROKEN))
    report = info.value.report
    assert report is not None and report.snapshot is not None
    name = Path(report.snapshot).name
    assert f"snapshot {report.snapshot}" in str(info.value)
    assert f"python -m selfmigrate restore {name}" in str(info.value)
    assert dump(at_version_1) == before  # rolled back anyway
    # Later, data written by the app; then the operator restores the snapshot.
    conn = sqlite3.connect(at_version_1)
    conn.execute("INSERT INTO note (body) VALUES ('written after')")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, ["--database", str(at_version_1), "restore", name, "--yes"])
    assert result.exit_code == 0, result.output
    assert dump(at_version_1) == before
    # The contents it replaced were saved first.
    replaced = [s for s in selfmigrate.list_snapshots(at_version_1) if s.name != name]
    assert len(replaced) == 1 and bodies(replaced[0].path) == ["a", "written after"]
    assert f"The contents it replaced are in {replaced[0].path}" in result.output


def test_restore_asks_first(make_migrations: MigrationsFactory, at_version_1: Path) -> None:
    report = selfmigrate.migrate(at_version_1, make_migrations(SECOND))
    assert report.snapshot is not None
    after = dump(at_version_1)
    result = CliRunner().invoke(cli, ["-d", str(at_version_1), "restore", Path(report.snapshot).name], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert dump(at_version_1) == after
    result = CliRunner().invoke(cli, ["-d", str(at_version_1), "restore", Path(report.snapshot).name], input="y\n")
    assert result.exit_code == 0, result.output
    assert bodies(at_version_1) == ["a"]


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO note (body) VALUES ('uncommitted')")
print("holding", flush=True)
sys.stdin.readline()
"""


def test_restore_refuses_while_another_process_holds_the_database(
    make_migrations: MigrationsFactory, at_version_1: Path
) -> None:
    report = selfmigrate.migrate(at_version_1, make_migrations(SECOND))
    assert report.snapshot is not None
    after = dump(at_version_1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(at_version_1)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        args = ["-d", str(at_version_1), "--lock-timeout", "0.2", "restore", Path(report.snapshot).name, "--yes"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 4, result.output
        assert "in use by another process" in result.output and "Stop the app" in result.output
    finally:
        holder.communicate("\n", timeout=10)
    assert dump(at_version_1) == after
    with SQLiteBackend(at_version_1).migration_lock() as lock:
        assert lock.try_acquire()
        with pytest.raises(selfmigrate.LockTimeout, match="being migrated by another process"):
            selfmigrate.restore(at_version_1, report.snapshot)
    assert dump(at_version_1) == after


def test_restore_unknown_snapshot_lists_those_there_are(make_migrations: MigrationsFactory, at_version_1: Path) -> None:
    report = selfmigrate.migrate(at_version_1, make_migrations(SECOND))
    assert report.snapshot is not None
    result = CliRunner().invoke(cli, ["-d", str(at_version_1), "restore", "nope.bak", "--yes"])
    assert result.exit_code == 6
    assert "No snapshot named nope.bak" in result.output and Path(report.snapshot).name in result.output
    result = CliRunner().invoke(cli, ["-d", str(at_version_1), "snapshots"])
    assert result.exit_code == 0 and Path(report.snapshot).name in result.output and "version 1" in result.output


def test_snapshot_failure_stops_the_migration(
    make_migrations: MigrationsFactory, at_version_1: Path, tmp_path: Path
) -> None:
    before = dump(at_version_1)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(selfmigrate.BackupError, match="Nothing was migrated"):
        selfmigrate.migrate(at_version_1, make_migrations(SECOND), backup_dir=tmp_path / "a_file" / "backups")
    assert dump(at_version_1) == before


def test_wal_database_snapshot_is_one_file_and_restore_keeps_wal(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    selfmigrate.migrate(db_path, make_migrations(INIT))
    before = dump(db_path)
    report = selfmigrate.migrate(db_path, make_migrations(SECOND))
    assert report.snapshot is not None
    snapshot = Path(report.snapshot)
    conn = sqlite3.connect(snapshot)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    assert not Path(str(snapshot) + "-wal").exists()
    selfmigrate.restore(db_path, snapshot.name)
    assert dump(db_path) == before
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_flask_keys(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    from flask import Flask

    def make_app(**config: t.Any) -> Flask:
        app = Flask("backup_app", instance_path=str(tmp_path / "instance"), root_path=str(tmp_path))
        app.config.update(DATABASE="app.sqlite", **{"SELFMIGRATE_CLI_GROUP": None, **config})
        return app

    selfmigrate.apply(make_app(SELFMIGRATE_MIGRATIONS=make_migrations(INIT)))
    app = make_app(
        SELFMIGRATE_MIGRATIONS=make_migrations(SECOND), SELFMIGRATE_BACKUP_DIR="bk", SELFMIGRATE_CLI_GROUP="sm"
    )
    report = selfmigrate.apply(app)
    assert report.snapshot is not None and Path(report.snapshot).parent == tmp_path / "instance" / "bk"
    result = app.test_cli_runner().invoke(args=["sm", "snapshots"])  # the flask commands use the app's keys
    assert result.exit_code == 0 and Path(report.snapshot).name in result.output, result.output
    third = {**SECOND, "0003_x.sql": "INSERT INTO note (body) VALUES ('c');\n"}
    report = selfmigrate.apply(make_app(SELFMIGRATE_MIGRATIONS=make_migrations(third), SELFMIGRATE_BACKUP=False))
    assert report.snapshot is None and [r.version for r in report.applied] == [3]
    with pytest.raises(selfmigrate.ConfigError, match="backup_keep must be 1 or more"):
        selfmigrate.apply(make_app(SELFMIGRATE_MIGRATIONS=make_migrations(third), SELFMIGRATE_BACKUP_KEEP=0))



SPLIT = {
    **INIT,
    "0002_wal.sql": "-- migrate:no-transaction\nPRAGMA journal_mode = WAL;\n",
    "0003_more.sql": "INSERT INTO note (body) VALUES ('c');\n",
}


def _migrate_while_the_migration_lock_is_held(database: Path, location: str, meanwhile: t.Callable[[], object]) -> None:
    """Start a worker that must wait for the migration lock, do ``meanwhile``, then let it go on."""
    with SQLiteBackend(database).migration_lock() as lock:
        assert lock.try_acquire()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                lock.release()  # the child's copy of the parent's lock file descriptor
                selfmigrate.migrate(database, location)
                code = 0
            finally:
                os._exit(code)
        # The worker reads the tracker (nothing pending but 2 and 3), then waits for the lock.
        time.sleep(0.5)
        meanwhile()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_workers_of_one_start_share_one_snapshot(make_migrations: MigrationsFactory, at_version_1: Path) -> None:
    taken: list[selfmigrate.Snapshot] = []
    location = make_migrations(SPLIT)
    # Another worker of the same start took the snapshot after this one began.
    _migrate_while_the_migration_lock_is_held(
        at_version_1, location, lambda: taken.append(selfmigrate.take_snapshot(at_version_1))
    )
    assert [s.path for s in selfmigrate.list_snapshots(at_version_1)] == [taken[0].path]
    assert bodies(at_version_1) == ["a", "c"]


def test_a_database_fresh_when_the_start_began_gets_no_snapshot(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(SPLIT)
    db_path.touch()
    # Another worker applies 0001 while this one waits: the database is no longer empty
    # when this one changes it, but it was when this start began.
    _migrate_while_the_migration_lock_is_held(
        db_path, location, lambda: selfmigrate.migrate(db_path, location, target=1)
    )
    assert selfmigrate.list_snapshots(db_path) == []
    assert bodies(db_path) == ["a", "c"]


def test_a_start_that_fails_again_reuses_its_snapshot(make_migrations: MigrationsFactory, at_version_1: Path) -> None:
    # A container restarting in a loop on a broken migration: one snapshot, not one
    # per restart pruning the older ones.
    location = make_migrations(BROKEN)
    errors = []
    time.sleep(0.1)  # a write just before a snapshot counts as after it (coarse file clocks)
    for _ in range(3):
        with pytest.raises(selfmigrate.MigrationError) as info:
            selfmigrate.migrate(at_version_1, location, backup_keep=2)
        errors.append(info.value)
        time.sleep(0.1)  # the restart
    [kept] = selfmigrate.list_snapshots(at_version_1)
    assert all(str(kept.path) in str(e) for e in errors)
    assert bodies(kept.path) == bodies(at_version_1) == ["a"]


def test_a_database_written_since_its_snapshot_gets_a_new_one(
    make_migrations: MigrationsFactory, at_version_1: Path
) -> None:
    location = make_migrations(BROKEN)
    with pytest.raises(selfmigrate.MigrationError):
        selfmigrate.migrate(at_version_1, location)
    time.sleep(0.1)
    conn = sqlite3.connect(at_version_1)
    with conn:
        conn.execute("INSERT INTO note (body) VALUES ('written by the app')")
    conn.close()
    with pytest.raises(selfmigrate.MigrationError):
        selfmigrate.migrate(at_version_1, location)
    newest, older = selfmigrate.list_snapshots(at_version_1)
    assert bodies(newest.path) == ["a", "written by the app"] and bodies(older.path) == ["a"]



def test_rollback_snapshots_before_its_first_down(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {
            **INIT,
            "0002_tag.sql": "ALTER TABLE note ADD COLUMN tag TEXT;\nUPDATE note SET tag = 'kept';\n"
            "-- migrate:down\nALTER TABLE note DROP COLUMN tag;\n",
        },
        package=False,
    )
    selfmigrate.migrate(db_path, location, backup=False)
    before = dump(db_path)
    result = CliRunner().invoke(cli, ["-d", str(db_path), "-m", location, "rollback", "--yes"])
    assert result.exit_code == 0, result.output
    [snapshot] = selfmigrate.list_snapshots(db_path)
    assert f"Snapshot of the data from before: {snapshot.path}" in result.output
    assert dump(snapshot.path) == before  # the dropped column's values are in the snapshot
    # Gone from the schema and the data; the stored certificate still names the files
    # it certified (0002_tag.sql), which says nothing of the column.
    assert "tag" not in "".join(line for line in dump(db_path) if "_fingerprint" not in line)
