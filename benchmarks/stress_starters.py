"""Many starters: 16 app factories at once against one fresh database, 100 rounds.

Run it from the project root::

    .venv/bin/python benchmarks/stress_starters.py                 # 100 rounds, forked workers
    .venv/bin/python benchmarks/stress_starters.py --spawn --rounds 10

It writes a Flask app package whose factory calls :func:`selfmigrate.apply`,
with 50 migrations (SQL and Python; each one records itself in a table without
a unique key, so a migration run twice would show). Each round starts 16
processes on a new database and releases them at the same instant; each builds
the app (``create_app()``) and reports how long its factory took. After the
round it checks that every process succeeded and that every migration ran
exactly once.

Two variants, 100 rounds each by default:

* ``together``: all 16 released at once;
* ``held``: 8 released at once, and the other 8 released while one of the
  first is inside a slow migration (0025 sleeps 0.3 s holding the lock).

Workers are forked from a parent that has imported Flask and the app package
(but not called the factory), so each worker runs the factory itself, as
gunicorn workers do without ``--preload``, minus the import time; with
``--spawn`` each worker is a fresh interpreter that imports everything itself
(slower; use fewer rounds).

It prints, per variant, the number of processes, the failures (target: 0),
migrations run twice (target: 0) and the longest and median wait (time in the
app factory). Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

PROCESSES = 16
MIGRATIONS = 50
SLOW_VERSION = 25

APP = """
import os

from flask import Flask

import selfmigrate


def create_app():
    app = Flask(__name__)
    app.config["DATABASE"] = os.environ["STARTERS_DATABASE"]
    selfmigrate.apply(app)
    return app
"""

SLOW = """
import os
import pathlib
import time


def up(conn):
    conn.execute("INSERT INTO ran (version, pid) VALUES (?, ?)", ({version}, os.getpid()))
    marker = os.environ.get("STARTERS_SLOW_MARKER")
    if marker:
        pathlib.Path(marker).touch()
        time.sleep(0.3)
"""

PY = """
import os


def up(conn):
    conn.execute("CREATE TABLE t{version} (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t{version} (v) VALUES (?)", [(str(i),) for i in range(20)])
    conn.execute("INSERT INTO ran (version, pid) VALUES (?, ?)", ({version}, os.getpid()))
