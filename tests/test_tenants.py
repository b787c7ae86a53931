"""Several databases sharing one backup folder: each sees, reuses, restores and prunes only its own snapshots."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import connected, dump

import selfmigrate
from selfmigrate.faces.cli.main import cli

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

INIT = {"0001_init.sql": "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\n"}
SECOND = {**INIT, "0002_tag.sql": "ALTER TABLE note ADD COLUMN tag TEXT;\nUPDATE note SET tag = 'second';\n"}
THIRD = {**SECOND, "0003_more.sql": "INSERT INTO note (body) VALUES ('third');\n"}
BROKEN = {**INIT, "0002_broken.sql": "DELETE FROM note;\nINSERT INTO missing VALUES (1);\n"}
TENANTS = ("acme", "globex", "initech")


def write(path: Path, *bodies: str) -> None:
    with connected(path) as conn:
        conn.executemany("INSERT INTO note (body) VALUES (?)", [(b,) for b in bodies])


def bodies(path: Path | str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT body FROM note ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture
def tenants(make_migrations: MigrationsFactory, tmp_path: Path) -> dict[str, Path]:
    """Three databases, each ``app.sqlite`` in its own folder, migrated to version 1 with their own rows."""
    location = make_migrations(INIT, package=False)
    paths = {}
    for name in TENANTS:
        path = tmp_path / name / "app.sqlite"
        path.parent.mkdir()
        selfmigrate.migrate(path, location, backup_dir=tmp_path / "backups")
        write(path, f"{name} 1", f"{name} 2")
        paths[name] = path
    return paths


def test_each_tenant_gets_its_own_snapshot_and_restore_gives_back_its_own_data(
    make_migrations: MigrationsFactory, tenants: dict[str, Path], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    location = make_migrations(SECOND)
    before = {name: dump(path) for name, path in tenants.items()}
    snapshots = {}
    for name, path in tenants.items():
        report = selfmigrate.migrate(path, location, backup_dir=backups)
        assert report.snapshot is not None
        snapshots[name] = Path(report.snapshot)
    assert len(set(snapshots.values())) == 3  # not the first tenant's file named three times
    for name, path in tenants.items():
        assert dump(snapshots[name]) == before[name]
        assert [s.path for s in selfmigrate.list_snapshots(path, directory=backups)] == [snapshots[name]]
    # Each tenant writes, then restores: it gets its own rows back, never another's.
    for name, path in tenants.items():
        write(path, f"{name} after")
        selfmigrate.restore(path, snapshots[name].name, directory=backups)
    for name, path in tenants.items():
        assert dump(path) == before[name]
        assert bodies(path) == [f"{name} 1", f"{name} 2"]


def test_keep_1_on_one_tenant_leaves_the_others_snapshots(
    make_migrations: MigrationsFactory, tenants: dict[str, Path], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    second = make_migrations(SECOND)
    taken = {name: selfmigrate.migrate(path, second, backup_dir=backups).snapshot for name, path in tenants.items()}
    contents = {p: dump(Path(p)) for p in taken.values() if p is not None}
    report = selfmigrate.migrate(tenants["acme"], make_migrations(THIRD), backup_dir=backups, backup_keep=1)
    assert report.snapshot is not None
    [kept] = selfmigrate.list_snapshots(tenants["acme"], directory=backups)
    assert kept.path == Path(report.snapshot) and kept.version == 2
    assert not Path(str(taken["acme"])).exists()  # acme's older one, pruned
    for name in ("globex", "initech"):
        snapshot = Path(str(taken[name]))
        assert snapshot.exists() and dump(snapshot) == contents[str(snapshot)]
        assert [s.path for s in selfmigrate.list_snapshots(tenants[name], directory=backups)] == [snapshot]


def test_a_failing_tenant_reuses_only_its_own_snapshot(
    make_migrations: MigrationsFactory, tenants: dict[str, Path], tmp_path: Path
) -> None:
    # Each tenant fails on the same broken migration, twice (a restart loop): each
    # report names that tenant's snapshot, which holds that tenant's rows.
    backups = tmp_path / "backups"
    location = make_migrations(BROKEN)
    named: dict[str, set[str]] = {name: set() for name in TENANTS}
    for _ in range(2):
        time.sleep(0.1)  # a write just before a snapshot counts as after it (coarse file clocks)
        for name, path in tenants.items():
            before = dump(path)
            with pytest.raises(selfmigrate.MigrationError) as info:
                selfmigrate.migrate(path, location, backup_dir=backups)
            assert dump(path) == before
            report = info.value.report
            assert report is not None and report.snapshot is not None
            assert bodies(report.snapshot) == [f"{name} 1", f"{name} 2"]
            named[name].add(report.snapshot)
    assert all(len(paths) == 1 for paths in named.values())
    assert len(set().union(*named.values())) == 3


def test_cli_snapshots_and_restore_see_only_the_databases_own(
    make_migrations: MigrationsFactory, tenants: dict[str, Path], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    location = make_migrations(SECOND)
    names = {}
    for name, path in tenants.items():
        report = selfmigrate.migrate(path, location, backup_dir=backups)
        assert report.snapshot is not None
        names[name] = Path(report.snapshot).name
    runner = CliRunner()
    for name, path in tenants.items():
        result = runner.invoke(cli, ["-d", str(path), "--backup-dir", str(backups), "snapshots"])
        assert result.exit_code == 0, result.output
        assert names[name] in result.output
        assert all(names[other] not in result.output for other in TENANTS if other != name)
        as_url = runner.invoke(cli, ["-d", f"sqlite:///{path}", "--backup-dir", str(backups), "snapshots"])
        assert as_url.exit_code == 0 and as_url.output == result.output, as_url.output
    # Restoring another tenant's snapshot into acme is refused; acme's data is untouched.
    acme = tenants["acme"]
    before = dump(acme)
    for other in ("globex", "initech"):
        result = runner.invoke(cli, ["-d", str(acme), "--backup-dir", str(backups), "restore", names[other], "-y"])
        assert result.exit_code == 6 and f"{names[other]} was not taken of database" in result.output, result.output
        result = runner.invoke(cli, ["-d", str(acme), "restore", str(backups / names[other]), "-y"])
        assert result.exit_code == 6 and "was not taken of database" in result.output, result.output
    assert dump(acme) == before
    write(acme, "acme after")
    result = runner.invoke(cli, ["-d", str(acme), "--backup-dir", str(backups), "restore", names["acme"], "-y"])
    assert result.exit_code == 0, result.output
    assert bodies(acme) == ["acme 1", "acme 2"]
    # The contents it replaced went into the shared folder too, as acme's.
    assert len(selfmigrate.list_snapshots(acme, directory=backups)) == 2
    assert len(selfmigrate.list_snapshots(tenants["globex"], directory=backups)) == 1


def test_databases_at_one_path_on_different_volumes_are_told_apart(
    make_migrations: MigrationsFactory, tmp_path: Path
) -> None:
    # One container image, one path (/data/app.sqlite), a volume per tenant: simulated by
    # swapping the files at one path. Each tenant's own history of migrations tells them apart.
    backups = tmp_path / "backups"
    init, second = make_migrations(INIT), make_migrations(SECOND)
    mount = tmp_path / "data" / "app.sqlite"
    mount.parent.mkdir()
    volumes = {}
    for name in ("acme", "globex"):
        selfmigrate.migrate(mount, init, backup_dir=backups)
        write(mount, f"{name} 1")
        volumes[name] = tmp_path / f"{name}.volume"
        os.replace(mount, volumes[name])
    taken = {}
    for name in ("acme", "globex"):
        os.replace(volumes[name], mount)
        assert selfmigrate.list_snapshots(mount, directory=backups) == []  # not the other volume's
        report = selfmigrate.migrate(mount, second, backup_dir=backups, backup_keep=1)
        assert report.snapshot is not None and Path(report.snapshot) not in taken.values()
        taken[name] = Path(report.snapshot)
        assert bodies(taken[name]) == [f"{name} 1"]
        assert [s.path for s in selfmigrate.list_snapshots(mount, directory=backups)] == [taken[name]]
        os.replace(mount, volumes[name])
    assert all(path.exists() for path in taken.values())  # keep=1 on globex left acme's


def test_a_new_database_at_an_old_path_does_not_inherit_the_old_ones_snapshots(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    init, second = make_migrations(INIT), make_migrations(SECOND)
    selfmigrate.migrate(db_path, init)
    write(db_path, "old")
    old = selfmigrate.migrate(db_path, second).snapshot
    assert old is not None
    db_path.unlink()
    selfmigrate.migrate(db_path, init)
    write(db_path, "new")
    assert selfmigrate.list_snapshots(db_path) == []
    before = dump(db_path)
    with pytest.raises(selfmigrate.BackupError, match="was not taken of database"):
        selfmigrate.restore(db_path, Path(old).name)
    assert dump(db_path) == before
    report = selfmigrate.migrate(db_path, second, backup_keep=1)
    assert report.snapshot is not None and bodies(report.snapshot) == ["new"]
    assert Path(old).exists() and bodies(old) == ["old"]


def test_a_copy_or_a_moved_file_does_not_share_the_originals_snapshots(
    make_migrations: MigrationsFactory, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    init, second, third = make_migrations(INIT), make_migrations(SECOND), make_migrations(THIRD)
    original = tmp_path / "template" / "app.sqlite"
    original.parent.mkdir()
    selfmigrate.migrate(original, init, backup_dir=backups)
    write(original, "template")
    before = dump(original)
    first = selfmigrate.migrate(original, second, backup_dir=backups).snapshot
    assert first is not None
    # A new tenant made by copying the template's file: same history, another path.
    copy = tmp_path / "tenant" / "app.sqlite"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    assert selfmigrate.list_snapshots(copy, directory=backups) == []
    report = selfmigrate.migrate(copy, third, backup_dir=backups, backup_keep=1)
    assert report.snapshot is not None and report.snapshot != first
    assert Path(first).exists() and dump(Path(first)) == before
    copied = dump(copy)
    with pytest.raises(selfmigrate.BackupError, match="was not taken of database"):
        selfmigrate.restore(copy, first)
    assert dump(copy) == copied
    # A moved file starts afresh at its new path; moved back, it sees its snapshots again.
    moved = tmp_path / "moved.sqlite"
    os.replace(original, moved)
    assert selfmigrate.list_snapshots(moved, directory=backups) == []
    os.replace(moved, original)
    assert [s.path for s in selfmigrate.list_snapshots(original, directory=backups)] == [Path(first)]


def _older_format(database: Path, folder: Path, stamp: str = "20261124T214000123456Z", version: int = 1) -> Path:
    """A snapshot as the previous release named it: no key."""
    target = folder / f"{database.name}.{stamp}.v{version:04d}.bak"
    folder.mkdir(exist_ok=True)
    source, copy = sqlite3.connect(database), sqlite3.connect(target)
    source.backup(copy)
    source.close()
    copy.close()
    return target


def test_older_format_snapshots_are_attributed_by_folder_and_history(
    make_migrations: MigrationsFactory, tenants: dict[str, Path], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    acme, globex = tenants["acme"], tenants["globex"]
    # In the database's own folder (the previous release's default): its name says whose.
    own = _older_format(acme, acme.parent)
    assert [s.path for s in selfmigrate.list_snapshots(acme)] == [own]
    assert selfmigrate.list_snapshots(globex) == []
    # In a shared folder, the name is the same for all; the history inside decides.
    shared = _older_format(globex, backups, stamp="20261124T214001123456Z")
    assert [s.path for s in selfmigrate.list_snapshots(globex, directory=backups)] == [shared]
    assert selfmigrate.list_snapshots(acme, directory=backups) == []
    assert selfmigrate.list_snapshots(tenants["initech"], directory=backups) == []
    # Pruning never deletes them (only snapshots with the database's key).
    selfmigrate.migrate(globex, make_migrations(SECOND), backup_dir=backups, backup_keep=1)
    assert shared.exists()
    [newest, older] = selfmigrate.list_snapshots(globex, directory=backups)
    assert older.path == shared and older.key is None and newest.key is not None
    # And they restore.
    before = dump(globex)
    selfmigrate.restore(globex, shared.name, directory=backups)
    assert bodies(globex) == ["globex 1", "globex 2"] and dump(globex) != before
