"""The startup contract of docs/design on PostgreSQL, against the real server (one database per test)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg
import pytest
from pghelpers import dump, holding, rows, write

import selfmigrate
from selfmigrate.backends.postgres import lock as locks
from selfmigrate.backends.postgres.backend import PostgresBackend
from selfmigrate.errors import ChecksumMismatch, LockTimeout, MigrationError, StateError

BASE = {
    "0001_accounts.sql": """
        CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);
        -- migrate:down
        DROP TABLE accounts;
    """,
    "0002_seed.py": """
        def up(conn):
            conn.execute("INSERT INTO accounts (email) VALUES (%s)", ("a@example.com",))
    """,
}


def applied(url: str, table: str = "schema_migrations", schema: str = "public") -> list[tuple[int, str]]:
    return [(v, s) for v, s in rows(url, f'SELECT version, state FROM "{schema}"."{table}" ORDER BY version')]


def test_pending_migrations_apply_in_order_each_with_its_row(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    report = selfmigrate.migrate(pg_url, str(folder))
    assert [r.version for r in report.applied] == [1, 2]
    assert applied(pg_url) == [(1, "applied"), (2, "applied")]
    assert rows(pg_url, "SELECT email FROM accounts") == [("a@example.com",)]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg", "postgresql+psycopg2"])
def test_the_spellings_users_copy_work_and_passwords_are_masked(
    pg_url: str, tmp_path: Path, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write(tmp_path / "m", BASE)
    url = pg_url.replace("postgresql://postgres@", f"{scheme}://postgres:s3cret@")
    caplog.set_level(logging.INFO, logger="selfmigrate")
    first = selfmigrate.migrate(url, str(folder))
    second = selfmigrate.migrate(url, str(folder))  # the no-op start's report and log line too
    assert [r.version for r in first.applied] == [1, 2] and second.applied == []
    assert "s3cret" not in first.database + second.database + caplog.text
    assert "***" in second.database


def test_no_op_start_takes_no_lock_and_imports_no_migration(pg_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    folder = write(tmp_path / "m", BASE)
    (folder / "0003_marker.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\ndef up(conn):\n    pass\n"
    )
    selfmigrate.migrate(pg_url, str(folder))
    assert marker.exists()
    marker.unlink()
    backend = PostgresBackend(pg_url)
    backend.use_table("schema_migrations")
    backend.connect().close()
    key = locks.lock_key(backend.qualified("schema_migrations"), locks.TRANSACTION_LOCK)
    with holding(pg_url, f"SELECT pg_advisory_xact_lock({key})"):
        report = selfmigrate.migrate(pg_url, str(folder), lock_timeout=0.2)
    assert report.applied == [] and report.current_version == 3
    assert not marker.exists()


def test_failing_migration_is_rolled_back_names_file_line_sqlstate_and_stops(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    write(
        folder,
        {
            "0003_bad.sql": """
                ALTER TABLE accounts ADD COLUMN name text;
                INSERT INTO accounts (email) VALUES ('b@example.com');

                UPDATE nowhere SET x = 1;
            """,
            "0004_later.sql": "CREATE TABLE later (id int);\n",
        },
    )
    with pytest.raises(MigrationError) as caught:
        selfmigrate.migrate(pg_url, str(folder))
    message = str(caught.value)
    assert "0003_bad.sql, line 4" in message and "UPDATE nowhere" in message
    assert "SQLSTATE 42P01" in message and "Not attempted: 0004_later" in message
    assert caught.value.line == 4
    assert dump(pg_url) == before


def test_lock_timeout_names_the_holder(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    backend = PostgresBackend(pg_url)
    backend.use_table("schema_migrations")
    backend.connect().close()
    key = locks.lock_key(backend.qualified("schema_migrations"), locks.TRANSACTION_LOCK)
    with holding(pg_url, f"SELECT pg_advisory_xact_lock({key})", application_name="deploy-7") as holder:
        pid = holder.info.backend_pid
        with pytest.raises(LockTimeout) as caught:
            selfmigrate.migrate(pg_url, str(folder), lock_timeout=0.3)
    message = str(caught.value)
    assert f"server pid {pid}" in message and "'deploy-7'" in message and "127.0.0.1" in message
    assert "pg_terminate_backend" in message
    assert rows(pg_url, "SELECT to_regclass('accounts')") == [(None,)]


def test_edited_applied_file_is_refused_and_missing_file_only_warned(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    sql = folder / "0001_accounts.sql"
    original = sql.read_text()
    sql.write_text(original.replace("NOT NULL", "NULL"))
    with pytest.raises(ChecksumMismatch, match="0001_accounts.sql"):
        selfmigrate.migrate(pg_url, str(folder))
    sql.write_text(original)
    (folder / "0002_seed.py").unlink()
    caplog.set_level(logging.WARNING)
    report = selfmigrate.migrate(pg_url, str(folder))
    assert report.current_version == 2 and "0002_seed" in caplog.text
    assert dump(pg_url) == before


def test_commit_in_sql_is_refused_before_anything_runs(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    write(folder, {"0003_commit.sql": "INSERT INTO accounts (email) VALUES ('x');\n\ncommit;\nSELECT 1;\n"})
    with pytest.raises(MigrationError) as caught:
        selfmigrate.migrate(pg_url, str(folder))
    assert "line 3" in str(caught.value) and "COMMIT" in str(caught.value)
    assert dump(pg_url) == before and applied(pg_url) == [(1, "applied"), (2, "applied")]


@pytest.mark.parametrize(
    "body",
    [
        "conn.commit()",
        "conn.rollback()",
        "conn.autocommit = True",
        "conn.execute('COMMIT')",
        "conn.cursor().execute('END')",
        "try:\n        conn.commit()\n    except Exception:\n        pass",
    ],
)
def test_python_migration_cannot_end_its_transaction(pg_url: str, tmp_path: Path, body: str) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    (folder / "0003_py.py").write_text(
        f"def up(conn):\n    conn.execute(\"INSERT INTO accounts (email) VALUES ('x')\")\n    {body}\n"
    )
    with pytest.raises(MigrationError, match="transaction"):
        selfmigrate.migrate(pg_url, str(folder))
    assert dump(pg_url) == before and applied(pg_url) == [(1, "applied"), (2, "applied")]


def test_a_migration_that_swallows_an_error_is_not_recorded(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    (folder / "0003_py.py").write_text(
        "import psycopg\n\ndef up(conn):\n    try:\n        conn.execute('SELECT * FROM nowhere')\n"
        "    except psycopg.Error:\n        pass\n"
    )
    with pytest.raises(MigrationError, match="carried on"):
        selfmigrate.migrate(pg_url, str(folder))
    assert dump(pg_url) == before


def test_session_state_does_not_leak_and_search_path_does_not_move_the_tracker(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA other")
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sm_test_role')"
            " THEN CREATE ROLE sm_test_role NOLOGIN; END IF; END $$"
        )
        conn.execute("GRANT CREATE ON SCHEMA public TO sm_test_role")
    folder = write(
        tmp_path / "m",
        {
            "0001_path.sql": "SET search_path = other;\nCREATE TABLE moved (id int);\nSET ROLE sm_test_role;\n",
            "0002_check.sql": "CREATE TABLE here AS SELECT current_user::text AS who,"
            " current_setting('search_path') AS path;\n",
        },
    )
    selfmigrate.migrate(pg_url, str(folder))
    assert rows(pg_url, "SELECT to_regclass('other.moved') IS NOT NULL, to_regclass('public.here') IS NOT NULL") == [
        (True, True)
    ]
    assert rows(pg_url, "SELECT who, path FROM public.here") == [("postgres", '"$user", public')]
    assert applied(pg_url) == [(1, "applied"), (2, "applied")]
    assert rows(pg_url, "SELECT to_regclass('other.schema_migrations')") == [(None,)]


def test_two_trackers_on_one_server_do_not_wait_for_each_other(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {"0001_x.sql": "CREATE TABLE IF NOT EXISTS x (id int);\n"})
    backend = PostgresBackend(pg_url)
    backend.use_table("app_a_migrations")
    backend.connect().close()
    key = locks.lock_key(backend.qualified("app_a_migrations"), locks.TRANSACTION_LOCK)
    with holding(pg_url, f"SELECT pg_advisory_xact_lock({key})"):
        report = selfmigrate.migrate(pg_url, str(folder), table="app_b_migrations", lock_timeout=0.3)
        with pytest.raises(LockTimeout):
            selfmigrate.migrate(pg_url, str(folder), table="app_a_migrations", lock_timeout=0.3)
    assert [r.version for r in report.applied] == [1]


def test_table_lock_held_by_app_traffic_is_retried_then_named(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    write(folder, {"0003_alter.sql": "-- migrate:lock-timeout 50ms\nALTER TABLE accounts ADD COLUMN name text;\n"})
    monkeypatch.setenv("SELFMIGRATE_LOCK_RETRIES", "1")
    with holding(pg_url, "SELECT * FROM accounts", application_name="web-request") as holder:
        with pytest.raises(MigrationError) as caught:
            selfmigrate.migrate(pg_url, str(folder))
        pid = holder.info.backend_pid
    message = str(caught.value)
    assert "SQLSTATE 55P03" in message and "table accounts locked AccessShareLock" in message
    assert f"server pid {pid}" in message and "'web-request'" in message
    assert dump(pg_url) == before


def test_table_lock_released_while_retrying_lets_the_migration_through(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    write(folder, {"0003_alter.sql": "-- migrate:lock-timeout 50ms\nALTER TABLE accounts ADD COLUMN name text;\n"})
    holder = psycopg.connect(pg_url)
    holder.execute("SELECT * FROM accounts")
    release = threading.Timer(0.3, holder.rollback)
    release.start()
    try:
        report = selfmigrate.migrate(pg_url, str(folder))
    finally:
        release.join()
        holder.close()
    assert [r.version for r in report.applied] == [3]
    assert "name" in [
        c for (c,) in rows(pg_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'")
    ]


def test_statement_timeout_directive(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {"0001_slow.sql": "-- migrate:statement-timeout 100ms\nSELECT pg_sleep(5);\n"})
    with pytest.raises(MigrationError) as caught:
        selfmigrate.migrate(pg_url, str(folder))
    assert "SQLSTATE 57014" in str(caught.value) and "statement-timeout" in str(caught.value)
    assert rows(pg_url, "SELECT to_regclass('schema_migrations')") == [(None,)]


def test_sql_that_cannot_be_split_names_file_and_line_and_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {"0001_x.sql": "CREATE TABLE x (id int);\nSELECT $$ never closed;\n"})
    with pytest.raises(MigrationError) as caught:
        selfmigrate.migrate(pg_url, str(folder))
    assert "0001_x.sql, line 2" in str(caught.value) and "dollar-quoted" in str(caught.value)
    assert rows(pg_url, "SELECT to_regclass('x')") == [(None,)]


def test_non_transactional_create_index_concurrently(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    write(
        folder,
        {
            "0003_index.sql": (
                "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY accounts_email ON accounts (email);\n"
            )
        },
    )
    report = selfmigrate.migrate(pg_url, str(folder))
    assert [r.version for r in report.applied] == [1, 2, 3]
    assert applied(pg_url)[-1] == (3, "applied")
    assert rows(pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email'::regclass") == [(True,)]


def test_failed_create_index_concurrently_is_reported_with_its_invalid_index(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('a@example.com')")  # a duplicate
    write(
        folder,
        {
            "0003_unique.sql": (
                "-- migrate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY accounts_email ON accounts (email);\n"
            )
        },
    )
    with pytest.raises(MigrationError, match="NOT undone"):
        selfmigrate.migrate(pg_url, str(folder))
    assert applied(pg_url)[-1] == (3, "started")
    before = dump(pg_url)
    with pytest.raises(StateError) as caught:
        selfmigrate.migrate(pg_url, str(folder))
    message = str(caught.value)
    assert "INVALID" in message and "DROP INDEX CONCURRENTLY public.accounts_email;" in message
    assert "resolve 3 --retry" in message
    assert dump(pg_url) == before


def test_snapshots_are_off_by_default_and_pg_dump_when_a_folder_is_set(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    write(folder, {"0003_x.sql": "CREATE TABLE x (id int);\n"})
    caplog.set_level(logging.INFO, logger="selfmigrate")
    report = selfmigrate.migrate(pg_url, str(folder))
    assert report.snapshot is None and "No snapshot" in caplog.text
    write(folder, {"0004_y.sql": "CREATE TABLE y (id int);\n"})
    report = selfmigrate.migrate(pg_url, str(folder), backup_dir=str(tmp_path / "snaps"))
    assert report.snapshot is not None and Path(report.snapshot).stat().st_size > 0
    assert Path(report.snapshot).read_bytes()[:5] == b"PGDMP"


def test_flask_app_with_sqlalchemy_uri(pg_url: str, tmp_path: Path) -> None:
    import flask

    folder = write(tmp_path / "m", BASE)
    app = flask.Flask("pgapp", instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = pg_url.replace("postgresql://", "postgresql+psycopg2://")
    app.config["SELFMIGRATE_MIGRATIONS"] = str(folder)
    report = selfmigrate.apply(app)
    assert [r.version for r in report.applied] == [1, 2]
    assert applied(pg_url) == [(1, "applied"), (2, "applied")]


def test_connect_errors_mask_the_password_and_say_what_to_do(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    missing = pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@") + "_nope"
    with pytest.raises(selfmigrate.SelfMigrateError) as caught:
        selfmigrate.migrate(missing, str(folder))
    assert "hunter2" not in str(caught.value) and "does not exist" in str(caught.value)
    assert "createdb" in str(caught.value)
    refused = "postgresql://postgres:hunter2@127.0.0.1:1/x"
    with pytest.raises(selfmigrate.SelfMigrateError) as caught:
        selfmigrate.migrate(refused, str(folder))
    assert "hunter2" not in str(caught.value) and "host and port" in str(caught.value)


def test_the_no_op_start_is_answered_by_the_quick_read(pg_url: str, tmp_path: Path) -> None:
    from selfmigrate.backends.postgres.text import loaded_text, stored_text
    from selfmigrate.core.quick import up_to_date

    folder = write(tmp_path / "m", BASE)
    assert up_to_date(pg_url, [str(folder)], "schema_migrations", 5.0) is None
    selfmigrate.migrate(pg_url, str(folder))
    assert up_to_date(pg_url, [str(folder)], "schema_migrations", 5.0) == 2
    write(folder, {"0003_x.sql": "CREATE TABLE x (id int);\n"})
    assert up_to_date(pg_url, [str(folder)], "schema_migrations", 5.0) is None
    for text in ["", "a\0b", "\\0", "\\\0\\", "C:\\x\0", "\x01\0\\0", "x\x01"]:
        assert loaded_text(stored_text(text)) == text and "\0" not in stored_text(text)


def test_a_snapshot_folder_without_pg_dump_migrates_nothing(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    before = dump(pg_url)
    write(folder, {"0003_x.sql": "CREATE TABLE x (id int);\n"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(selfmigrate.BackupError, match="pg_dump is not on PATH"):
        selfmigrate.migrate(pg_url, str(folder), backup_dir=str(tmp_path / "snaps"))
    assert dump(pg_url) == before


def test_baseline_records_without_running(pg_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = write(tmp_path / "m", BASE)
    result = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", pg_url, "-m", str(folder), "baseline", "--version", "1", "--yes"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert applied(pg_url) == [(1, "applied")] and rows(pg_url, "SELECT to_regclass('accounts')") == [(None,)]
