"""The no-op start reads no migration file when their fingerprint is unchanged,
and still catches every edit."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest
from helpers import dump

from selfmigrate import ChecksumMismatch, Runner

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

FILES = {
    "0001_note.sql": "CREATE TABLE note (body TEXT);\n",
    "0002_seed.py": "def up(conn):\n    conn.execute(\"INSERT INTO note VALUES ('kept')\")\n",
}


def files_read(runner: Runner) -> list[str]:
    """The migrations whose checksum the runner had to read from disk."""
    return [m.filename for m in runner.registry.migrations if "checksum" in m.__dict__]


def test_no_op_start_after_apply_reads_no_file(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(FILES, package=False)
    first = Runner(db_path, location)
    assert [r.version for r in first.apply().applied] == [1, 2]
    before = dump(db_path)

    again = Runner(db_path, location)
    report = again.apply()

    assert report.applied == [] and report.current_version == 2
    assert files_read(again) == []
    assert dump(db_path) == before


def test_same_size_edit_with_mtime_set_back_is_still_caught(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    before = dump(db_path)
    path = Path(location) / "0001_note.sql"
    stat = path.stat()
    path.write_text("CREATE TABLE note (text BODY);\n")  # same length, other meaning
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the change time cannot be set back

    with pytest.raises(ChecksumMismatch, match="0001_note.sql"):
        Runner(db_path, location).apply()
    assert dump(db_path) == before


def test_changed_files_are_read_and_the_no_op_start_writes_nothing(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    (Path(location) / "_helper.py").write_text("")  # not a migration: fingerprint unchanged
    assert files_read(runner := Runner(db_path, location)) == [] and runner.apply().applied == []
    assert files_read(runner) == []

    path = Path(location) / "0002_seed.py"
    path.write_text(path.read_text() + "\n# a comment\n")  # an edit: every file is checked
    before = dump(db_path)
    with pytest.raises(ChecksumMismatch, match="0002_seed.py"):
        Runner(db_path, location).apply()
    assert dump(db_path) == before  # the check never takes the write lock


def test_applying_a_new_migration_stores_the_new_fingerprint(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    (Path(location) / "0003_more.sql").write_text("INSERT INTO note VALUES ('more');\n")

    upgrade = Runner(db_path, location)
    assert [r.version for r in upgrade.apply().applied] == [3]
    assert sorted(files_read(upgrade)) == ["0001_note.sql", "0002_seed.py", "0003_more.sql"]

    after = Runner(db_path, location)
    assert after.apply().applied == [] and files_read(after) == []
