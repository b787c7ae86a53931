"""Whole-process startup with 1000 applied migrations: selfmigrate against a minimal runner.

Run it from the project root::

    .venv/bin/python benchmarks/startup.py

In one run it writes a migrations package of 1000 migrations (half ``.sql``,
half ``.py``) into a temporary folder, applies them once, and then times fresh
``python -c ...`` processes, interleaved, many times each:

* ``selfmigrate.migrate()`` with nothing pending (the start of every process of
  an app whose database is up to date), against a minimal stdlib-only runner
  written here (connect, read the tracker, list the files, nothing else);
* the same two in a process that imported Flask first, as an app factory has
  (a reference: the stdlib modules selfmigrate needs are then already loaded);
* ``import selfmigrate`` against ``import sqlite3``;
* ``pass``, the interpreter's own start, for reference.

It prints the median and minimum of each and the ratios against the targets:
no-op startup at most 1.5x the minimal runner, import at most 1.3x
``import sqlite3``. Figures depend on the machine and its load; the ratios are
what to compare. It exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PACKAGE = "bench_app"
MIGRATIONS = f"{PACKAGE}.migrations"

#: Targets from the issue (ratio of medians).
NOOP_TARGET = 1.5
IMPORT_TARGET = 1.3


def write_migrations(root: Path, count: int) -> Path:
    """Write ``count`` migrations into the package ``bench_app.migrations`` under ``root``."""
    folder = root / PACKAGE / "migrations"
    folder.mkdir(parents=True)
    (root / PACKAGE / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    for version in range(1, count + 1):
        if version % 2:
            (folder / f"{version:04d}_create_table_{version}.sql").write_text(
                f"-- Table {version}.\nCREATE TABLE t{version} (id INTEGER PRIMARY KEY, value TEXT);\n"
                f"CREATE INDEX t{version}_value ON t{version} (value);\n"
                f"-- migrate:down\nDROP TABLE t{version};\n"
            )
        else:
            (folder / f"{version:04d}_add_column_{version}.py").write_text(
                textwrap.dedent(
                    f'''\
                    """Add a column to table {version - 1}."""


                    def up(conn):
                        conn.execute("ALTER TABLE t{version - 1} ADD COLUMN c{version} TEXT")


                    def down(conn):
                        conn.execute("ALTER TABLE t{version - 1} DROP COLUMN c{version}")
                    '''
                )
            )
    return folder


def stdlib_runner(database: Path, folder: Path) -> str:
    """The minimal runner: connect, read the tracker, list the files, nothing else."""
    return textwrap.dedent(
        f"""\
        import os, sqlite3
        conn = sqlite3.connect({str(database)!r})
        applied = {{row[0] for row in conn.execute("SELECT version FROM schema_migrations")}}
        files = sorted(f for f in os.listdir({str(folder)!r}) if f.endswith((".sql", ".py")) and f[0] != "_")
        pending = [f for f in files if int(f.split("_", 1)[0]) not in applied]
        conn.close()
        assert not pending, pending
        """
    )


def stdlib_checking_runner(database: Path, folder: Path) -> str:
    """The minimal runner, plus what the startup contract adds: read and hash every file.

    Not a target; it shows how much of selfmigrate's time is the checksum check
    on edited migrations (reading 1000 files) and how much is selfmigrate itself.
    """
    return textwrap.dedent(
        f"""\
        import hashlib, os, sqlite3
        conn = sqlite3.connect({str(database)!r})
        applied = {{row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}}
        folder = {str(folder)!r}
        files = sorted(f for f in os.listdir(folder) if f.endswith((".sql", ".py")) and f[0] != "_")
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            digest = hashlib.sha256(data.replace(b"\\r\\n", b"\\n").replace(b"\\r", b"\\n")).hexdigest()
            assert applied[int(name.split("_", 1)[0])] == digest, name
        conn.close()
        """
    )


def selfmigrate_noop(database: Path) -> str:
    """selfmigrate's start when nothing is pending."""
    return textwrap.dedent(
        f"""\
        import selfmigrate
        report = selfmigrate.migrate({str(database)!r}, {MIGRATIONS!r})
        assert not report.applied and report.current_version is not None, report
        """
    )


def run(code: str, env: dict[str, str]) -> float:
    """Seconds for a fresh interpreter to run ``code`` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--migrations", type=int, default=1000, help="how many migrations (default 1000)")
    parser.add_argument("--repeat", type=int, default=40, help="timed runs of each command (default 40)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="selfmigrate-bench-") as tmp:
        root = Path(tmp)
        folder = write_migrations(root, args.migrations)
        database = root / "app.sqlite"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        # An installed package starts from its cached bytecode; with
        # PYTHONDONTWRITEBYTECODE set (some shells and CI set it) every run would
        # compile selfmigrate from source and time the compiler instead.
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", f"import selfmigrate; selfmigrate.migrate({str(database)!r}, {MIGRATIONS!r})"],
            env=env,
            check=True,
        )
        print(f"Applied {args.migrations} migrations in {time.perf_counter() - started:.1f} s (setup, not timed).")

        cases = {
            "selfmigrate.migrate() no-op": selfmigrate_noop(database),
            "minimal stdlib runner": stdlib_runner(database, folder),
            "stdlib runner + file checksums": stdlib_checking_runner(database, folder),
            # The same two inside an app: a Flask app factory has imported Flask (and with
            # it logging, dataclasses, pathlib, hashlib, re, typing) before it migrates.
            "flask app: selfmigrate no-op": "import flask\n" + selfmigrate_noop(database),
            "flask app: minimal runner": "import flask\n" + stdlib_runner(database, folder),
            "import selfmigrate": "import selfmigrate",
            "import sqlite3": "import sqlite3",
            "python -c pass": "pass",
        }
        for code in cases.values():  # warm the OS caches and write .pyc files
            for _ in range(3):
                run(code, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):  # interleaved, so that load changes hit every case alike
            for name, code in cases.items():
                times[name].append(run(code, env))

    print(f"\nWhole-process startup, {args.repeat} runs each, {args.migrations} applied migrations")
    print(f"Python {sys.version.split()[0]} on {sys.platform}, {os.cpu_count()} CPUs, load {_load()}\n")
    print(f"{'command':32} {'median ms':>10} {'min ms':>10}")
    for name, values in times.items():
        print(f"{name:32} {statistics.median(values) * 1000:10.1f} {min(values) * 1000:10.1f}")

    print()
    ok = True
    for label, a, b, target in (
        ("no-op startup / minimal runner", "selfmigrate.migrate() no-op", "minimal stdlib runner", NOOP_TARGET),
        ("import selfmigrate / import sqlite3", "import selfmigrate", "import sqlite3", IMPORT_TARGET),
        ("no-op startup / runner + checksums", "selfmigrate.migrate() no-op", "stdlib runner + file checksums", None),
        ("in a Flask process: no-op / minimal", "flask app: selfmigrate no-op", "flask app: minimal runner", None),
    ):
        median = statistics.median(times[a]) / statistics.median(times[b])
        best = min(times[a]) / min(times[b])
        line = f"{label:38} median {median:.2f}x  min {best:.2f}x"
        if target is None:
            print(f"{line}  (reference: no target)")
            continue
        met = median <= target
        ok = ok and met
        print(f"{line}  target <= {target}x  {'met' if met else 'MISSED'}")
    print("\nRerun: .venv/bin/python benchmarks/startup.py")
    return 0 if ok else 1


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
