"""The SQLite backend: statement splitting, database paths and URLs, connecting, the lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from selfmigrate import ConfigError, DatabaseError, LockTimeout
from selfmigrate.backends.base import StatementError
from selfmigrate.backends.sqlite.backend import SQLiteBackend
from selfmigrate.backends.sqlite.connection import database_path
from selfmigrate.backends.sqlite.sqltext import split_statements
from selfmigrate.core.migration import SQLScript


def split(text: str, first_line: int = 1) -> list[tuple[str, int]]:
    return [(s.sql, s.line) for s in split_statements(SQLScript(text, first_line))]


# --- splitting ------------------------------------------------------------------------------


def test_split_simple_statements_with_their_lines() -> None:
    assert split("CREATE TABLE a (x);\nINSERT INTO a VALUES (1);\n\n  INSERT INTO a VALUES (2);\n") == [
        ("CREATE TABLE a (x);", 1),
        ("INSERT INTO a VALUES (1);", 2),
        ("INSERT INTO a VALUES (2);", 4),
    ]


def test_split_counts_lines_from_the_scripts_first_line() -> None:
    assert split("SELECT 1;\nSELECT 2;", first_line=10) == [("SELECT 1;", 10), ("SELECT 2;", 11)]


def test_split_keeps_semicolons_inside_strings_and_identifiers() -> None:
    script = (
        "INSERT INTO t VALUES ('a;b', 'it''s; fine');\n"
        'INSERT INTO "odd;name" VALUES (1);\n'
        "INSERT INTO [brackets;] VALUES (2);\n"
        "INSERT INTO `back;ticks` VALUES (3);\n"
    )
    assert [s for s, _ in split(script)] == [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine');",
        'INSERT INTO "odd;name" VALUES (1);',
        "INSERT INTO [brackets;] VALUES (2);",
        "INSERT INTO `back;ticks` VALUES (3);",
    ]


def test_split_ignores_semicolons_in_comments_and_drops_comment_only_pieces() -> None:
    script = (
        "-- header; with a semicolon\n"
        "/* a block; comment\n spanning lines; */\n"
        "CREATE TABLE a (x); -- trailing; comment\n"
        "/* only a comment; */\n"
        "-- and a last one;\n"
    )
    assert split(script) == [("CREATE TABLE a (x);", 4)]


def test_split_keeps_a_trigger_body_whole() -> None:
    script = (
        "CREATE TABLE t (x TEXT);\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN\n"
        "  INSERT INTO t_log VALUES ('inserted; ok');\n"
        "  UPDATE t SET x = x;\n"
        "END;\n"
        "INSERT INTO t VALUES ('after');\n"
    )
    statements = split(script)
    assert [line for _, line in statements] == [1, 2, 6]
    assert statements[1][0].startswith("CREATE TRIGGER") and statements[1][0].endswith("END;")


def test_split_keeps_a_last_statement_without_semicolon() -> None:
    assert split("SELECT 1;\nSELECT 2") == [("SELECT 1;", 1), ("SELECT 2", 2)]


def test_split_empty_and_comment_only_scripts() -> None:
    assert split("") == []
    assert split("   \n-- nothing here\n/* nor here */\n") == []
    assert split(";\n ; -- x\n;") == []
    assert split("SELECT 1;;\nSELECT 2;") == [("SELECT 1;", 1), ("SELECT 2;", 2)]


def test_split_statements_run_as_one_script(tmp_path: Path) -> None:
    """What the splitter produces runs the same as sqlite3's own script runner."""
    script = (
        "CREATE TABLE t (x TEXT);\nCREATE TABLE t_log (what TEXT);\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO t_log VALUES (new.x || ';'); END;\n"
        "INSERT INTO t VALUES ('a;b'); /* ; */ INSERT INTO t VALUES ('c''d');\n"
    )
    ours = sqlite3.connect(tmp_path / "ours.db")
    for sql, _ in split(script):
        ours.execute(sql)
    reference = sqlite3.connect(tmp_path / "reference.db")
    reference.executescript(script)
    assert list(ours.iterdump()) == list(reference.iterdump())
    ours.close()
    reference.close()


# --- database paths and URLs -----------------------------------------------------------------


