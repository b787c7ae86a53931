"""The bad-input catalogue (docs/bad-inputs.rst): one test per row.

Every test starts from a database holding data, feeds selfmigrate one bad
input, checks the error names the cause and the fix, and checks the data is
exactly as before by comparing a dump (or the file's bytes) taken before and
after.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from helpers import dump

import selfmigrate

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import MigrationsFactory

INIT = "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\n"
GOOD = {"0001_init.sql": INIT}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def database(make_migrations: MigrationsFactory, db_path: Path) -> Path:
    """A database at version 1 holding user data."""
    selfmigrate.migrate(db_path, make_migrations(GOOD))
    conn = sqlite3.connect(db_path)
    conn.executemany("INSERT INTO note (body) VALUES (?)", [(f"note {i}",) for i in range(100)])
    conn.commit()
    conn.close()
    return db_path


def fails(
    database: Path, location: str, error: type[Exception], *fragments: str, **options: t.Any
) -> selfmigrate.SelfMigrateError:
    """Migrate, expecting ``error`` whose message has every fragment; check the data is intact."""
    before = dump(database)
    with pytest.raises(error) as info:
        selfmigrate.migrate(database, location, **options)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert dump(database) == before
    assert isinstance(info.value, selfmigrate.SelfMigrateError)
    return info.value


def test_sql_syntax_error_names_file_and_line(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations(
        {**GOOD, "0002_typo.sql": "INSERT INTO note (body) VALUES ('x');\n\nALTER TABEL note ADD COLUMN y;\n"}
    )
    e = fails(database, location, selfmigrate.MigrationError, "0002_typo.sql, line 3", "syntax error", "rolled back")
    assert isinstance(e, selfmigrate.MigrationError) and e.line == 3


def test_python_migration_raising(make_migrations: MigrationsFactory, database: Path) -> None:
    code = 'def up(conn):\n    conn.execute("DELETE FROM note")\n    raise ValueError("bad data in row 7")\n'
    location = make_migrations({**GOOD, "0002_raise.py": code})
    fails(database, location, selfmigrate.MigrationError, "0002_raise.py, line 3", "ValueError: bad data in row 7")


@pytest.mark.parametrize(
    "filename, body",
    [
        ("0002_commit.sql", "DELETE FROM note;\nCOMMIT;\n"),
        ("0002_rollback.sql", "DELETE FROM note;\nROLLBACK;\n"),
        ("0002_commit.py", 'def up(conn):\n    conn.execute("DELETE FROM note")\n    conn.commit()\n'),
        ("0002_script.py", 'def up(conn):\n    conn.executescript("DELETE FROM note;")\n'),
    ],
)
def test_migration_ending_its_own_transaction(
    make_migrations: MigrationsFactory, database: Path, filename: str, body: str
) -> None:
    location = make_migrations({**GOOD, filename: body})
    fails(database, location, selfmigrate.MigrationError, filename, "Remove BEGIN/COMMIT/ROLLBACK")


def test_non_utf8_file(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations(GOOD, package=False)
    (Path(location) / "0002_latin1.sql").write_bytes("INSERT INTO note (body) VALUES ('café');\n".encode("latin-1"))
    fails(database, location, selfmigrate.DiscoveryError, "0002_latin1.sql is not valid UTF-8", "Save it as UTF-8")


def test_empty_file(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_empty.sql": "", "0003_next.sql": "DELETE FROM note;\n"})
    fails(database, location, selfmigrate.DiscoveryError, "0002_empty.sql is empty", "delete the file")


def test_comment_only_sql_file(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_todo.sql": "-- add the avatar column\n/* later */\n"})
    fails(database, location, selfmigrate.DiscoveryError, "0002_todo.sql has no SQL statement", "Write the change")


def test_migrations_location_missing(database: Path, tmp_path: Path) -> None:
    fails(database, str(tmp_path / "nowhere"), selfmigrate.DiscoveryError, "nowhere does not exist", "Create it")


def test_migrations_location_empty_is_a_warning_for_a_database_with_history(
    database: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Empty is fine (a new project before its first migration); with history, each
    # applied migration without a file is logged: the database is ahead of the code.
    (tmp_path / "empty").mkdir()
    before = dump(database)
    with caplog.at_level(logging.WARNING, logger="selfmigrate"):
        report = selfmigrate.migrate(database, str(tmp_path / "empty"))
    assert report.applied == [] and report.current_version == 1
    assert "0001_init applied" in caplog.text and "ahead of this code" in caplog.text
    assert dump(database) == before


def test_database_folder_missing(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "app.sqlite"
    with pytest.raises(selfmigrate.DatabaseError, match=r"the folder .*no/such does not exist. Create it"):
        selfmigrate.migrate(target, make_migrations(GOOD))
    assert not (tmp_path / "no").exists()


def _immutable(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root (``chattr +i``), or skip."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    # Tests run as root here, and permission bits do not stop root: use the
    # immutable attribute (ext4 and most Linux file systems), or skip.
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root and 'chattr +i' is not available here: cannot make a path unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_database_folder_not_writable(make_migrations: MigrationsFactory, database: Path, tmp_path: Path) -> None:
    location = make_migrations({**GOOD, "0002_more.sql": "DELETE FROM note;\n"})
    for _ in _immutable(database.parent):
        e = fails(database, location, selfmigrate.DatabaseError, "let the app's user write the database's folder")
        assert selfmigrate.list_snapshots(database) == []
    assert "No migration is half-applied" in str(e)


def test_new_database_in_a_folder_not_writable(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    for _ in _immutable(folder):
        with pytest.raises(selfmigrate.DatabaseError, match=r"its folder .*/ro is not writable for this process"):
            selfmigrate.migrate(folder / "app.sqlite", make_migrations(GOOD))
    assert list(folder.iterdir()) == []


def test_read_only_database_file(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_more.sql": "DELETE FROM note;\n"})
    before = sha(database)
    for _ in _immutable(database):
        fails(database, location, selfmigrate.DatabaseError, "read-only", "or mount the volume read-write")
    assert sha(database) == before


def test_not_a_sqlite_file(make_migrations: MigrationsFactory, db_path: Path) -> None:
    db_path.write_bytes(b"name,email\nann,ann@example.com\n" * 200)
    before = sha(db_path)
    with pytest.raises(selfmigrate.DatabaseError, match="Is it a SQLite database file"):
        selfmigrate.migrate(db_path, make_migrations(GOOD))
    assert sha(db_path) == before


def test_corrupt_database(make_migrations: MigrationsFactory, database: Path) -> None:
    conn = sqlite3.connect(database)
    conn.executemany("INSERT INTO note (body) VALUES (?)", [("x" * 500,) for _ in range(200)])
    conn.commit()
    conn.close()
    data = bytearray(database.read_bytes())
    page = 4096
    data[3 * page : 4 * page] = b"\x5a" * page  # a page of note's data, scribbled over
    database.write_bytes(bytes(data))
    before = sha(database)
    location = make_migrations({**GOOD, "0002_more.sql": "CREATE TABLE other (x);\n"})
    with pytest.raises(selfmigrate.DatabaseError, match="damaged") as info:
        selfmigrate.migrate(database, location)
    assert "snapshot" in str(info.value)
    assert sha(database) == before
    assert selfmigrate.list_snapshots(database) == []  # a damaged file is not copied as if it were good


FILL = '''
def up(conn):
    conn.execute("CREATE TABLE blob (data BLOB)")
    # Simulate a full disk: the database may not grow past its current size + a few pages.
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 5}")
    for _ in range(100):
        conn.execute("INSERT INTO blob VALUES (zeroblob(4096))")
'''


def test_disk_full_during_a_migration(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_fill.py": FILL})
    e = fails(database, location, selfmigrate.MigrationError, "database or disk is full", "free space")
    assert e.exit_code == 5


HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
sys.stdin.readline()
"""


