"""A start that fails before its first change leaves no empty database file behind.

Real SQLite files and real Flask apps; a database that existed before the start is
never deleted (compared with its dump, or its bytes for an empty one).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from helpers import dump

import selfmigrate
from selfmigrate.errors import DiscoveryError, MigrationError
from selfmigrate.startup import remove_if_still_empty

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

GOOD = {"0001_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY);\n"}
SYNTAX_ERROR = {**GOOD, "0002_broken.py": "def up(conn)\n"}
FAILING = {"0001_fails.sql": "INSERT INTO nowhere VALUES (1);\n"}


def test_a_bad_migration_file_leaves_no_empty_database(make_migrations: MigrationsFactory, db_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="0002_broken.py"):
        selfmigrate.migrate(db_path, make_migrations(SYNTAX_ERROR))
    assert sorted(p.name for p in db_path.parent.iterdir() if p.name.startswith("app.sqlite")) == []


def test_a_first_migration_that_fails_leaves_no_empty_database(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    with pytest.raises(MigrationError):
        selfmigrate.migrate(db_path, make_migrations(FAILING))
    assert not db_path.exists()


def test_the_log_policy_too(make_migrations: MigrationsFactory, db_path: Path) -> None:
    report = selfmigrate.migrate(db_path, make_migrations(SYNTAX_ERROR), on_failure="log")
    assert isinstance(report.error, DiscoveryError)
    assert not db_path.exists()


def test_an_empty_file_that_existed_before_is_kept(make_migrations: MigrationsFactory, db_path: Path) -> None:
    db_path.touch()
    with pytest.raises(DiscoveryError):
        selfmigrate.migrate(db_path, make_migrations(SYNTAX_ERROR))
    assert db_path.is_file() and db_path.stat().st_size == 0


def test_a_database_with_data_is_kept_whole(make_migrations: MigrationsFactory, db_path: Path) -> None:
    selfmigrate.migrate(db_path, make_migrations(GOOD))
    before = dump(db_path)
    with pytest.raises(DiscoveryError):
        selfmigrate.migrate(db_path, make_migrations(SYNTAX_ERROR))
    assert dump(db_path) == before


def test_the_flask_factory_too(tmp_path: Path, make_migrations: MigrationsFactory) -> None:
    app = Flask("cleanupapp", instance_path=str(tmp_path / "instance"), root_path=str(tmp_path))
    app.config.update(DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=make_migrations(SYNTAX_ERROR, package=False))
    with pytest.raises(DiscoveryError):
        selfmigrate.apply(app)
    assert list((tmp_path / "instance").iterdir()) == []


def test_a_file_another_process_is_writing_is_kept(db_path: Path) -> None:
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the file is still 0 bytes until it commits
        assert db_path.stat().st_size == 0
        assert remove_if_still_empty(db_path) is False
        assert db_path.exists()
        other.execute("CREATE TABLE t (x)")
        other.execute("COMMIT")
    finally:
        other.close()
    assert dump(db_path) == ["BEGIN TRANSACTION;", "CREATE TABLE t (x);", "COMMIT;"]
    assert remove_if_still_empty(db_path) is False  # not empty


def test_only_a_file_path_is_ever_removed(tmp_path: Path) -> None:
    assert remove_if_still_empty(tmp_path / "missing.sqlite") is False
    assert remove_if_still_empty("postgresql://u@h/db") is False
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert remove_if_still_empty(empty) is True and not empty.exists()


@pytest.mark.parametrize("files", [SYNTAX_ERROR, FAILING], ids=["bad-file", "failing-migration"])
def test_the_cli_apply_too(make_migrations: MigrationsFactory, db_path: Path, files: dict[str, str]) -> None:
    folder = make_migrations(files, package=False)
    command = [sys.executable, "-m", "selfmigrate", "-d", str(db_path), "-m", str(folder), "apply"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (2, 5) and "Traceback" not in done.stderr, done.stderr
    assert not db_path.exists()


def test_the_cli_apply_keeps_a_database_that_existed(make_migrations: MigrationsFactory, db_path: Path) -> None:
    folder = make_migrations({**GOOD, "0002_fails.sql": "INSERT INTO nowhere VALUES (1);\n"}, package=False)
    selfmigrate.migrate(db_path, folder, target=1)
    before = dump(db_path)
    command = [sys.executable, "-m", "selfmigrate", "-d", str(db_path), "-m", str(folder), "apply"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 5, done.stderr
    assert dump(db_path) == before