def test_database_path_forms(tmp_path: Path) -> None:
    assert database_path("app.db") == Path("app.db")
    assert database_path("app.db", tmp_path) == tmp_path / "app.db"
    assert database_path(tmp_path / "abs.db", "/elsewhere") == tmp_path / "abs.db"
    assert database_path("sqlite:///rel/app.db", tmp_path) == tmp_path / "rel" / "app.db"
    assert database_path("sqlite:////var/data/app.db", tmp_path) == Path("/var/data/app.db")
    assert database_path("sqlite:///app.db?timeout=5") == Path("app.db")


@pytest.mark.parametrize("value", [":memory:", "", "sqlite:///:memory:", "file::memory:?cache=shared"])
def test_in_memory_databases_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="in memory|does not name"):
        database_path(value)


@pytest.mark.parametrize("value", ["sqlite://", "sqlite:///", "sqlite://host/app.db", "sqlite:app.db"])
def test_malformed_sqlite_urls_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///"):
        database_path(value)


# --- connecting ------------------------------------------------------------------------------


def test_connect_creates_the_file_in_autocommit_mode(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "new.db")
    conn = backend.connect()
    try:
        assert conn.isolation_level is None and not conn.in_transaction
    finally:
        conn.close()
    assert backend.exists()


def test_connect_to_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as info:
        SQLiteBackend(tmp_path / "nope" / "app.db").connect()
    assert str(tmp_path / "nope") in str(info.value) and "does not exist" in str(info.value)
    assert not (tmp_path / "nope").exists()


def test_connect_to_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="is a directory"):
        SQLiteBackend(tmp_path).connect()


def test_connect_without_create_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(DatabaseError, match="does not exist"):
        SQLiteBackend(path).connect(create=False)
    assert not path.exists()


def test_connect_to_a_file_that_is_not_sqlite_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    content = b"These are my notes, not a database.\n" * 200
    path.write_bytes(content)
    with pytest.raises(DatabaseError) as info:
        SQLiteBackend(path).connect()
    assert str(path) in str(info.value) and "SQLite" in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == content


# --- the write lock --------------------------------------------------------------------------


