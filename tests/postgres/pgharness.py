"""Many real processes against one PostgreSQL database: rounds, kills, and the checks after them.

Shared by tests/postgres/test_pg_processes.py (a few rounds) and benchmarks/stress_postgres.py
(many). Every migration writes one row to ``ran`` in its own transaction, so "exactly once"
and "at a migration boundary" are checked from the data, not from what selfmigrate says.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import typing as t
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parents[2]
#: The version of the non-transactional migration in :func:`write_migrations` (if any).
NO_TRANSACTION = 15

_WORKER = """
import json, sys, time
go = float(sys.argv[3])
while time.time() < go:
    time.sleep(0.001)
import selfmigrate
print("go", flush=True)
try:
    report = selfmigrate.migrate(sys.argv[1], sys.argv[2], lock_timeout=120)
    print(json.dumps({"ok": True, "applied": [r.version for r in report.applied]}), flush=True)
except selfmigrate.SelfMigrateError as e:
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}), flush=True)
"""


def write_migrations(
    folder: Path, count: int = 20, *, slow: int | None = None, no_transaction: bool = False, sleep: float = 1.0
) -> Path:
    """``count`` migrations: each creates table ``t<N>`` and logs its run in ``ran``.

    ``slow``: that version sleeps ``sleep`` seconds inside its transaction (holding the
    lock). ``no_transaction``: version :data:`NO_TRANSACTION` is ``CREATE INDEX
    CONCURRENTLY`` outside a transaction (it logs nothing: it cannot be atomic).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        if no_transaction and n == NO_TRANSACTION:
            (folder / f"{n:04d}_index.sql").write_text(
                "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS ran_version ON ran (version);\n"
            )
            continue
        pause = f"SELECT pg_sleep({sleep});\n" if n == slow else ""
        first = "CREATE TABLE ran (version int NOT NULL, pid int NOT NULL);\n" if n == 1 else ""
        if n % 3 == 0:
            (folder / f"{n:04d}_py{n}.py").write_text(
                "import os\n\n\ndef up(conn):\n"
                f"    conn.execute('CREATE TABLE t{n} (id int)')\n"
                + (f"    conn.execute('SELECT pg_sleep({sleep})')\n" if n == slow else "")
                + f"    conn.execute('INSERT INTO ran VALUES (%s, %s)', ({n}, os.getpid()))\n"
            )
        else:
            (folder / f"{n:04d}_sql{n}.sql").write_text(
                f"{first}CREATE TABLE t{n} (id int);\n{pause}INSERT INTO ran VALUES ({n}, pg_backend_pid());\n"
            )
    return folder


@contextlib.contextmanager
def fresh_database(server: str) -> t.Iterator[str]:
    """A new empty database on ``server`` (a URL), dropped afterwards; yields its URL."""
    name = f"sm_stress_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    try:
        user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432)
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start(
    url: str, folder: Path, count: int, at: float, env: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """``count`` processes that each call ``selfmigrate.migrate(url, folder)`` at time ``at``."""
    environment = {**os.environ, **(env or {})}
    return [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(folder), str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(count)
    ]


def outcomes(processes: list[subprocess.Popen[str]]) -> list[dict[str, t.Any]]:
    """Each process's result line (a crash is a result too, with its stderr)."""
    found = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        found.append(json.loads(lines[-1]) if lines else {"ok": False, "error": "crashed", "message": err[-3000:]})
    return found


def applied_versions(url: str, table: str = "schema_migrations") -> list[tuple[int, str]]:
    """The tracker's (version, state) rows; empty without a tracker."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return []
        return [(int(v), str(s)) for v, s in conn.execute(f"SELECT version, state FROM {table} ORDER BY version")]


def sessions_ended(url: str, timeout: float = 60.0) -> None:
    """Wait until no session but this check's is connected to the database of ``url``."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            (others,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone() or (0,)
            if not others:
                return
            assert time.monotonic() < deadline, f"{others} session(s) of a killed process still connected"
            time.sleep(0.01)


def check_boundary(url: str, count: int, *, no_transaction: bool = False) -> list[int]:
    """Assert the database is at a migration boundary; return the applied versions.

    Applied versions are 1..k (in order, no gap); each one logged exactly one
    row in ``ran`` and created its table (but the non-transactional one, which
    does neither); nothing else did.
    """
    # One snapshot for the tracker and the data: read apart, a commit landing between
    # the two reads would look like a migration's work without its row.
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        rows: list[tuple[int, str]] = []
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() != (None,):
            found = conn.execute("SELECT version, state FROM schema_migrations ORDER BY version")
            rows = [(int(v), str(state)) for v, state in found]
        logged: list[int] = []
        if conn.execute("SELECT to_regclass('ran')").fetchone() != (None,):
            logged = [int(v) for (v,) in conn.execute("SELECT version FROM ran ORDER BY version")]
        tables = {
            int(name[1:])
            for (name,) in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^t[0-9]+$'")
        }
        conn.rollback()
    versions = [v for v, state in rows if state == "applied"]
    assert versions == list(range(1, len(versions) + 1)), rows
    expected = [v for v in versions if not (no_transaction and v == NO_TRANSACTION)]
    assert logged == expected, (logged, rows)
    assert tables == set(expected), (tables, rows)
    assert all(v <= count for v in versions)
    return versions


def exactly_once(results: list[dict[str, t.Any]], url: str, count: int, *, no_transaction: bool = False) -> None:
    """Assert every process succeeded and every migration ran once (by the data and the reports)."""
    failures = [r for r in results if not r["ok"]]
    assert failures == [], failures
    assert check_boundary(url, count, no_transaction=no_transaction) == list(range(1, count + 1))
    reported = sorted(v for r in results for v in r["applied"])
    assert reported == list(range(1, count + 1)), reported


def apply_duration(server: str, folder: Path) -> float:
    """Seconds one process takes from its ``go`` to its end, applying ``folder`` to a fresh database."""
    with fresh_database(server) as url:
        (process,) = start(url, folder, 1, 0.0)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "go"
        started = time.perf_counter()
        process.communicate(timeout=120)
        return time.perf_counter() - started


def kill_trial(server: str, folder: Path, count: int, rng: random.Random, window: float) -> dict[str, t.Any]:
    """Start one process on a fresh database, SIGKILL it after a random part of ``window``, then check.

    Returns what was found: the versions applied at the kill, whether the kill
    caught the non-transactional migration (its row left ``started``), and what the
    next start did.
    """
    with fresh_database(server) as url:
        (process,) = start(url, folder, 1, 0.0)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "go"
        time.sleep(rng.uniform(0, window))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        # The server goes on with what the process sent before it died (a pipeline's
        # rows and COMMIT may be in its socket buffer); the state at the kill is the
        # one left when the process's sessions have ended.
        sessions_ended(url)
        at_kill = check_boundary(url, count, no_transaction=True)
        started = [v for v, state in applied_versions(url) if state == "started"]
        (after,) = outcomes(start(url, folder, 1, 0.0))
        if started:
            # Reported, never re-run blindly: the next start refuses and names it.
            assert not after["ok"] and after["error"] == "StateError", after
            assert f"resolve {started[0]}" in after["message"], after
            assert check_boundary(url, count, no_transaction=True) == at_kill
        else:
            assert after["ok"], after
            assert check_boundary(url, count, no_transaction=True) == list(range(1, count + 1))
        return {"applied_at_kill": len(at_kill), "started": bool(started), "next": after}
