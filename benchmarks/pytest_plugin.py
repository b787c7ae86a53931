"""The pytest plugin against migrating from scratch in every test.

Run it from the project root::

    .venv/bin/python benchmarks/pytest_plugin.py

In one run it writes a project with 100 migrations (tables, added columns,
indexes, Python data migrations) into a temporary folder, and a suite of 500
tests that each read the database through a fixture. It then runs that suite in
fresh ``python -m pytest`` processes, three ways:

* ``plugin``: the fixture is :func:`migrated_db` (a copy of a template migrated
  once per session);
* ``naive``: a conftest fixture that migrates a new database in ``tmp_path``
  with :func:`selfmigrate.migrate` for every test;
* ``baseline``: a conftest fixture that returns ``sqlite3.connect(":memory:")``
  — what the same suite costs with a database that needs no migrating.

``plugin`` and ``baseline`` run several times, interleaved; ``naive`` (slow)
once. It prints the median wall time of each, the ratio naive / plugin (target:
at least 20), and the per-test overhead of ``migrated_db`` over the baseline,
the one-time template build included (target: at most 1 ms). It also times the
two ways of copying the template (file copy and the sqlite3 backup API).

Figures depend on the machine and its load; the ratios are what to compare. It
exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

#: Targets from the issue.
SPEEDUP_TARGET = 20.0
OVERHEAD_TARGET_MS = 1.0

TEST_BODY = '''
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_reads_the_schema(n, {fixture}):
    assert {fixture}.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] >= 0
'''

NAIVE_CONFTEST = '''
import sqlite3

import pytest

import selfmigrate


@pytest.fixture
def naive_db(tmp_path):
    path = tmp_path / "db.sqlite"
    selfmigrate.migrate(path, {migrations!r})
    conn = sqlite3.connect(path)
    yield conn
    conn.close()
'''

BASELINE_CONFTEST = '''
import sqlite3

import pytest


@pytest.fixture
def plain_db():
    conn = sqlite3.connect(":memory:")
    yield conn
    conn.close()
'''


def write_migrations(folder: Path, count: int) -> None:
    """Write ``count`` migrations: a table, a column, an index, a Python data migration, in turn."""
    folder.mkdir(parents=True)
    for version in range(1, count + 1):
        table = f"t{(version - 1) // 4}"
        step = version % 4
        if step == 1:
            sql = f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
        elif step == 2:
            sql = f"ALTER TABLE {table} ADD COLUMN amount INTEGER NOT NULL DEFAULT 0;\n"
        elif step == 3:
            sql = f"CREATE INDEX {table}_name ON {table} (name);\n"
        else:
            code = f"""\
                def up(conn):
                    conn.executemany(
                        "INSERT INTO {table} (name, amount) VALUES (?, ?)",
                        [(f"row {{i}}", i) for i in range(20)],
                    )
                """
            (folder / f"{version:04d}_fill_{table}.py").write_text(textwrap.dedent(code))
            continue
        (folder / f"{version:04d}_step_{version}.sql").write_text(sql)


def write_suite(root: Path, name: str, migrations: Path, tests: int) -> Path:
    """Write one suite: its ini file, conftest and test module."""
    suite = root / name
    suite.mkdir()
    fixture = {"plugin": "migrated_db", "naive": "naive_db", "baseline": "plain_db"}[name]
    ini = "[pytest]\n"
    if name == "plugin":
        ini += f"selfmigrate_migrations = {migrations}\n"
    (suite / "pytest.ini").write_text(ini)
    conftest = {"naive": NAIVE_CONFTEST.format(migrations=str(migrations)), "baseline": BASELINE_CONFTEST}.get(
        name, ""
    )
    (suite / "conftest.py").write_text(conftest)
    (suite / "test_suite.py").write_text(TEST_BODY.format(tests=tests, fixture=fixture))
    return suite


def run_suite(suite: Path, tests: int) -> float:
    """Run the suite in a fresh pytest process; return its wall time in seconds."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(suite)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=suite, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"{tests} passed" not in done.stdout:
        sys.exit(f"suite {suite.name} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def time_copies(migrations: Path, work: Path, count: int = 200) -> tuple[float, float, int]:
    """Median µs of a file copy and of a sqlite3 backup of the migrated template; its size."""
    import selfmigrate

    template = work / "template.sqlite"
    selfmigrate.migrate(template, str(migrations))
    copies: list[float] = []
    backups: list[float] = []
    for i in range(count):
        target = work / f"copy{i}.sqlite"
        t0 = time.perf_counter()
        shutil.copyfile(template, target)
        copies.append(time.perf_counter() - t0)
        os.remove(target)
        t0 = time.perf_counter()
        source, dest = sqlite3.connect(template), sqlite3.connect(target)
        source.backup(dest)
        dest.close()
        source.close()
        backups.append(time.perf_counter() - t0)
        os.remove(target)
    return statistics.median(copies) * 1e6, statistics.median(backups) * 1e6, template.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--migrations", type=int, default=100, help="migrations in the project (default 100)")
    parser.add_argument("--tests", type=int, default=500, help="tests in the suite (default 500)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the plugin and baseline suites (default 5)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="selfmigrate-bench-") as tmp:
        root = Path(tmp)
        migrations = root / "migrations"
        write_migrations(migrations, args.migrations)
        suites = {name: write_suite(root, name, migrations, args.tests) for name in ("plugin", "naive", "baseline")}
        copy_us, backup_us, size = time_copies(migrations, root)

        times: dict[str, list[float]] = {"plugin": [], "baseline": []}
        for _ in range(args.repeat):
            for name in times:
                times[name].append(run_suite(suites[name], args.tests))
        naive = run_suite(suites["naive"], args.tests)

    plugin = statistics.median(times["plugin"])
    baseline = statistics.median(times["baseline"])
    speedup = naive / plugin
    overhead_ms = (plugin - baseline) / args.tests * 1000
    print(f"{args.migrations} migrations, {args.tests} tests; wall time of a whole pytest process")
    print(f"  baseline (sqlite3 :memory:)   median {baseline:7.3f} s  (runs: {_list(times['baseline'])})")
    print(f"  plugin (migrated_db)          median {plugin:7.3f} s  (runs: {_list(times['plugin'])})")
    print(f"  naive (migrate in each test)         {naive:7.3f} s")
    print(f"naive / plugin: {speedup:.1f}x (target >= {SPEEDUP_TARGET:g}x)")
    print(
        f"migrated_db overhead per test, template build included: {overhead_ms:.3f} ms"
        f" (target <= {OVERHEAD_TARGET_MS:g} ms)"
    )
    print(
        f"copying the {size // 1024} KiB template: file copy {copy_us:.0f} us,"
        f" sqlite3 backup API {backup_us:.0f} us (median of 200)"
    )
    missed = speedup < SPEEDUP_TARGET or overhead_ms > OVERHEAD_TARGET_MS
    if missed:
        print("TARGET MISSED (on a loaded machine, run again before concluding)")
    return 1 if missed else 0


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