def test_lock_timeout_when_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    backend = SQLiteBackend(path, lock_timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    conn = backend.connect()
    try:
        with pytest.raises(LockTimeout) as info:
            backend.begin_locked(conn)
        assert str(path) in str(info.value) and "SELFMIGRATE_LOCK_TIMEOUT" in str(info.value)
        assert not conn.in_transaction
        holder.execute("ROLLBACK")
        backend.begin_locked(conn)  # free now
        assert conn.in_transaction
        backend.rollback(conn)
    finally:
        conn.close()
        holder.close()


def test_run_script_reports_the_failing_statement(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "app.db")
    conn = backend.connect()
    try:
        conn.execute("BEGIN")
        with pytest.raises(StatementError) as info:
            backend.run_script(conn, SQLScript("CREATE TABLE a (x);\n\nINSERT INTO b VALUES (1);\n", 5))
        assert info.value.statement.line == 7
        assert info.value.statement.sql == "INSERT INTO b VALUES (1);"
        assert isinstance(info.value.error, sqlite3.OperationalError)
        backend.rollback(conn)
        assert backend.table_columns(conn, "a") is None
    finally:
        conn.close()


def test_guard_refuses_transaction_control_until_lifted(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "app.db")
    conn = backend.connect()
    try:
        conn.execute("BEGIN")
        denied: list[str] = []
        backend.guard_transaction(conn, denied)
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute("COMMIT")
        assert denied == ["COMMIT"] and conn.in_transaction
        backend.unguard(conn)
        backend.commit(conn)
        assert not conn.in_transaction
    finally:
        conn.close()


def test_commit_blocked_by_a_long_reader_is_a_lock_timeout(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    backend = SQLiteBackend(path, lock_timeout=0.1)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("CREATE TABLE t (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a read transaction left open
    conn = backend.connect()
    try:
        backend.begin_locked(conn)  # a writer may start beside readers...
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(LockTimeout) as info:
            backend.commit(conn)  # ...but not commit while they read
        assert str(path) in str(info.value) and "readers" in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        backend.rollback(conn)
    finally:
        conn.close()
        reader.execute("COMMIT")
        reader.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)
    check.close()


def test_connect_while_another_process_holds_the_database_exclusively(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(LockTimeout) as info:  # not "is it a SQLite file? restore a backup"
            SQLiteBackend(path, lock_timeout=0.1).connect()
        assert str(path) in str(info.value) and "SELFMIGRATE_LOCK_TIMEOUT" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_the_busy_timeout_never_exceeds_what_the_budget_has_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # begin_locked sets PRAGMA busy_timeout only when the budget fell below the one in
    # effect (or far above it): a lent connection keeps its timeout while nothing waited.
    import types

    from selfmigrate.backends.sqlite import backend as backend_module

    # A clock that stands still: only what the test charges counts as waited.
    monkeypatch.setattr(backend_module, "time", types.SimpleNamespace(monotonic=lambda: 100.0))
    backend = SQLiteBackend(tmp_path / "app.sqlite", lock_timeout=5.0)
    conn = backend.connect()
    try:
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        for charged in (0.0, 0.0, 1.0, 0.0, 0.04, 0.0, 2.5):
            backend.charge(charged)
            seen.clear()
            with backend.locked_transaction(conn):
                in_effect = conn.execute("PRAGMA busy_timeout").fetchone()[0]
            assert in_effect <= backend.remaining() * 1000  # what began waited at most this
            set_now = [s for s in seen if s.startswith("PRAGMA busy_timeout =")]
            assert bool(set_now) == (charged > 0), (charged, seen)
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1460
        backend.reset_wait()  # a new budget: far above the one in effect, set again
        seen.clear()
        with backend.locked_transaction(conn):
            pass
        assert "PRAGMA busy_timeout = 5000" in seen
    finally:
        conn.close()


def test_a_stale_stored_down_is_replaced_in_one_statement(tmp_path: Path) -> None:
    # An older release's rollback removed the tracker row and left its stored down.
    import selfmigrate

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\n-- migrate:down\nDROP TABLE a;\n")
    database = tmp_path / "app.sqlite"
    selfmigrate.migrate(database, str(folder), backup=False)
    raw = sqlite3.connect(database)
    with raw:
        raw.execute("DELETE FROM schema_migrations")
        raw.execute("UPDATE schema_migrations_rollback SET down_script = 'stale', checksum = 'old'")
        raw.execute("DROP TABLE a")
    raw.close()
    selfmigrate.migrate(database, str(folder), backup=False)
    raw = sqlite3.connect(database)
    try:
        rows = raw.execute("SELECT version, down_script, checksum = (SELECT checksum FROM schema_migrations)"
                           " FROM schema_migrations_rollback").fetchall()
    finally:
        raw.close()
    assert rows == [(1, "DROP TABLE a;\n", 1)]


def test_the_backend_keeps_the_text_a_path_object_would_show(tmp_path: Path) -> None:
    # The backend keeps its file as text (no pathlib on a start); what it shows and
    # where it is must be what Path gave before.
    import itertools
    from pathlib import PurePosixPath

    from selfmigrate.backends.sqlite.connection import database_file, path_text

    atoms = ["", "/", "//", "///", ".", "..", "a", "b.db", "./", "a/"]
    for size in range(1, 5):
        for parts in itertools.product(atoms, repeat=size):
            text = "".join(parts)
            if text:
                assert path_text(text) == str(PurePosixPath(text)), text
    for given, base in (("./app.sqlite", None), ("app.sqlite", "inst/"), ("sqlite:///x//y.db", str(tmp_path))):
        assert database_file(given, base) == str(database_path(given, base))
    backend = SQLiteBackend(f"{tmp_path}//./app.sqlite")
    assert backend.describe() == str(tmp_path / "app.sqlite") and backend.path == tmp_path / "app.sqlite"
    assert not backend.exists() and backend.missing()


def test_a_connection_is_watched_only_while_a_migration_runs_on_it(tmp_path: Path) -> None:
    # selfmigrate's own statements run on a plain connection; the migration's step on a
    # watched one, which still notes a function set from Python.
    from selfmigrate.backends.sqlite.connection import OwnConnection, WatchedConnection

    backend = SQLiteBackend(tmp_path / "app.sqlite")
    conn = backend.connect()
    seen: list[type] = []

    def plain(c: sqlite3.Connection) -> None:
        seen.append(type(c))
        c.execute("CREATE TABLE t (x)")

    def sets_a_function(c: sqlite3.Connection) -> None:
        c.create_function("f", 0, lambda: 1)

    try:
        assert type(conn) is OwnConnection
        for step, reusable in ((plain, True), (sets_a_function, False)):
            with backend.locked_transaction(conn):
                backend.run_in_transaction(conn, step, [])
                assert type(conn) is OwnConnection
                assert backend.reusable(conn) is reusable
        assert seen == [WatchedConnection]
    finally:
        conn.close()
