"""Migrations that cannot run in a transaction: VACUUM, journal mode, table rebuilds.

They declare themselves (``-- migrate:no-transaction`` / ``transactional = False``),
run outside a transaction under a flock that dies with its process, are
recorded as started before and applied after, and an interrupted one stops
every later start until ``resolve`` says what happened.
"""

from __future__ import annotations

import os
import signal
import sqlite3
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

INIT = "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\nINSERT INTO note (body) VALUES ('keep me');\n"


def rows(path: Path, sql: str) -> list[tuple[t.Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def tracker(path: Path) -> list[tuple[int, str]]:
    return [(v, s) for v, s in rows(path, "SELECT version, state FROM schema_migrations ORDER BY version")]


def fork_migrate(path: Path, location: str) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            selfmigrate.migrate(path, location, backup=False)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_exit(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_sql_header_switches_to_wal(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {
            "0001_init.sql": INIT,
            "0002_wal.sql": "-- Readers no longer block the writer.\n"
            "-- migrate:no-transaction\nPRAGMA journal_mode = WAL;\n",
        }
    )
    report = selfmigrate.migrate(db_path, location)
    assert [r.version for r in report.applied] == [1, 2]
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert tracker(db_path) == [(1, "applied"), (2, "applied")]


def test_the_same_pragma_without_the_header_fails_clearly(make_migrations: MigrationsFactory, db_path: Path) -> None:
    selfmigrate.migrate(db_path, make_migrations({"0001_init.sql": INIT}))
    before = dump(db_path)
    location = make_migrations({"0001_init.sql": INIT, "0002_wal.sql": "PRAGMA journal_mode = WAL;\n"})
    with pytest.raises(selfmigrate.MigrationError, match="PRAGMA journal_mode has no effect inside a transaction"):
        selfmigrate.migrate(db_path, location)
    assert dump(db_path) == before
    assert rows(db_path, "PRAGMA journal_mode") == [("delete",)]


def test_vacuum_needs_the_header_and_the_data_survives_without_it(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    selfmigrate.migrate(db_path, make_migrations({"0001_init.sql": INIT}))
    before = dump(db_path)
    with pytest.raises(selfmigrate.MigrationError, match="0002_vacuum.sql, line 1") as info:
        selfmigrate.migrate(db_path, make_migrations({"0001_init.sql": INIT, "0002_vacuum.sql": "VACUUM;\n"}))
    assert "VACUUM" in str(info.value)
    assert dump(db_path) == before
    location = make_migrations({"0001_init.sql": INIT, "0002_vacuum.sql": "-- migrate:no-transaction\nVACUUM;\n"})
    assert [r.version for r in selfmigrate.migrate(db_path, location).applied] == [2]
    assert rows(db_path, "SELECT body FROM note") == [("keep me",)]
    assert tracker(db_path) == [(1, "applied"), (2, "applied")]


REBUILD = '''
"""Make note.body NOT NULL: SQLite's table-rebuild procedure."""

transactional = False


def up(conn):
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE note_new (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.execute("INSERT INTO note_new (id, body) SELECT id, body FROM note")
    conn.execute("DROP TABLE note")
    conn.execute("ALTER TABLE note_new RENAME TO note")
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"foreign keys broken: {problems}")
    conn.execute("COMMIT")
    conn.execute("PRAGMA foreign_keys = ON")
'''


def test_python_table_rebuild_with_its_own_transaction(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {
            "0001_init.sql": INIT + "CREATE TABLE tag (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES note (id));\n"
            "INSERT INTO tag (note_id) VALUES (1);\n",
            "0002_rebuild.py": REBUILD,
        }
    )
    selfmigrate.migrate(db_path, location)
    assert rows(db_path, "SELECT id, body FROM note") == [(1, "keep me")]
    assert rows(db_path, "SELECT note_id FROM tag") == [(1,)]
    assert "NOT NULL" in rows(db_path, "SELECT sql FROM sqlite_master WHERE name = 'note'")[0][0]
    assert tracker(db_path) == [(1, "applied"), (2, "applied")]


def test_transactional_attribute_must_be_a_bool(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations({"0001_x.py": "transactional = 'no'\n\ndef up(conn):\n    pass\n"})
    with pytest.raises(selfmigrate.DiscoveryError, match="0001_x.py sets 'transactional = 'no''"):
        selfmigrate.migrate(db_path, location)
    assert not db_path.exists() or rows(db_path, "SELECT count(*) FROM sqlite_master") == [(0,)]


SLOW = '''
import os
import time

transactional = False


def up(conn):
    conn.execute("INSERT INTO run (pid) VALUES (?)", (os.getpid(),))
    open(os.environ["SELFMIGRATE_TEST_STARTED"], "a").close()
    time.sleep(float(os.environ.get("SELFMIGRATE_TEST_SLEEP", "0.3")))
    conn.execute("INSERT INTO note (body) VALUES ('slow done')")
'''


def _slow_migrations(make_migrations: MigrationsFactory) -> str:
    return make_migrations(
        {
            "0001_init.sql": INIT + "CREATE TABLE run (pid INTEGER);\n",
            "0002_slow.py": SLOW,
            "0003_after.sql": "CREATE TABLE later (x);\n",
        }
    )


def _wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def test_runs_exactly_once_when_several_processes_start_together(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _slow_migrations(make_migrations)
    monkeypatch.setenv("SELFMIGRATE_TEST_STARTED", str(tmp_path / "started"))
    pids = [fork_migrate(db_path, location) for _ in range(6)]
    assert [wait_exit(pid) for pid in pids] == [0] * 6
    assert len(rows(db_path, "SELECT pid FROM run")) == 1
    assert rows(db_path, "SELECT body FROM note ORDER BY id") == [("keep me",), ("slow done",)]
    assert tracker(db_path) == [(1, "applied"), (2, "applied"), (3, "applied")]


def test_a_start_while_it_runs_waits_instead_of_calling_it_interrupted(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _slow_migrations(make_migrations)
    started = tmp_path / "started"
    monkeypatch.setenv("SELFMIGRATE_TEST_STARTED", str(started))
    pid = fork_migrate(db_path, location)
    _wait_for(started)
    assert tracker(db_path) == [(1, "applied"), (2, "started")]
    report = selfmigrate.migrate(db_path, location, backup=False)  # waits for the flock, then finds 3 pending
    assert wait_exit(pid) == 0
    assert report.current_version == 3
    assert len(rows(db_path, "SELECT pid FROM run")) == 1


def _kill_mid_migration(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    location = _slow_migrations(make_migrations)
    started = tmp_path / "started"
    monkeypatch.setenv("SELFMIGRATE_TEST_STARTED", str(started))
    monkeypatch.setenv("SELFMIGRATE_TEST_SLEEP", "30")
    pid = fork_migrate(db_path, location)
    _wait_for(started)
    os.kill(pid, signal.SIGKILL)
    assert wait_exit(pid) == -signal.SIGKILL
    monkeypatch.setenv("SELFMIGRATE_TEST_SLEEP", "0")
    return location


def test_killed_between_started_and_finished_the_next_start_refuses(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _kill_mid_migration(make_migrations, db_path, tmp_path, monkeypatch)
    before = dump(db_path)
    with pytest.raises(selfmigrate.StateError) as info:
        selfmigrate.migrate(db_path, location)
    message = str(info.value)
    assert "0002_slow" in message and "never finished" in message
    assert "resolve 2 --done" in message and "resolve 2 --retry" in message
    assert dump(db_path) == before  # nothing touched, migration 3 not attempted
    assert tracker(db_path) == [(1, "applied"), (2, "started")]


def test_resolve_retry_runs_it_again(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _kill_mid_migration(make_migrations, db_path, tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["--database", str(db_path), "resolve", "2", "--retry"])
    assert result.exit_code == 0, result.output
    assert "0002_slow is forgotten" in result.output
    assert tracker(db_path) == [(1, "applied")]
    report = selfmigrate.migrate(db_path, location)
    assert [r.version for r in report.applied] == [2, 3]
    assert rows(db_path, "SELECT body FROM note ORDER BY id") == [("keep me",), ("slow done",)]


def test_resolve_done_records_it_and_starts_go_on(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _kill_mid_migration(make_migrations, db_path, tmp_path, monkeypatch)
    row = selfmigrate.resolve(db_path, 2, "done")
    assert row.state == "started"
    assert tracker(db_path) == [(1, "applied"), (2, "applied")]
    report = selfmigrate.migrate(db_path, location)
    assert [r.version for r in report.applied] == [3]
    assert len(rows(db_path, "SELECT pid FROM run")) == 1  # not run a second time


def test_resolve_refuses_while_the_migration_runs_and_for_a_migration_not_interrupted(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_mid_migration(make_migrations, db_path, tmp_path, monkeypatch)
    with SQLiteBackend(db_path).migration_lock() as lock:
        assert lock.try_acquire()  # as a running migration holds it
        with pytest.raises(selfmigrate.LockTimeout, match="running in another process"):
            selfmigrate.resolve(db_path, 2, "done")
    with pytest.raises(selfmigrate.ConfigError, match="Migration 1 .* is 'applied', not interrupted"):
        selfmigrate.resolve(db_path, 1, "retry")
    result = CliRunner().invoke(cli, ["--database", str(db_path), "resolve", "2"])
    assert result.exit_code == 2 and "--done" in result.output
    assert tracker(db_path) == [(1, "applied"), (2, "started")]


def test_a_failing_one_stays_started_and_says_nothing_was_undone(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(
        {
            "0001_init.sql": INIT,
            "0002_half.sql": "-- migrate:no-transaction\n"
            "INSERT INTO note (body) VALUES ('half');\n"
            "INSERT INTO nowhere VALUES (1);\n",
        }
    )
    with pytest.raises(selfmigrate.MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    message = str(info.value)
    assert "0002_half.sql, line 3" in message and "NOT undone" in message and "resolve 2 --retry" in message
    assert "The data from before this run" not in message  # a fresh database: no snapshot to name
    assert "restore the snapshot" not in message  # none was taken: not one to point to
    assert rows(db_path, "SELECT body FROM note ORDER BY id") == [("keep me",), ("half",)]
    assert tracker(db_path) == [(1, "applied"), (2, "started")]
    with pytest.raises(selfmigrate.StateError, match="never finished"):
        selfmigrate.migrate(db_path, location)


def test_a_migration_that_leaves_a_transaction_open_fails(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {"0001_init.sql": INIT, "0002_open.sql": "-- migrate:no-transaction\nBEGIN;\nDELETE FROM note;\n"}
    )
    with pytest.raises(selfmigrate.MigrationError, match="left a transaction open"):
        selfmigrate.migrate(db_path, location)
    assert rows(db_path, "SELECT body FROM note") == [("keep me",)]  # the open transaction was rolled back


def test_the_snapshot_is_taken_before_it_runs(make_migrations: MigrationsFactory, db_path: Path) -> None:
    selfmigrate.migrate(db_path, make_migrations({"0001_init.sql": INIT}))
    before = dump(db_path)
    location = make_migrations(
        {"0001_init.sql": INIT, "0002_vacuum.sql": "-- migrate:no-transaction\nDELETE FROM note;\nVACUUM;\n"}
    )
    report = selfmigrate.migrate(db_path, location)
    assert report.snapshot is not None
    assert dump(Path(report.snapshot)) == before


SAMPLES = Path(__file__).resolve().parents[1] / "docs" / "samples" / "reliability"


def test_the_documented_samples_work(tmp_path: Path, db_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_note.sql").write_text(
        "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\n"
        "CREATE TABLE tag (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES note (id));\n"
        "INSERT INTO note (body) VALUES ('kept'), (NULL);\nINSERT INTO tag (note_id) VALUES (1), (2);\n"
    )
    for sample in SAMPLES.iterdir():
        (folder / sample.name).write_bytes(sample.read_bytes())
    report = selfmigrate.migrate(db_path, str(folder))
    assert [r.version for r in report.applied] == [1, 7, 8]
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db_path, "SELECT id, body FROM note ORDER BY id") == [(1, "kept"), (2, "")]
    assert rows(db_path, "SELECT note_id FROM tag ORDER BY id") == [(1,), (2,)]
    assert rows(db_path, "PRAGMA foreign_key_check") == []
    assert tracker(db_path) == [(1, "applied"), (7, "applied"), (8, "applied")]