def test_lock_held_past_the_timeout(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_more.sql": "DELETE FROM note;\n"})
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        fails(
            database,
            location,
            selfmigrate.LockTimeout,
            "waiting for the write lock on database",
            "raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT)",
            lock_timeout=0.3,
        )
    finally:
        holder.communicate("\n", timeout=10)


def test_database_newer_than_the_code(
    make_migrations: MigrationsFactory, database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    selfmigrate.migrate(database, make_migrations({**GOOD, "0002_new.sql": "CREATE TABLE new (x);\n"}))
    before = dump(database)
    with caplog.at_level(logging.WARNING, logger="selfmigrate"):
        report = selfmigrate.migrate(database, make_migrations(GOOD))  # the old code, deployed again
    assert report.current_version == 2 and report.applied == []
    assert "0002_new applied" in caplog.text and "ahead of this code" in caplog.text
    assert dump(database) == before


def test_edited_applied_migration(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({"0001_init.sql": INIT + "-- edited\n", "0002_more.sql": "DELETE FROM note;\n"})
    fails(database, location, selfmigrate.ChecksumMismatch, "0001_init.sql (version 1", "rehash VERSION")


def test_python_migration_with_an_import_error(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations(
        {
            **GOOD,
            "0002_fine.sql": "DELETE FROM note;\n",
            "0003_imports.py": "import yaml_that_is_not_installed\n\n\ndef up(conn):\n    pass\n",
        }
    )
    # 0002 is fine, but nothing runs: every pending file is loaded before the first change.
    fails(
        database,
        location,
        selfmigrate.DiscoveryError,
        "0003_imports.py, line 1 cannot be imported",
        "ModuleNotFoundError",
        "belongs inside up()",
    )


def test_file_breaking_the_naming_rule_is_never_run(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "drop_all.sql": "DROP TABLE note;\n", "0002-x.py": "def up(c): pass\n"})
    fails(database, location, selfmigrate.DiscoveryError, "drop_all.sql", "0002-x.py", "do not follow the naming rule")


def test_two_files_with_one_version(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_a.sql": "DELETE FROM note;\n", "0002_b.sql": "DELETE FROM note;\n"})
    fails(database, location, selfmigrate.DiscoveryError, "0002_a.sql", "0002_b.sql", "Renumber")


def test_pragma_that_does_nothing_in_a_transaction(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations({**GOOD, "0002_fk.sql": "DELETE FROM note;\nPRAGMA foreign_keys = OFF;\n"})
    fails(
        database,
        location,
        selfmigrate.MigrationError,
        "0002_fk.sql, line 2",
        "PRAGMA foreign_keys has no effect inside a transaction",
        # Not "move it into a non-transactional migration": there it would do nothing either
        # (each migration has a connection of its own, which does not enforce foreign keys).
        "Delete the line",
    )
    location = make_migrations({**GOOD, "0002_wal.sql": "DELETE FROM note;\nPRAGMA journal_mode = WAL;\n"})
    fails(
        database,
        location,
        selfmigrate.MigrationError,
        "0002_wal.sql, line 2",
        "PRAGMA journal_mode has no effect inside a transaction",
        "-- migrate:no-transaction",
    )


def test_interrupted_non_transactional_migration(make_migrations: MigrationsFactory, database: Path) -> None:
    location = make_migrations(
        {**GOOD, "0002_half.sql": "-- migrate:no-transaction\nINSERT INTO note (body) VALUES ('x');\nBAD;\n"}
    )
    with pytest.raises(selfmigrate.MigrationError, match="NOT undone"):
        selfmigrate.migrate(database, location)
    # From here on, every start refuses, and changes nothing, until it is resolved.
    fails(database, location, selfmigrate.StateError, "0002_half", "resolve 2 --done", "resolve 2 --retry")
    fails(database, location, selfmigrate.StateError, "never finished")
