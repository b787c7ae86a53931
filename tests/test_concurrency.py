"""Real processes: many workers starting at once, and a worker killed mid-migration."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import selfmigrate

WORKERS = 8
ROUNDS = 10
ROWS = 20_000

MIGRATIONS = {
    "0001_create.sql": """
        CREATE TABLE item (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
        CREATE TABLE once (version INTEGER NOT NULL, pid INTEGER NOT NULL);
        INSERT INTO once VALUES (1, 0);
    """,
    # Slow-ish: many rows, so that the others really wait for the lock.
    "0002_fill.py": f"""
        import os

        def up(conn):
            conn.executemany("INSERT INTO item (n) VALUES (?)", ((i,) for i in range({ROWS})))
            conn.execute("INSERT INTO once VALUES (2, ?)", (os.getpid(),))
    """,
    "0003_index.sql": """
        CREATE INDEX item_n ON item (n);
        INSERT INTO once VALUES (3, 0);
    """,
    "0004_total.py": """
        import os

        def up(conn):
            (total,) = conn.execute("SELECT sum(n) FROM item").fetchone()
            conn.execute("CREATE TABLE total (value INTEGER)")
            conn.execute("INSERT INTO total VALUES (?)", (total,))
            conn.execute("INSERT INTO once VALUES (4, ?)", (os.getpid(),))
    """,
}

# Each worker imports selfmigrate, says it is ready, waits for the start file, migrates,
# and prints its report as JSON. Starting the clock only when all are ready makes the
# start as simultaneous as processes allow.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import selfmigrate

    database, migrations, ready, go = sys.argv[1:5]
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("start file never appeared")
        time.sleep(0.001)
    try:
        report = selfmigrate.migrate(database, migrations, lock_timeout=50)
    except selfmigrate.SelfMigrateError as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps({
        "applied": [r.version for r in report.applied],
        "current_version": report.current_version,
        "pending": list(report.pending),
        "ok": report.ok,
    }))
    """
)


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


def run_round(
    tmp_path: Path, migrations: Path, round_no: int, *, expect_ok: bool = True
) -> tuple[Path, list[dict[str, object]]]:
    work = tmp_path / f"round_{round_no}"
    work.mkdir()
    database = work / "app.sqlite"
    if round_no % 2:
        # Every other round the app has switched its (still empty) database to WAL,
        # where readers never wait for the writer.
        conn = sqlite3.connect(database)
        assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        conn.close()
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    go = work / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(database), str(migrations), str(work / f"ready_{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((work / f"ready_{i}").exists() for i in range(WORKERS)):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in processes), "a worker died before the start"
            time.sleep(0.005)
        go.touch()
        outputs = [p.communicate(timeout=60) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    reports = []
    for p, (out, err) in zip(processes, outputs, strict=True):
        assert p.returncode == (0 if expect_ok else 1), f"worker: {out}\n{err}"
        reports.append(json.loads(out))
    return database, reports


def test_eight_processes_starting_at_once_apply_each_migration_exactly_once(
    tmp_path: Path, migrations_dir: Path
) -> None:
    expected_total = sum(range(ROWS))
    for round_no in range(ROUNDS):
        database, reports = run_round(tmp_path, migrations_dir, round_no)

        # Every process succeeded and says the database is at the head.
        for report in reports:
            assert report["ok"] is True and report["current_version"] == 4 and report["pending"] == []
            applied = t_list(report["applied"])
            assert applied == sorted(applied)
        # Between them, every migration was applied exactly once.
        all_applied = sorted(v for report in reports for v in t_list(report["applied"]))
        assert all_applied == [1, 2, 3, 4], f"round {round_no}: {reports}"

        conn = sqlite3.connect(database)
        try:
            assert conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall() == [
                (1,), (2,), (3,), (4,)
            ]
            assert conn.execute("SELECT version, count(*) FROM once GROUP BY version").fetchall() == [
                (1, 1), (2, 1), (3, 1), (4, 1)
            ]
            assert conn.execute("SELECT count(*), sum(n) FROM item").fetchone() == (ROWS, expected_total)
            assert conn.execute("SELECT value FROM total").fetchall() == [(expected_total,)]
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            assert journal == ("wal" if round_no % 2 else "delete")
        finally:
            conn.close()


def test_eight_processes_and_a_failing_migration(tmp_path: Path, migrations_dir: Path) -> None:
    """Every worker reports the failure; what came before it is applied once; nothing of it stays."""
    (migrations_dir / "0003_index.sql").write_text(
        "CREATE INDEX item_n ON item (n);\nINSERT INTO once VALUES (3, 0);\nINSERT INTO nowhere VALUES (1);\n"
    )
    database, reports = run_round(tmp_path, migrations_dir, 0, expect_ok=False)
    for report in reports:
        error = str(report["error"])
        assert error.startswith("MigrationError: Migration 0003_index failed")
        assert "0003_index.sql, line 3" in error and "no such table: nowhere" in error
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall() == [(1,), (2,)]
        assert conn.execute("SELECT version, count(*) FROM once GROUP BY version").fetchall() == [(1, 1), (2, 1)]
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'item_n'").fetchall() == []
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (ROWS,)
    finally:
        conn.close()


def t_list(value: object) -> list[int]:
    assert isinstance(value, list)
    return [int(v) for v in value]


KILLED = textwrap.dedent(
    """
    import sys
    import selfmigrate

    selfmigrate.migrate(sys.argv[1], sys.argv[2])
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_process_killed_mid_migration_leaves_nothing_half_applied(tmp_path: Path, migrations_dir: Path) -> None:
    database = tmp_path / "app.sqlite"
    selfmigrate.migrate(database, migrations_dir)
    conn = sqlite3.connect(database)
    before = "\n".join(conn.iterdump())
    conn.close()

    inside = tmp_path / "inside"
    (migrations_dir / "0005_slow.py").write_text(
        textwrap.dedent(
            f"""
            import time

            def up(conn):
                conn.execute("DELETE FROM item WHERE n % 2 = 0")
                conn.execute("CREATE TABLE half (x)")
                open({str(inside)!r}, "w").close()
                time.sleep(120)
                conn.execute("INSERT INTO half VALUES (1)")
            """
        )
    )
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    process = subprocess.Popen([sys.executable, str(script), str(database), str(migrations_dir)])
    try:
        deadline = time.monotonic() + 60
        while not inside.exists():
            assert process.poll() is None, "the migration process ended early"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    # selfmigrate is the first to open the database after the kill: it sees 0005 pending.
    status = selfmigrate.Runner(database, migrations_dir).status()
    assert [m.version for m in status.pending] == [5] and status.current_version == 4
    conn = sqlite3.connect(database)
    assert "\n".join(conn.iterdump()) == before  # the hot journal was rolled back
    conn.close()

    # The next start sees 0005 as pending and applies it once (this time without the pause).
    (migrations_dir / "0005_slow.py").write_text(
        "def up(conn):\n"
        "    conn.execute('DELETE FROM item WHERE n % 2 = 0')\n"
        "    conn.execute('CREATE TABLE half (x)')\n"
    )
    report = selfmigrate.migrate(database, migrations_dir)
    assert [r.version for r in report.applied] == [5]
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (ROWS // 2,)
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 5").fetchone() == (1,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