"""

SQL = """
CREATE TABLE t{version} (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO t{version} (v) VALUES ('a'), ('b');
CREATE INDEX t{version}_v ON t{version} (v);
INSERT INTO ran (version, pid) VALUES ({version}, 0);
"""


def write_app(root: Path) -> None:
    package = root / "starters_app"
    migrations = package / "migrations"
    migrations.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(APP))
    (migrations / "__init__.py").write_text("")
    (migrations / "0001_ran.sql").write_text("CREATE TABLE ran (version INTEGER, pid INTEGER);\n")
    for version in range(2, MIGRATIONS + 1):
        if version == SLOW_VERSION:
            text, suffix = SLOW, "py"
        elif version % 3 == 0:
            text, suffix = PY, "py"
        else:
            text, suffix = SQL, "sql"
        body = textwrap.dedent(text).lstrip("\n").replace("{version}", str(version))
        (migrations / f"{version:04d}_step.{suffix}").write_text(body)


SPAWNED = """
import sys, time
sys.path.insert(0, sys.argv[1])
from starters_app import create_app
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
t0 = time.perf_counter()
try:
    create_app()
except Exception as e:
    print("fail", time.perf_counter() - t0, type(e).__name__, str(e).replace("\\n", " "), flush=True)
    sys.exit(1)
print("ok", time.perf_counter() - t0, flush=True)
"""


class Worker:
    """One app process, started and held until :meth:`release`."""

    def __init__(self, root: Path, spawn: bool) -> None:
        self.spawn = spawn
        if spawn:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, "-c", SPAWNED, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert self.proc.stdout is not None
            assert self.proc.stdout.readline() == "ready\n"
            return
        self.proc = None
        gate_r, self.gate_w = os.pipe()
        self.result_r, result_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the worker
            os.close(self.gate_w)
            os.close(self.result_r)
            os.read(gate_r, 1)
            t0 = time.perf_counter()
            try:
                from starters_app import create_app

                create_app()
                line = f"ok {time.perf_counter() - t0}\n"
            except BaseException as e:
                line = f"fail {time.perf_counter() - t0} {type(e).__name__} {e}".replace("\n", " ") + "\n"
            os.write(result_w, line.encode())
            os._exit(0)
        os.close(gate_r)
        os.close(result_w)

    def release(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        else:
            os.write(self.gate_w, b"g")
            os.close(self.gate_w)

    def result(self) -> tuple[bool, float, str]:
        if self.proc is not None:
            out, _ = self.proc.communicate(timeout=300)
            line = out.strip()
        else:
            chunks = []
            while chunk := os.read(self.result_r, 4096):
                chunks.append(chunk)
            os.close(self.result_r)
            os.waitpid(self.pid, 0)
            line = b"".join(chunks).decode().strip()
        if not line:
            return False, 0.0, "the worker died without a result"
        status, seconds, *rest = line.split(" ", 2)
        return status == "ok", float(seconds), " ".join(rest)


@dataclass
class Tally:
    processes: int = 0
    failures: list[str] = field(default_factory=list)
    twice: int = 0
    waits: list[float] = field(default_factory=list)


def run_round(root: Path, database: Path, spawn: bool, held: bool, tally: Tally) -> None:
    os.environ["STARTERS_DATABASE"] = str(database)
    marker = database.with_suffix(".slow")
    if held:
        os.environ["STARTERS_SLOW_MARKER"] = str(marker)
    else:
        os.environ.pop("STARTERS_SLOW_MARKER", None)
    workers = [Worker(root, spawn) for _ in range(PROCESSES)]
    if held:
        first, second = workers[: PROCESSES // 2], workers[PROCESSES // 2 :]
        for worker in first:
            worker.release()
        deadline = time.monotonic() + 60
        while not marker.exists():
            if time.monotonic() > deadline:
                tally.failures.append("the slow migration never started")
                break
            time.sleep(0.001)
        for worker in second:
            worker.release()
    else:
        for worker in workers:
            worker.release()
    for worker in workers:
        ok, seconds, error = worker.result()
        tally.processes += 1
        tally.waits.append(seconds)
        if not ok:
            tally.failures.append(error)
    conn = sqlite3.connect(database)
    try:
        counts = dict(conn.execute("SELECT version, count(*) FROM ran GROUP BY version"))
        tracker = [v for (v,) in conn.execute("SELECT version FROM schema_migrations WHERE state = 'applied'")]
    except sqlite3.Error as e:
        tally.failures.append(f"round on {database.name}: cannot read the result: {e}")
        return
    finally:
        conn.close()
    tally.twice += sum(1 for n in counts.values() if n > 1)
    if sorted(tracker) != list(range(1, MIGRATIONS + 1)) or sorted(counts) != list(range(2, MIGRATIONS + 1)):
        tally.failures.append(f"round on {database.name}: the database did not end at version {MIGRATIONS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="rounds per variant (default 100)")
    parser.add_argument("--spawn", action="store_true", help="fresh interpreters instead of forked workers")
    args = parser.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_app(root)
        sys.path.insert(0, str(root))
        if not args.spawn:
            import starters_app  # noqa: F401  (imported once; each worker still runs the factory)
        for held in (False, True):
            tally = Tally()
            started = time.monotonic()
            for n in range(args.rounds):
                run_round(root, root / f"{'held' if held else 'together'}_{n}.sqlite", args.spawn, held, tally)
            name = "held" if held else "together"
            print(
                f"{name:8s}  rounds {args.rounds}  processes {tally.processes}  failures {len(tally.failures)}"
                f"  migrations run twice {tally.twice}  longest wait {max(tally.waits) * 1000:.0f} ms"
                f"  median wait {statistics.median(tally.waits) * 1000:.0f} ms  ({time.monotonic() - started:.0f} s)"
            )
            for failure in tally.failures[:10]:
                print(f"  {failure}")
            bad += len(tally.failures) + tally.twice
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
