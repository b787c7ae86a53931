"""Real projects' PostgreSQL migration files (tests/data/real/README.md), used as a new user would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from pghelpers import dump

import selfmigrate

REAL = Path(__file__).parent.parent / "data" / "real"


def test_atuins_server_migrations_apply_renamed(tmp_path: Path, pg_url: str) -> None:
    """sqlx files with plpgsql trigger functions (``$$`` bodies with ``;`` inside), hyphens renamed."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted((REAL / "atuin" / "server-postgres").glob("*.sql")):
        shutil.copyfile(path, folder / path.name.replace("-", "_"))
    report = selfmigrate.migrate(pg_url, str(folder), backup=False)
    assert len(report.applied) == 5
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (username, email, password) VALUES ('ana', 'a@example.org', 'x')")
        conn.execute(
            "INSERT INTO history (client_id, user_id, hostname, timestamp, data) VALUES ('c1', 1, 'h', now(), 'ls')"
        )
        # The trigger of 20220419082412 counts what was inserted.
        assert conn.execute("SELECT total FROM total_history_count_user WHERE user_id = 1").fetchone() == (1,)


def test_a_no_op_pair_is_told_to_say_select_1(tmp_path: Path, pg_url: str) -> None:
    """pocket-id's ``-- No-op in Postgres`` pair, merged: refused before anything, naming ``SELECT 1;``."""
    pair = REAL / "pocket-id" / "postgres" / "20251217141000_v2_export_normalization"
    up, down = Path(f"{pair}.up.sql"), Path(f"{pair}.down.sql")
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE t (id integer PRIMARY KEY);\n")
    selfmigrate.migrate(pg_url, str(folder), backup=False)
    merged = up.read_bytes() + b"\n-- migrate:down\n" + down.read_bytes()
    (folder / "20251217141000_v2_export_normalization.sql").write_bytes(merged)
    before = dump(pg_url)
    with pytest.raises(selfmigrate.DiscoveryError, match="write 'SELECT 1;'"):
        selfmigrate.migrate(pg_url, str(folder), backup=False)
    assert dump(pg_url) == before
    (folder / "20251217141000_v2_export_normalization.sql").write_bytes(b"SELECT 1;\n" + merged)
    assert len(selfmigrate.migrate(pg_url, str(folder), backup=False).applied) == 1


#: dbmate's testdata/db/migrations/20200227231541_test_posts.sql, with what PostgreSQL files
#: hold in a string: an apostrophe inside dollar quotes, an escaped quote in an E'' string.
POSTS = """-- migrate:up
create table posts (
  id integer,
  name varchar(255)
);
insert into posts values (1, $$it's; -- not a comment$$);
insert into posts values (2, E'it\\'s');

-- migrate:down
drop table posts;
"""


def test_a_quote_in_postgresqls_quoted_text_does_not_hide_the_down_marker(tmp_path: Path, pg_url: str) -> None:
    """Read with SQLite's quoting, the apostrophe in ``$$it's$$`` opened a string that hid the
    ``-- migrate:down`` line: the down ran on the way up, and ``posts`` was recorded as applied
    and did not exist."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20200227231541_test_posts.sql").write_text(POSTS)
    selfmigrate.migrate(pg_url, str(folder), backup=False)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT id, name FROM posts ORDER BY id").fetchall() == [
            (1, "it's; -- not a comment"),
            (2, "it's"),
        ]
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", pg_url, "-m", str(folder), "rollback", "--yes"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('posts')").fetchone() == (None,)


def test_a_concurrent_index_down_says_a_down_runs_in_a_transaction(tmp_path: Path, pg_url: str) -> None:
    """dbmate's ``-- migrate:up transaction:false`` for CREATE INDEX CONCURRENTLY, and its down's
    DROP INDEX CONCURRENTLY: the advice was the up's (a migration of its own marked
    no-transaction), which a down cannot take, and it listed the migration the rollback had
    already undone as "not attempted"."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20200227231541_test_posts.sql").write_text(POSTS)
    (folder / "20200301000000_posts_name.sql").write_text(
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY posts_name ON posts (name);\n\n"
        "-- migrate:down\nDROP INDEX CONCURRENTLY posts_name;\n"
    )
    (folder / "20200302000000_note.sql").write_text(
        "-- migrate:up\nCOMMENT ON TABLE posts IS $$the blog's posts$$;\n\n"
        "-- migrate:down\nCOMMENT ON TABLE posts IS NULL;\n"
    )
    selfmigrate.migrate(pg_url, str(folder), backup=False)
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", pg_url, "-m", str(folder), "rollback", "--to", "0", "--yes"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 5
    error = done.stderr[done.stderr.index("Error:") :]
    assert "Rolling back migration 20200301000000_posts_name (its down) failed" in error
    assert "as it was before this down (version 20200301000000)" in error
    assert "SQLSTATE 25001: this statement cannot run inside a transaction." in error
    assert "A down always runs in a transaction" in error and "DROP INDEX without CONCURRENTLY" in error
    assert "Put it in a migration of its own" not in error
    assert "Not attempted" not in error
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('posts_name') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (20200301000000,)
