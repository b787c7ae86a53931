"""The example app under real gunicorn: 4 workers start at once on one fresh database.

Each worker runs ``create_app()``, so four processes migrate the same SQLite
file at the same moment. Exactly one may apply each migration; none may fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flask_app"
WORKERS = 4
#: Upper bound for gunicorn to start and every worker to load the app (a loaded
#: CI machine is slow; a healthy start takes about a second).
START_TIMEOUT = 90.0

# A gunicorn hook that says when a worker has loaded the app (and so migrated).
# No control socket: gunicorn >= 25 would create one in $HOME, shared by every
# gunicorn on the machine (the setting is ignored by older versions).
GUNICORN_CONF = """
control_socket_disable = True

def post_worker_init(worker):
    worker.log.info("selfmigrate-test: worker %s loaded the app", worker.pid)
"""


@dataclass
class Server:
    """A running gunicorn: its process, port, log file and worker pids."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: set[int]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def request(self, path: str, data: dict[str, t.Any] | None = None) -> tuple[int, t.Any]:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            headers={"Content-Type": "application/json"} if body else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read()


@contextlib.contextmanager
def gunicorn(tmp_path: Path, database: Path, log_name: str) -> t.Iterator[Server]:
    """Start gunicorn with :data:`WORKERS` workers on a free port; stop it on exit."""
    conf = tmp_path / "gunicorn_conf.py"
    conf.write_text(GUNICORN_CONF)
    log = tmp_path / log_name
    env = {**os.environ, "FLASK_DATABASE": str(database), "PYTHONPATH": str(EXAMPLE)}
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", str(conf),
        "--workers", str(WORKERS),
        "--bind", "127.0.0.1:0",
        "--timeout", "120",  # above selfmigrate's default lock timeout (60 s)
        "flask_app:create_app()",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        server = Server(process, 0, log, set())
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = server.log_text()
            listening = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            server.workers = {int(pid) for pid in re.findall(r"selfmigrate-test: worker (\d+) loaded", text)}
            if listening and len(server.workers) >= WORKERS:
                server.port = int(listening[1])
                break
            assert process.poll() is None, f"gunicorn exited with {process.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"gunicorn did not start in {START_TIMEOUT} s:\n{text}"
            time.sleep(0.1)
        yield server
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, server.log_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def tracker_rows(database: Path) -> list[tuple[t.Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(
            "SELECT version, name, state, applied_by FROM schema_migrations ORDER BY version"
        ).fetchall()
    finally:
        conn.close()


def test_four_workers_migrate_a_fresh_database_once(tmp_path: Path) -> None:
    database = tmp_path / "data" / "app.sqlite"
    database.parent.mkdir()

    with gunicorn(tmp_path, database, "first.log") as server:
        status, health = server.request("/health")
        assert status == 200, health
        assert health["current_version"] == 2
        assert [row["version"] for row in health["applied"]] == [1, 2]
        status, created = server.request(
            "/searches", {"name": "big orders", "query": "total > 100", "custom_sql_query": "SELECT 1"}
        )
        assert status == 201, created
        assert server.request(f"/searches/{created['id']}") == (200, created)
        log = server.log_text()

    # Every worker loaded the app; each migration was applied once, by one of them.
    assert len(server.workers) == WORKERS, log
    rows = tracker_rows(database)
    assert [(v, name, state) for v, name, state, _ in rows] == [
        (1, "create_saved_search", "applied"),
        (2, "add_custom_sql_query", "applied"),
    ]
    for *_, applied_by in rows:
        match = re.fullmatch(r"(.*) pid (\d+)", applied_by)
        assert match is not None, applied_by
        assert match[1] == socket.gethostname()
        assert int(match[2]) in server.workers, (applied_by, server.workers)
    assert log.count("Applied migration 0001_create_saved_search") == 1, log
    assert log.count("Applied migration 0002_add_custom_sql_query") == 1, log
    assert "Traceback" not in log and "Exception in worker" not in log, log

    # A restart (a new image on the same data) applies nothing and keeps the data.
    with gunicorn(tmp_path, database, "second.log") as server:
        status, listing = server.request("/searches")
        assert status == 200
        assert listing["searches"] == [created]
        log = server.log_text()
    assert "Applied migration" not in log, log
    assert log.count("is up to date at version 2") == WORKERS, log
    assert tracker_rows(database) == rows
