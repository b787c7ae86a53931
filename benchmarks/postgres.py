"""PostgreSQL figures: no-op start, fresh apply and status at 1000 migrations, against a minimal runner.

Run it from the project root against a server (default postgresql://postgres@127.0.0.1:5432/postgres,
or SELFMIGRATE_TEST_POSTGRES)::

    .venv/bin/python benchmarks/postgres.py               # 1000 migrations, 5 repeats
    .venv/bin/python benchmarks/postgres.py --count 200

The minimal runner is what a careful hand-written psycopg script does, measured in the same
run on the same server: one connection; ``SELECT version FROM tracker``; for each pending
file, in one transaction, the file's SQL and an ``INSERT`` of its row. It has no lock, no
checksums, no guard, no fingerprint: the ratio is what selfmigrate's guarantees cost. Each
figure is the median of the repeats. Apply and no-op start run in-process, imports warm;
status is the command a health check runs (``python -m selfmigrate status``), each run a
fresh process, against the hand-written status script run the same way (interpreter start
and ``import psycopg`` in both); ``Runner.status`` is the in-process call, for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "postgres"))

from pgharness import fresh_database  # noqa: E402

import selfmigrate  # noqa: E402
from selfmigrate.core.runner import Runner  # noqa: E402


def write(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        (folder / f"{n:04d}_t{n}.sql").write_text(f"CREATE TABLE t{n} (id int PRIMARY KEY, note text);\n")
    return folder


def minimal_apply(url: str, folder: Path) -> int:
    """The hand-written runner: apply what is pending; return how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS minimal_migrations (version int PRIMARY KEY, name text)")
        done = {v for (v,) in conn.execute("SELECT version FROM minimal_migrations")}
        applied = 0
        for path in sorted(folder.iterdir()):
            version = int(path.name.split("_", 1)[0])
            if version in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO minimal_migrations VALUES (%s, %s)", (version, path.stem))
            applied += 1
        return applied


def minimal_status(url: str, folder: Path) -> int:
    """The hand-written status: applied versions against the files; return how many are pending."""
    with psycopg.connect(url, autocommit=True) as conn:
        done = {v for (v,) in conn.execute("SELECT version FROM minimal_migrations")}
    return sum(1 for path in folder.iterdir() if int(path.name.split("_", 1)[0]) not in done)


#: The hand-written status as a health check runs it: a process of its own.
MINIMAL_STATUS = """
import os, sys
import psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    done = {v for (v,) in conn.execute("SELECT version FROM minimal_migrations")}
pending = [n for n in os.listdir(sys.argv[2]) if int(n.split("_", 1)[0]) not in done]
print(f"{len(done)} applied, {len(pending)} pending")
sys.exit(1 if pending else 0)
"""


def run(command: list[str], cwd: str) -> None:
    """Run ``command``; it must exit 0 (up to date)."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command} exited {done.returncode}: {done.stdout}{done.stderr}")


def timed(function: t.Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=t.cast(str, __doc__).split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="migrations (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each figure (default 5)")
    args = parser.parse_args()
    server = os.environ.get("SELFMIGRATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write(Path(tmp) / "m", args.count)
        fresh_ours, fresh_minimal = [], []
        for _ in range(args.repeats):
            with fresh_database(server) as url:
                fresh_ours.append(timed(lambda: selfmigrate.migrate(url, str(folder))))
            with fresh_database(server) as url:
                fresh_minimal.append(timed(lambda: minimal_apply(url, folder)))
        with fresh_database(server) as url, fresh_database(server) as other:
            selfmigrate.migrate(url, str(folder))
            minimal_apply(other, folder)
            noop_ours = [timed(lambda: selfmigrate.migrate(url, str(folder))) for _ in range(args.repeats * 4)]
            noop_minimal = [timed(lambda: minimal_apply(other, folder)) for _ in range(args.repeats * 4)]
            # The status command a health check runs, each in a fresh process, interleaved,
            # from a folder with no pyproject.toml above it (as in an image).
            ours = [sys.executable, "-m", "selfmigrate", "-d", url, "-m", str(folder), "status"]
            minimal = [sys.executable, "-c", MINIMAL_STATUS, other, str(folder)]
            status_ours, status_minimal = [], []
            for _ in range(args.repeats * 2):
                status_ours.append(timed(lambda: run(ours, tmp)))
                status_minimal.append(timed(lambda: run(minimal, tmp)))
            in_process = [timed(lambda: Runner(url, str(folder)).status()) for _ in range(args.repeats * 2)]
            in_process_minimal = [timed(lambda: minimal_status(other, folder)) for _ in range(args.repeats * 2)]
    rows = [
        ("fresh apply", fresh_ours, fresh_minimal, 1.3),
        ("no-op start", noop_ours, noop_minimal, 1.3),
        ("status (CLI)", status_ours, status_minimal, 2.0),
        ("Runner.status", in_process, in_process_minimal, None),
    ]
    print(f"{args.count} migrations, PostgreSQL at {server.split('@')[-1]}, medians of the repeats")
    print(f"{'':14}{'selfmigrate':>14}{'minimal':>12}{'ratio':>8}{'goal':>7}")
    for name, ours, minimal, goal in rows:
        a, b = statistics.median(ours), statistics.median(minimal)
        target = "" if goal is None else f"{goal:6.1f}x"
        print(f"{name:14}{a * 1000:11.1f} ms{b * 1000:9.1f} ms{a / b:7.2f}x{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
