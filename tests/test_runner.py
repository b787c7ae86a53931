"""The migrate() path, row by row through the startup contract of the design."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import typing as t
from pathlib import Path

import pytest

import selfmigrate
from selfmigrate import (
    ChecksumMismatch,
    ConfigError,
    LockTimeout,
    MigrationError,
    MigrationRegistry,
    OutOfOrderError,
)

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory


def dump(path: Path) -> str:
    """The whole database as SQL: schema and rows."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def query(path: Path, sql: str) -> list[tuple[t.Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def tracker_versions(path: Path, table: str = "schema_migrations") -> list[int]:
    return [row[0] for row in query(path, f"SELECT version FROM {table} ORDER BY version")]


def folder_of(location: str) -> Path:
    """The folder of a package written by make_migrations."""
    return Path(MigrationRegistry(location).locations[0].root)  # type: ignore[arg-type]


BASE = {
    "0001_create_item.sql": """
        CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        INSERT INTO item (name) VALUES ('seed');
    """,
    "0002_add_price.py": """
        def up(conn):
            conn.execute("ALTER TABLE item ADD COLUMN price INTEGER NOT NULL DEFAULT 0")
            conn.execute("UPDATE item SET price = 7 WHERE name = 'seed'")
    """,
}


# --- pending migrations -------------------------------------------------------------


