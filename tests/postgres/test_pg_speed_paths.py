"""What keeps a PostgreSQL apply and status cheap, and what must still be seen on the way.

The change marker (a step reads the tracker in full only when another transaction
committed a change to it), and the command line's status answered from the stored
fingerprint. No timings here: benchmarks/postgres.py prints the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import psycopg
import pytest
from pghelpers import rows, write

import selfmigrate
from selfmigrate.backends.postgres.backend import PostgresBackend
from selfmigrate.core.migration import checksum
from selfmigrate.core.tracker import Tracker

THREE = {
    "0001_ran.sql": "CREATE TABLE ran (version int NOT NULL);\nINSERT INTO ran VALUES (1);\n",
    "0002_two.sql": "INSERT INTO ran VALUES (2);\n",
    "0003_three.sql": "INSERT INTO ran VALUES (3);\n",
}


def marker_after(url: str, sql: str, *, commit: bool = True) -> tuple[object, object]:
    """The change marker before and after another connection runs ``sql`` (committed or not)."""
    backend = PostgresBackend(url)
    conn = backend.connect()
    try:
        before = backend.change_marker(conn)
        with psycopg.connect(url) as other:
            other.execute(sql)
            if not commit:
                other.rollback()
        return before, backend.change_marker(conn)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO schema_migrations VALUES (9, 'x', 'c', 'now', 0, 'me', 'applied')",
        "DELETE FROM schema_migrations WHERE version = 2",
        "UPDATE schema_migrations SET checksum = checksum WHERE version = 1",  # the same value
        "UPDATE schema_migrations_layout SET layout = layout",
        "DELETE FROM schema_migrations WHERE version = 1;"
        " INSERT INTO schema_migrations SELECT * FROM schema_migrations WHERE false",
    ],
    ids=["insert", "delete", "same-value-update", "layout-table", "delete-in-a-batch"],
)
def test_the_change_marker_differs_after_any_commit_to_the_tracker(pg_url: str, tmp_path: Path, sql: str) -> None:
    selfmigrate.migrate(pg_url, str(write(tmp_path / "m", THREE)))
    before, after = marker_after(pg_url, sql)
    assert before is not None and after is not None and before != after


def test_the_change_marker_stays_equal_when_nothing_committed_to_the_tracker(pg_url: str, tmp_path: Path) -> None:
    selfmigrate.migrate(pg_url, str(write(tmp_path / "m", THREE)))
    before, after = marker_after(pg_url, "DELETE FROM schema_migrations", commit=False)
    assert before is not None and before == after
    # The fingerprint is not what a run knows: storing it again changes nothing it relies on.
    before, after = marker_after(pg_url, "UPDATE schema_migrations_fingerprint SET verified_at = 'then'")
    assert before == after
    assert marker_after(pg_url, "SELECT 1")[0] == marker_after(pg_url, "SELECT 1")[1]


def test_there_is_no_change_marker_without_a_tracker(pg_url: str) -> None:
    backend = PostgresBackend(pg_url)
    conn = backend.connect()
    try:
        assert backend.change_marker(conn) is None
    finally:
        conn.close()


def test_a_run_reads_the_tracker_in_full_only_at_its_first_steps(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"{n:04d}_t{n}.sql": f"CREATE TABLE t{n} (id int);\n" for n in range(1, 21)}
    folder = write(tmp_path / "m", files)
    reads: list[int] = []
    read = Tracker.read

    def counted(self: Tracker, conn: t.Any) -> t.Any:
        found = read(self, conn)
        reads.append(len(found))
        return found

    monkeypatch.setattr(Tracker, "read", counted)
    report = selfmigrate.migrate(pg_url, str(folder))
    assert [r.version for r in report.applied] == list(range(1, 21))
    # The start (no tracker), the first step (it creates it) and the second (the first one
    # whose lock read a marker); every later step knows the rows from its marker.
    assert reads == [0, 0, 1]
    write(folder, {"0021_t21.sql": "CREATE TABLE t21 (id int);\n", "0022_t22.sql": "CREATE TABLE t22 (id int);\n"})
    reads.clear()
    assert [r.version for r in selfmigrate.migrate(pg_url, str(folder)).applied] == [21, 22]
    assert reads == [20]  # the start's read holds at the first step: nobody committed since


def test_a_tracker_row_committed_by_hand_during_a_step_is_seen_by_the_next_one(pg_url: str, tmp_path: Path) -> None:
    # 0002 commits, through a connection of its own and without the lock, the row of 0003:
    # as if someone recorded it by hand while 0002 ran. The next step must not run 0003.
    folder = write(tmp_path / "m", {name: THREE[name] for name in ("0001_ran.sql", "0003_three.sql")})
    three = checksum((folder / "0003_three.sql").read_bytes())
    write(
        folder,
        {
            "0002_two.py": f"""
                import psycopg

                def up(conn):
                    conn.execute("INSERT INTO ran VALUES (2)")
                    with psycopg.connect({pg_url!r}, autocommit=True) as other:
                        other.execute(
                            "INSERT INTO schema_migrations VALUES (3, 'three', %s, 'now', 0, 'by hand', 'applied')",
                            ({three!r},),
                        )
            """,
            "0004_four.sql": "INSERT INTO ran VALUES (4);\n",
        },
    )
    report = selfmigrate.migrate(pg_url, str(folder))
    assert [r.version for r in report.applied] == [1, 2, 4]
    assert rows(pg_url, "SELECT version FROM ran ORDER BY 1") == [(1,), (2,), (4,)]
    assert report.current_version == 4


def status_command(url: str, folder: Path, cwd: Path, *args: str) -> tuple[str, int, bool]:
    """``python -m selfmigrate status`` in a fresh process: output, exit code, whether click was imported."""
    probe = (
        "import sys\n"
        "from selfmigrate.__main__ import run\n"
        "try:\n    run()\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('click' in sys.modules, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "-d", url, "-m", str(folder), "status", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
        check=False,
    )
    return done.stdout, done.returncode, done.stderr.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("args", [[], ["--json"]], ids=["text", "json"])
def test_status_of_an_up_to_date_database_is_answered_without_click_and_says_the_same(
    pg_url: str, tmp_path: Path, args: list[str]
) -> None:
    from click.testing import CliRunner

    from selfmigrate.faces.cli.main import cli

    folder = write(tmp_path / "m", THREE)
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:pw-secret@")
    selfmigrate.migrate(pg_url, str(folder))
    output, code, click = status_command(url, folder, tmp_path, *args)
    assert (code, click) == (0, False)
    full = CliRunner().invoke(cli, ["-d", url, "-m", str(folder), "status", *args])
    assert (output, code) == (full.stdout, full.exit_code)
    assert "pw-secret" not in output and "***" in output
    if args:
        assert json.loads(output)["up_to_date"] is True


def test_status_takes_the_full_command_when_the_files_are_not_certified(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", THREE)
    selfmigrate.migrate(pg_url, str(folder))
    write(folder, {"0004_four.sql": "INSERT INTO ran VALUES (4);\n"})
    output, code, click = status_command(pg_url, folder, tmp_path)
    assert (code, click) == (1, True) and "0004_four" in output and "pending" in output


def test_a_stale_stored_down_is_replaced_in_the_steps_pipeline(pg_url: str, tmp_path: Path) -> None:
    # An older release's rollback removed the tracker row and left its stored down: the
    # upsert replaces it (PostgresBackend.upsert), as the DELETE and INSERT did.
    folder = write(tmp_path / "m", {"0001_a.sql": "CREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n"})
    selfmigrate.migrate(pg_url, str(folder))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations")
        conn.execute("UPDATE schema_migrations_rollback SET down_script = 'stale', checksum = 'old'")
        conn.execute("DROP TABLE a")
    selfmigrate.migrate(pg_url, str(folder))
    assert rows(
        pg_url,
        "SELECT version, down_script, checksum = (SELECT checksum FROM schema_migrations)"
        " FROM schema_migrations_rollback",
    ) == [(1, "DROP TABLE a;\n", True)]
    assert PostgresBackend.upsert
