"""The dry run: a copy gets the migrations, the real database is never written, the copy goes away."""

from __future__ import annotations

import os
import sqlite3
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import connected, dump

from selfmigrate import migrate
from selfmigrate.backends import select
from selfmigrate.errors import BackupError, ConfigError, DatabaseError, MigrationError, OutOfOrderError
from selfmigrate.faces.cli.main import cli
from selfmigrate.ops.dryrun import TableChange, dry_run

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

INIT = {
    "0001_init.sql": """
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, age INTEGER);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
    """,
}


def files_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the folder: bytes and mtime (a -wal or -shm appearing or changing shows)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def populated(make_migrations: MigrationsFactory, db_path: Path) -> tuple[str, Path]:
    folder = make_migrations(INIT, package=False)
    migrate(db_path, folder, backup=False)
    with connected(db_path) as conn:
        conn.executemany(
            "INSERT INTO users (email, age) VALUES (?, ?)",
            [("a@x", 30), ("b@x", None), ("a@x", 41), ("c@x", None)],
        )
        conn.execute("INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'en')")
    return folder, db_path


def add(folder: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        (Path(folder) / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_every_pending_migration_on_the_copy(populated: tuple[str, Path], journal_mode: str) -> None:
    folder, db_path = populated
    with connected(db_path) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    add(
        folder,
        {
            "0002_fill.sql": "UPDATE users SET age = 0 WHERE age IS NULL;\nINSERT INTO users (email) VALUES ('d@x');\n",
            "0003_settings.sql": "DELETE FROM settings WHERE key = 'lang';\nALTER TABLE users ADD COLUMN note TEXT;\n",
            "0004_tags.sql": "CREATE TABLE tags (id INTEGER PRIMARY KEY);\nINSERT INTO tags VALUES (1), (2);\n",
        },
    )
    before_dump, before_files = dump(db_path), files_state(db_path.parent)
    report = dry_run(db_path, folder)
    assert report.ok and report.current_version == 1 and report.not_attempted == ()
    assert [(s.migration.id, s.ok, s.error) for s in report.steps] == [
        ("0002_fill", True, None),
        ("0003_settings", True, None),
        ("0004_tags", True, None),
    ]
    assert all(s.duration_ms > 0 for s in report.steps)
    assert [s.changes for s in report.steps] == [
        (TableChange("users", 4, 5, inserted=1, deleted=0, updated=2),),
        # ADD COLUMN changes no row: every row holds the new column's default (NULL).
        (TableChange("settings", 2, 1, inserted=0, deleted=1, updated=0),),
        (TableChange("tags", None, 2, inserted=2, deleted=0, updated=0),),
    ]
    # The real database: not a byte, not a timestamp, no -wal/-shm left or changed, no copy left.
    assert files_state(db_path.parent) == before_files
    assert dump(db_path) == before_dump


def test_the_failure_the_real_run_would_meet(populated: tuple[str, Path]) -> None:
    folder, db_path = populated
    add(
        folder,
        {
            "0002_ok.sql": "UPDATE users SET age = 1 WHERE email = 'c@x';\n",
            "0003_unique.sql": "-- one address per user\nCREATE UNIQUE INDEX users_email ON users (email);\n",
            "0004_later.sql": "SELECT 1;\n",
        },
    )
    before_dump, before_files = dump(db_path), files_state(db_path.parent)
    report = dry_run(db_path, folder)
    assert not report.ok
    assert [(s.migration.id, s.ok) for s in report.steps] == [("0002_ok", True), ("0003_unique", False)]
    assert report.steps[0].changes == (TableChange("users", 4, 4, 0, 0, 1),)
    failed = report.failed
    assert failed is not None and isinstance(failed.error, MigrationError)
    assert [m.id for m in report.not_attempted] == ["0004_later"]
    dry_message = str(failed.error)
    assert files_state(db_path.parent) == before_files and dump(db_path) == before_dump

    # The real run fails the same way, with the same words (snapshots off, as in the dry run).
    with pytest.raises(MigrationError) as real:
        migrate(db_path, folder, backup=False)
    assert str(real.value) == dry_message
    assert "UNIQUE constraint failed: users.email" in dry_message and str(db_path) in dry_message
    assert ".dry-run-" not in dry_message


def test_not_null_on_nulls(populated: tuple[str, Path]) -> None:
    folder, db_path = populated
    add(
        folder,
        {
            "0002_rebuild.py": (
                "def up(conn):\n"
                "    conn.execute('CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT,'\n"
                "                 ' age INTEGER NOT NULL)')\n"
                "    conn.execute('INSERT INTO users_new SELECT id, email, age FROM users')\n"
            )
        },
    )
    before = files_state(db_path.parent)
    report = dry_run(db_path, folder)
    assert report.failed is not None and report.failed.error is not None
    assert "NOT NULL constraint failed: users_new.age" in str(report.failed.error)
    assert "0002_rebuild.py, line 4" in str(report.failed.error)
    assert files_state(db_path.parent) == before


def test_the_copy_is_deleted_on_keyboard_interrupt(populated: tuple[str, Path], tmp_path: Path) -> None:
    folder, db_path = populated
    add(folder, {"0002_stop.py": "def up(conn):\n    conn.execute('DELETE FROM users')\n    raise KeyboardInterrupt\n"})
    elsewhere = tmp_path / "copies"
    elsewhere.mkdir()
    before = files_state(db_path.parent)
    with pytest.raises(KeyboardInterrupt):
        dry_run(db_path, folder, directory=elsewhere)
    assert list(elsewhere.iterdir()) == []
    assert files_state(db_path.parent) == before


def test_errors_before_the_first_change_name_the_real_database(
    populated: tuple[str, Path], make_migrations: MigrationsFactory, tmp_path: Path
) -> None:
    folder, db_path = populated
    add(folder, {"0003_new.sql": "SELECT 1;\n"})
    migrate(db_path, folder, backup=False)
    add(folder, {"0002_late.sql": "SELECT 2;\n"})
    before = files_state(db_path.parent)
    with pytest.raises(OutOfOrderError) as error:
        dry_run(db_path, folder)
    assert f"Database {db_path} is at version 3" in str(error.value) and ".dry-run-" not in str(error.value)
    allowed = dry_run(db_path, folder, allow_out_of_order=True)
    assert [(s.migration.id, s.ok) for s in allowed.steps] == [("0002_late", True)]
    assert files_state(db_path.parent) == before
    with pytest.raises(DatabaseError):
        dry_run(tmp_path / "missing.sqlite", folder)
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_wal_database_in_use_is_only_read(populated: tuple[str, Path]) -> None:
    """With another connection holding WAL content, the copy has it and the database file is untouched."""
    folder, db_path = populated
    add(folder, {"0002_count.sql": "DELETE FROM users WHERE age IS NULL;\n"})
    writer = sqlite3.connect(db_path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode = wal")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("INSERT INTO users (email) VALUES ('in-wal@x')")
        main_file = (db_path.read_bytes(), db_path.stat().st_mtime_ns)
        wal, shm = Path(f"{db_path}-wal"), Path(f"{db_path}-shm")
        wal_state = (wal.read_bytes(), wal.stat().st_mtime_ns)
        shm_size = shm.stat().st_size
        report = dry_run(db_path, folder)
        assert report.steps[0].changes == (TableChange("users", 5, 2, 0, 3, 0),)
        assert (db_path.read_bytes(), db_path.stat().st_mtime_ns) == main_file
        assert (wal.read_bytes(), wal.stat().st_mtime_ns) == wal_state
        # The -shm file is SQLite's shared-memory index, not data: every reader of a
        # database in WAL mode that others have open writes its read mark into it.
        assert shm.stat().st_size == shm_size
    finally:
        writer.close()


def test_cli_dry_run(populated: tuple[str, Path]) -> None:
    folder, db_path = populated
    add(folder, {"0002_fill.sql": "UPDATE users SET age = 0 WHERE age IS NULL;\n"})
    before = files_state(db_path.parent)
    for command in (["apply", "--dry-run"], ["plan", "--dry-run"]):
        result = CliRunner().invoke(cli, ["-d", str(db_path), "-m", folder, *command])
        assert result.exit_code == 0, result.output
        assert f"Dry run on a copy of database {db_path} (version 1," in result.stdout
        assert "0002_fill" in result.stdout and "users: 4 → 4 rows (2 updated)" in result.stdout
        assert "All 1 migration(s) would apply." in result.stdout
    add(folder, {"0003_unique.sql": "CREATE UNIQUE INDEX users_email ON users (email);\n"})
    result = CliRunner().invoke(cli, ["-d", str(db_path), "-m", folder, "apply", "--dry-run"])
    assert result.exit_code == 5
    assert "FAILED  0003_unique" in result.stdout and "Would fail: 0003_unique." in result.stdout
    assert "UNIQUE constraint failed: users.email" in result.stderr
    assert files_state(db_path.parent) == before
    assert not [name for name in os.listdir(db_path.parent) if ".dry-run-" in name]

    # Nothing pending: nothing to do, and still nothing written.
    migrate(db_path, folder, target=2, backup=False)
    (Path(folder) / "0003_unique.sql").unlink()
    before = files_state(db_path.parent)
    result = CliRunner().invoke(cli, ["-d", str(db_path), "-m", folder, "apply", "--dry-run"])
    assert result.exit_code == 0 and "Nothing to apply" in result.stdout
    assert files_state(db_path.parent) == before


def test_no_place_for_the_copy(populated: tuple[str, Path], tmp_path: Path) -> None:
    folder, db_path = populated
    add(folder, {"0002_x.sql": "DELETE FROM users;\n"})
    before = files_state(db_path.parent)
    with pytest.raises(BackupError) as error:
        dry_run(db_path, folder, directory=tmp_path / "no" / "such" / "folder")
    assert str(db_path) in str(error.value) and "SELFMIGRATE_BACKUP_DIR" in str(error.value)
    assert files_state(db_path.parent) == before
    result = CliRunner().invoke(
        cli, ["-d", str(db_path), "-m", folder, "--backup-dir", str(tmp_path / "nowhere"), "apply", "--dry-run"]
    )
    assert result.exit_code == 6 and "Error: " in result.stderr
    assert files_state(db_path.parent) == before


def test_an_engine_without_a_dry_run_is_refused(
    populated: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The PostgreSQL backend has no dry run: its URLs go to its package, which has no dryrun module.
    folder, db_path = populated
    monkeypatch.setitem(select.ENGINES, "postgresql", "postgres")
    add(folder, {"0002_x.sql": "DELETE FROM users;\n"})
    before = files_state(db_path.parent)
    url = "postgresql://localhost/app"
    with pytest.raises(ConfigError, match="A dry run is not supported for postgres databases"):
        dry_run(url, folder)
    for command in (["apply", "--dry-run"], ["plan", "--dry-run"]):
        result = CliRunner().invoke(cli, ["-d", url, "-m", folder, *command])
        assert result.exit_code == 2 and "A dry run is not supported for postgres databases" in result.stderr
    assert files_state(db_path.parent) == before