def test_pending_migrations_are_applied_in_order_with_tracker_rows(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(
        {
            **BASE,
            # Depends on 0002's column: only works if applied after it.
            "0003_index_price.sql": "CREATE INDEX item_price ON item (price);",
        }
    )
    before = dt.datetime.now(dt.UTC)
    report = selfmigrate.migrate(db_path, location)

    assert [r.version for r in report.applied] == [1, 2, 3]
    assert [r.id for r in report.applied] == ["0001_create_item", "0002_add_price", "0003_index_price"]
    assert all(r.duration_ms >= 0 for r in report.applied)
    assert report.current_version == 3 and report.pending == () and report.ok
    assert query(db_path, "SELECT name, price FROM item") == [("seed", 7)]

    rows = query(db_path, "SELECT version, name, checksum, applied_at, duration_ms, state FROM schema_migrations")
    registry = MigrationRegistry(location)
    assert [(r[0], r[1]) for r in rows] == [(1, "create_item"), (2, "add_price"), (3, "index_price")]
    assert [r[2] for r in rows] == [m.checksum for m in registry.migrations]
    for row in rows:
        applied_at = dt.datetime.fromisoformat(row[3])
        assert applied_at.utcoffset() == dt.timedelta(0)
        assert applied_at >= before - dt.timedelta(seconds=1)
        assert row[4] >= 0
        assert row[5] == "applied"


def test_one_info_line_per_applied_migration(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(BASE)
    with caplog.at_level(logging.INFO, logger="selfmigrate"):
        selfmigrate.migrate(db_path, location)
    applied = [r for r in caplog.records if r.getMessage().startswith("Applied migration")]
    assert [r.getMessage().split()[2] for r in applied] == ["0001_create_item", "0002_add_price"]
    assert all(r.name.startswith("selfmigrate") and " ms" in r.getMessage() for r in applied)


def test_later_migrations_are_applied_on_a_later_start(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    (folder_of(location) / "0003_more.sql").write_text("INSERT INTO item (name) VALUES ('later');")
    report = selfmigrate.migrate(db_path, location)
    assert [r.version for r in report.applied] == [3]
    assert tracker_versions(db_path) == [1, 2, 3]
    assert query(db_path, "SELECT name FROM item ORDER BY id") == [("seed",), ("later",)]


def test_target_applies_only_up_to_a_version(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations({**BASE, "0003_more.sql": "INSERT INTO item (name) VALUES ('later');"})
    report = selfmigrate.migrate(db_path, location, target=2)
    assert [r.version for r in report.applied] == [1, 2]
    assert tracker_versions(db_path) == [1, 2]


# --- nothing pending: read-only, no lock, no import ---------------------------------------


def test_nothing_pending_takes_no_write_lock(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        holder.execute("INSERT INTO item (name) VALUES ('uncommitted')")
        # If the no-op path asked for the write lock it would raise LockTimeout.
        report = selfmigrate.migrate(db_path, location, lock_timeout=0.2)
        assert report.applied == [] and report.current_version == 2 and report.ok
        holder.execute("COMMIT")  # and the writer was not disturbed
    finally:
        holder.close()
    assert query(db_path, "SELECT count(*) FROM item") == [(2,)]


def test_nothing_pending_imports_no_migration_module(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "imported.txt"
    location = make_migrations(
        {
            **BASE,
            "0003_marker.py": f"""
                from pathlib import Path
                with open({str(marker)!r}, "a") as f:
                    f.write("imported\\n")

                def up(conn):
                    conn.execute("INSERT INTO item (name) VALUES ('marker')")
            """,
        }
    )
    selfmigrate.migrate(db_path, location)
    assert marker.read_text() == "imported\n"  # imported once, to be applied
    for _ in range(3):
        report = selfmigrate.migrate(db_path, location)
        assert report.applied == []
    assert marker.read_text() == "imported\n"
    assert query(db_path, "SELECT count(*) FROM item WHERE name = 'marker'") == [(1,)]


def test_nothing_pending_does_not_write(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    before = db_path.read_bytes()
    assert selfmigrate.migrate(db_path, location).applied == []
    assert db_path.read_bytes() == before


# --- lock not obtained in time ---------------------------------------------------------------


def test_lock_timeout_names_the_database_and_changes_nothing(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(BASE)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE app_data (x)")
    conn.execute("INSERT INTO app_data VALUES (1)")
    conn.commit()
    conn.close()
    before = dump(db_path)
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockTimeout) as info:
            selfmigrate.migrate(db_path, location, lock_timeout=0.2)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    message = str(info.value)
    assert str(db_path) in message
    assert "0.2 s" in message and "lock timeout" in message.lower()
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert dump(db_path) == before
    # Once the lock is free, the same start succeeds.
    assert [r.version for r in selfmigrate.migrate(db_path, location).applied] == [1, 2]


# --- an applied migration's file was edited ------------------------------------------------


def test_edited_applied_migration_is_an_error_naming_file_and_fix(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    folder = folder_of(location)
    (folder / "0001_create_item.sql").write_text("CREATE TABLE item (id INTEGER PRIMARY KEY, other TEXT);\n")
    (folder / "0003_more.sql").write_text("INSERT INTO item (name) VALUES ('later');")
    before = dump(db_path)
    with pytest.raises(ChecksumMismatch) as info:
        selfmigrate.migrate(db_path, location)
    message = str(info.value)
    assert str(folder / "0001_create_item.sql") in message
    assert "rehash" in message and "create" in message
    assert dump(db_path) == before  # 0003 was not applied either


def test_line_ending_change_is_not_an_edit(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    path = folder_of(location) / "0001_create_item.sql"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert selfmigrate.migrate(db_path, location).applied == []


# --- an applied migration's file is missing ------------------------------------------------


def test_applied_but_missing_file_is_a_warning(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    (folder_of(location) / "0002_add_price.py").unlink()  # a rolled-back deploy
    with caplog.at_level(logging.WARNING, logger="selfmigrate"):
        report = selfmigrate.migrate(db_path, location)
    assert report.ok and report.applied == [] and report.current_version == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "0002_add_price" in warnings[0].getMessage() and str(db_path) in warnings[0].getMessage()
    assert tracker_versions(db_path) == [1, 2]


# --- out of order ---------------------------------------------------------------------------


def test_out_of_order_is_an_error_by_default_and_applied_when_allowed(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(
        {
            "0001_a.sql": "CREATE TABLE log (what TEXT);",
            "0003_c.sql": "INSERT INTO log VALUES ('c');",
        }
    )
    selfmigrate.migrate(db_path, location)
    path = folder_of(location) / "0002_b.sql"
    path.write_text("INSERT INTO log VALUES ('b');")
    before = dump(db_path)
    with pytest.raises(OutOfOrderError) as info:
        selfmigrate.migrate(db_path, location)
    assert str(path) in str(info.value) and "allow_out_of_order" in str(info.value)
    assert dump(db_path) == before

    report = selfmigrate.migrate(db_path, location, allow_out_of_order=True)
    assert [r.version for r in report.applied] == [2]
    assert tracker_versions(db_path) == [1, 2, 3]
    assert query(db_path, "SELECT what FROM log") == [("c",), ("b",)]


# --- a migration fails ------------------------------------------------------------------------


def test_failing_sql_statement_rolls_back_its_migration_and_stops(
    make_migrations: MigrationsFactory, db_path: Path, tmp_path: Path
) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location)
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO item (name, price) VALUES ('user data', 42)")
    conn.commit()
    conn.close()
    before = dump(db_path)

    marker = tmp_path / "0004_ran"
    folder = folder_of(location)
    (folder / "0003_broken.sql").write_text(
        "-- the third statement fails\n"
        "CREATE TABLE extra (id INTEGER PRIMARY KEY);\n"
        "INSERT INTO item (name) VALUES ('from 0003');\n"
        "INSERT INTO no_such_table VALUES (1);\n"
        "INSERT INTO item (name) VALUES ('never');\n"
    )
    (folder / "0004_after.py").write_text(
        f"def up(conn):\n    open({str(marker)!r}, 'w').close()\n    conn.execute('CREATE TABLE later (x)')\n"
    )
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    error = info.value

    # Nothing of 0003 (schema or rows), nothing of 0004, the earlier data intact.
    assert dump(db_path) == before
    assert not marker.exists()
    assert tracker_versions(db_path) == [1, 2]

    assert error.version == 3 and error.name == "broken"
    assert error.path == str(folder / "0003_broken.sql")
    assert error.line == 4
    assert error.statement == "INSERT INTO no_such_table VALUES (1);"
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert "no such table: no_such_table" in str(error.__cause__)
    message = str(error)
    assert f"{folder / '0003_broken.sql'}, line 4" in message
    assert "INSERT INTO no_such_table VALUES (1);" in message
    assert "no such table: no_such_table" in message
    assert "0004_after" in message  # named as not attempted
    assert error.report is not None
    assert error.report.applied == [] and error.report.current_version == 2
    assert error.report.pending == (3, 4)


def test_failure_report_lists_what_this_run_applied(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {
            **BASE,
            "0003_bad.sql": "INSERT INTO item (name) VALUES ('ok');\nINSERT INTO item (nope) VALUES (1);\n",
        }
    )
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    report = info.value.report
    assert report is not None
    assert [r.version for r in report.applied] == [1, 2]
    assert report.current_version == 2 and report.pending == (3,)
    assert tracker_versions(db_path) == [1, 2]
    assert query(db_path, "SELECT name, price FROM item") == [("seed", 7)]


def test_python_migration_that_raises_names_file_and_line(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {
            "0001_create_item.sql": BASE["0001_create_item.sql"],
            "0002_fails.py": """
                def up(conn):
                    conn.execute("CREATE TABLE half (x)")
                    conn.execute("INSERT INTO item (name) VALUES ('half')")
                    raise ValueError("the data is not what this migration expected")
            """,
        }
    )
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    error = info.value
    path = str(folder_of(location) / "0002_fails.py")
    assert error.path == path and error.line == 4 and error.statement is None
    assert isinstance(error.__cause__, ValueError)
    assert f"{path}, line 4" in str(error)
    assert "ValueError: the data is not what this migration expected" in str(error)
    assert query(db_path, "SELECT name FROM sqlite_master WHERE name = 'half'") == []
    assert query(db_path, "SELECT name FROM item") == [("seed",)]
    assert tracker_versions(db_path) == [1]


def test_python_migration_sqlite_error_is_chained(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations({"0001_bad.py": "def up(conn):\n    conn.execute('SELEC 1')\n"})
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert info.value.line == 2


@pytest.mark.parametrize(
    "body",
    [
        "def up(conn):\n    conn.execute('CREATE TABLE t (x)')\n    conn.commit()\n",
        "def up(conn):\n    conn.execute('CREATE TABLE t (x)')\n    conn.executescript('CREATE TABLE u (x);')\n",
        "def up(conn):\n    conn.execute('CREATE TABLE t (x)')\n    conn.execute('COMMIT')\n",
        # A migration that swallows the refusal is refused all the same.
        "def up(conn):\n    conn.execute('CREATE TABLE t (x)')\n    try:\n        conn.commit()\n"
        "    except Exception:\n        pass\n    conn.execute('CREATE TABLE u (x)')\n",
    ],
    ids=["commit", "executescript", "execute-commit", "swallowed"],
)
def test_python_migration_that_commits_is_refused_and_leaves_nothing(
    make_migrations: MigrationsFactory, db_path: Path, body: str
) -> None:
    location = make_migrations({"0001_commits.py": body})
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    assert "COMMIT" in str(info.value) and "conn.commit()" in str(info.value)
    # No table t or u, and not even the tracker table: nothing is left behind.
    assert query(db_path, "SELECT name FROM sqlite_master") == []


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE t (x);\nBEGIN;\nCREATE TABLE u (x);\nCOMMIT;\n",
        "CREATE TABLE t (x);\nCOMMIT;\nCREATE TABLE u (x);\n",
        "BEGIN TRANSACTION;\nCREATE TABLE t (x);\nEND;\n",
    ],
    ids=["begin-commit", "commit", "begin-end"],
)
def test_sql_migration_with_transaction_control_is_refused_and_leaves_nothing(
    make_migrations: MigrationsFactory, db_path: Path, sql: str
) -> None:
    location = make_migrations({"0001_init.sql": "CREATE TABLE keep (x);\nINSERT INTO keep VALUES (1);\n"})
    selfmigrate.migrate(db_path, location)
    before = dump(db_path)
    (folder_of(location) / "0002_tx.sql").write_text(sql)
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    assert "BEGIN/COMMIT/ROLLBACK" in str(info.value)
    assert info.value.statement is not None
    assert dump(db_path) == before


def test_savepoints_inside_a_migration_are_allowed(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(
        {
            "0001_sp.py": """
                def up(conn):
                    conn.execute("CREATE TABLE t (x)")
                    conn.execute("SAVEPOINT s")
                    conn.execute("INSERT INTO t VALUES (1)")
                    conn.execute("ROLLBACK TO s")
                    conn.execute("RELEASE s")
                    conn.execute("INSERT INTO t VALUES (2)")
            """
        }
    )
    selfmigrate.migrate(db_path, location)
    assert query(db_path, "SELECT x FROM t") == [(2,)]


def test_broken_pending_file_fails_before_the_database_changes(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(
        {
            "0001_ok.sql": "CREATE TABLE t (x);",
            "0002_no_up.py": "def upp(conn):\n    pass\n",
        }
    )
    with pytest.raises(selfmigrate.DiscoveryError) as info:
        selfmigrate.migrate(db_path, location)
    assert "0002_no_up.py" in str(info.value) and "up(conn)" in str(info.value)
    assert query(db_path, "SELECT name FROM sqlite_master") == []


# --- on_failure="log" ---------------------------------------------------------------------------


def test_on_failure_log_returns_a_report_and_runs_no_later_migration(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(
        {
            "0001_ok.sql": "CREATE TABLE t (x);",
            "0002_bad.sql": "INSERT INTO t VALUES (1);\nINSERT INTO missing VALUES (1);",
            "0003_later.sql": "INSERT INTO t VALUES (3);",
        }
    )
    with caplog.at_level(logging.INFO, logger="selfmigrate"):
        report = selfmigrate.migrate(db_path, location, on_failure="log")
    assert not report.ok and isinstance(report.error, MigrationError)
    assert [r.version for r in report.applied] == [1]
    assert report.current_version == 1 and report.pending == (2, 3)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "0002_bad" in errors[0].getMessage()
    assert tracker_versions(db_path) == [1]
    assert query(db_path, "SELECT x FROM t") == []


def test_bad_options_are_config_errors(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    with pytest.raises(ConfigError, match="on_failure"):
        selfmigrate.migrate(db_path, location, on_failure="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lock_timeout"):
        selfmigrate.migrate(db_path, location, lock_timeout=-1)
    with pytest.raises(ConfigError, match="in memory"):
        selfmigrate.migrate(":memory:", location)
    assert not db_path.exists()


def test_custom_tracker_table(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location, table="my_history")
    assert tracker_versions(db_path, "my_history") == [1, 2]
    assert query(db_path, "SELECT name FROM sqlite_master WHERE name = 'schema_migrations'") == []
    assert selfmigrate.migrate(db_path, location, table="my_history").applied == []


def test_on_failure_log_covers_a_lock_timeout(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(BASE)
    sqlite3.connect(db_path).close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.ERROR, logger="selfmigrate"):
            report = selfmigrate.migrate(db_path, location, lock_timeout=0.1, on_failure="log")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert isinstance(report.error, LockTimeout) and report.applied == []
    assert report.current_version is None and report.pending == (1, 2)
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert query(db_path, "SELECT name FROM sqlite_master") == []


def test_a_migration_that_changes_row_or_text_factory_does_not_break_the_tracker(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(
        {
            "0001_dicts.py": """
                def up(conn):
                    conn.row_factory = lambda cursor, row: {d[0]: v for d, v in zip(cursor.description, row)}
                    conn.execute("CREATE TABLE a (x)")
            """,
            "0002_bytes.py": """
                def up(conn):
                    conn.text_factory = bytes
                    conn.execute("CREATE TABLE b (x)")
            """,
            "0003_after.sql": "CREATE TABLE c (x);",
        }
    )
    report = selfmigrate.migrate(db_path, location)
    assert [r.version for r in report.applied] == [1, 2, 3]
    assert tracker_versions(db_path) == [1, 2, 3]


def test_long_reader_blocking_the_commit_is_a_lock_timeout(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(BASE)
    selfmigrate.migrate(db_path, location, target=1)
    before = dump(db_path)
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM item").fetchall()
    try:
        with pytest.raises(LockTimeout, match=str(db_path)):
            selfmigrate.migrate(db_path, location, lock_timeout=0.1)
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert dump(db_path) == before
    assert [r.version for r in selfmigrate.migrate(db_path, location).applied] == [2]


def test_sql_with_a_trigger_and_semicolons_in_strings_and_comments(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(
        {
            "0001_audit.sql": """
                -- an audit log; kept by a trigger
                CREATE TABLE note (body TEXT);
                CREATE TABLE audit (what TEXT);
                /* the trigger body has its own semicolons; it must stay one statement */
                CREATE TRIGGER note_audit AFTER INSERT ON note BEGIN
                    INSERT INTO audit VALUES ('added: ' || new.body || ';');
                END;
                INSERT INTO note VALUES ('a;b -- not a comment');
                INSERT INTO note VALUES ('it''s /* not a comment */');
            """
        }
    )
    selfmigrate.migrate(db_path, location)
    assert query(db_path, "SELECT what FROM audit") == [
        ("added: a;b -- not a comment;",),
        ("added: it's /* not a comment */;",),
    ]


def test_crlf_sql_file_reports_the_right_line(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations({"0001_ok.sql": "CREATE TABLE t (x);"})
    path = folder_of(location) / "0002_crlf.sql"
    path.write_bytes(b"-- windows\r\nINSERT INTO t VALUES (1);\r\n\r\nINSERT INTO nope VALUES (2);\r\n")
    with pytest.raises(MigrationError) as info:
        selfmigrate.migrate(db_path, location)
    assert info.value.line == 4 and info.value.statement == "INSERT INTO nope VALUES (2);"
    assert query(db_path, "SELECT count(*) FROM t") == [(0,)]
