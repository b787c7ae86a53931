"""The pytest plugin against migrating from scratch in every test.

Run it from the project root::

    .venv/bin/python benchmarks/pytest_plugin.py

In one run it writes a project with 100 migrations (tables, added columns,
indexes, Python data migrations) into a temporary folder, and a suite of 500
tests that each read the database through a fixture. It then runs that suite in
fresh ``python -m pytest`` processes, four ways:

* ``plugin``: the fixture is ``migrated_db`` (an in-memory copy of a template
  migrated once per session);
* ``plugin_path``: the fixture is ``migrated_db_path`` (a file copy of the
  template), and each test connects to it;
* ``naive``: a conftest fixture that migrates a new database in ``tmp_path``
  with :func:`selfmigrate.migrate` for every test;
* ``baseline``: a conftest fixture that returns ``sqlite3.connect(":memory:")``
  — what the same suite costs with a database that needs no migrating.

``plugin``, ``plugin_path`` and ``baseline`` run several times, interleaved;
``naive`` (slow) once. It prints the median wall time of each, the ratio
naive / plugin (target: at least 20), and the per-test overhead of
``migrated_db`` over the baseline, the one-time template build included
(target: at most 1 ms), and that of ``migrated_db_path``. It also times the ways of copying the template: file copy,
writing bytes kept in memory, the sqlite3 backup API, and an in-memory copy.

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

TEST_BODY = """
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_reads_the_schema(n, {fixture}):
    assert {fixture}.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] >= 0
"""

PATH_TEST_BODY = """
import sqlite3

import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_reads_the_schema(n, migrated_db_path):
    conn = sqlite3.connect(migrated_db_path)
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] >= 0
    conn.close()
"""

NAIVE_CONFTEST = """
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
"""

BASELINE_CONFTEST = """
import sqlite3

import pytest


@pytest.fixture
def plain_db():
    conn = sqlite3.connect(":memory:")
    yield conn
    conn.close()
"""


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


FIXTURES = {"plugin": "migrated_db", "plugin_path": "migrated_db_path", "naive": "naive_db", "baseline": "plain_db"}


def write_suite(root: Path, name: str, migrations: Path, tests: int) -> Path:
    """Write one suite: its ini file, conftest and test module."""
    suite = root / name
    suite.mkdir()
    ini = "[pytest]\n"
    if name.startswith("plugin"):
        ini += f"selfmigrate_migrations = {migrations}\n"
    (suite / "pytest.ini").write_text(ini)
    conftest = {"naive": NAIVE_CONFTEST.format(migrations=str(migrations)), "baseline": BASELINE_CONFTEST}.get(name, "")
    (suite / "conftest.py").write_text(conftest)
    body = PATH_TEST_BODY if name == "plugin_path" else TEST_BODY
    (suite / "test_suite.py").write_text(body.format(tests=tests, fixture=FIXTURES[name]))
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


def time_copies(migrations: Path, work: Path, count: int = 200) -> tuple[dict[str, float], int]:
    """Median µs of each way of copying the migrated template (created and removed); its size."""
    import selfmigrate

    template = work / "template.sqlite"
    selfmigrate.migrate(template, str(migrations), backup=False)
    data = template.read_bytes()

    def copyfile(target: Path) -> None:
        shutil.copyfile(template, target)

    def write_bytes(target: Path) -> None:
        with open(target, "xb") as f:
            f.write(data)

    def backup(target: Path) -> None:
        source, dest = sqlite3.connect(template), sqlite3.connect(target)
        source.backup(dest)
        dest.close()
        source.close()

    def deserialize(target: Path) -> None:
        conn = sqlite3.connect(":memory:")
        conn.deserialize(data)
        conn.close()

    ways = {
        "file copy (shutil.copyfile)": copyfile,
        "bytes kept in memory, written out": write_bytes,
        "sqlite3 backup API": backup,
        "in-memory copy (Connection.deserialize)": deserialize,
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(count):
        for name, way in ways.items():
            target = work / f"copy{i}.sqlite"
            t0 = time.perf_counter()
            way(target)
            samples[name].append(time.perf_counter() - t0)
            if target.exists():
                os.remove(target)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}, len(data)


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
        suites = {name: write_suite(root, name, migrations, args.tests) for name in FIXTURES}
        copies, size = time_copies(migrations, root)

        times: dict[str, list[float]] = {"baseline": [], "plugin": [], "plugin_path": []}
        for _ in range(args.repeat):
            for name in times:
                times[name].append(run_suite(suites[name], args.tests))
        naive = run_suite(suites["naive"], args.tests)

    baseline = statistics.median(times["baseline"])
    plugin = statistics.median(times["plugin"])
    plugin_path = statistics.median(times["plugin_path"])
    speedup = naive / plugin
    overhead_ms = (plugin - baseline) / args.tests * 1000
    path_overhead_ms = (plugin_path - baseline) / args.tests * 1000
    print(f"{args.migrations} migrations, {args.tests} tests; wall time of a whole pytest process")
    print(f"  baseline (sqlite3 :memory:)      median {baseline:7.3f} s  (runs: {_list(times['baseline'])})")
    print(f"  plugin (migrated_db)             median {plugin:7.3f} s  (runs: {_list(times['plugin'])})")
    print(f"  plugin (migrated_db_path)        median {plugin_path:7.3f} s  (runs: {_list(times['plugin_path'])})")
    print(f"  naive (migrate in each test)            {naive:7.3f} s")
    print(f"naive / plugin (migrated_db): {speedup:.1f}x (target >= {SPEEDUP_TARGET:g}x)")
    print(
        f"migrated_db overhead per test over the baseline, template build included: {overhead_ms:.3f} ms"
        f" (target <= {OVERHEAD_TARGET_MS:g} ms)"
    )
    print(f"migrated_db_path overhead per test over the baseline (file copy, connect): {path_overhead_ms:.3f} ms")
    print(f"copying the {size // 1024} KiB template, median of 200:")
    for name, us in copies.items():
        print(f"  {name:42s} {us:8.0f} us")
    missed = speedup < SPEEDUP_TARGET or overhead_ms > OVERHEAD_TARGET_MS
    if missed:
        print("TARGET MISSED (on a loaded machine, run again before concluding)")
    return 1 if missed else 0


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
