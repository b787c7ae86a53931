"""The pytest plugin on PostgreSQL: per-test overhead at 100 migrations, against migrating per test.

Run it from the project root, with a server (the tests' one by default)::

    .venv/bin/python benchmarks/pytest_plugin_postgres.py [--server postgresql://postgres@127.0.0.1:5432/postgres]

In one run it writes 100 migrations (a table and an index each) and times, on the
server, with the plugin's own :class:`~selfmigrate.testing.pg_templates.PostgresTemplates`:

* ``rollback``: what ``migrated_db`` does per test: a transaction on the worker's
  migrated database (cloned once), rolled back after the test;
* ``template``: what ``migrated_db_path`` does per test: ``CREATE DATABASE …
  TEMPLATE`` from the session's template, a connection, ``DROP DATABASE``;
* ``naive``: migrating a new database per test: ``CREATE DATABASE``, the 100
  migrations with :func:`selfmigrate.migrate`, a connection, ``DROP DATABASE``.

Then it runs a real pytest suite (``--tests`` tests reading the database through
``migrated_db``, and the same suite with a fixture that only connects to an existing
database) and prints the per-test difference, the one-time template build included.

Targets: ``rollback`` at most 20 ms per test and at least 10 times faster than
``naive``. Figures depend on the machine and its load (the server's ``fsync``
above all, which ``CREATE DATABASE`` waits for); it exits non-zero when a target is missed.
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
import typing as t
import uuid
from pathlib import Path

import psycopg

import selfmigrate
from selfmigrate.testing.pg_templates import PostgresTemplates
from selfmigrate.testing.templates import TemplateCache

DEFAULT_SERVER = os.environ.get("SELFMIGRATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def write_migrations(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        (folder / f"{i:04d}_t{i}.sql").write_text(
            f"CREATE TABLE t{i} (id SERIAL PRIMARY KEY, name TEXT NOT NULL, v INTEGER);\n"
            f"CREATE INDEX t{i}_name ON t{i} (name);\n"
        )
    return folder


def timed(fn: t.Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def suite(folder: Path, migrations: Path, server: str, tests: int, fixture: str) -> float:
    """Wall time (ms) of a real pytest run of ``tests`` tests through ``fixture``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text(
        f"[pytest]\nselfmigrate_migrations = {migrations}\nselfmigrate_database = {server}\n"
    )
    (folder / "conftest.py").write_text(
        textwrap.dedent(f"""\
        import psycopg
        import pytest

        @pytest.fixture(scope="session")
        def _conn():
            with psycopg.connect({server!r}) as conn:
                yield conn

        @pytest.fixture
        def plain_db(_conn):
            with _conn.transaction(force_rollback=True):
                yield _conn
        """)
    )
    (folder / "test_suite.py").write_text(
        textwrap.dedent(f"""\
        import pytest

        @pytest.mark.parametrize("n", range({tests}))
        def test_read(n, {fixture}):
            assert {fixture}.execute("SELECT 1").fetchone() == (1,)
        """)
    )
    t0 = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=folder, capture_output=True, text=True
    )
    elapsed = (time.perf_counter() - t0) * 1000
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (CREATEDB needed)")
    parser.add_argument("--migrations", type=int, default=100, help="migrations (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="samples of template and naive (default 5)")
    parser.add_argument("--tests", type=int, default=200, help="tests in the pytest suite (default 200)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        migrations = write_migrations(base / "migrations", args.migrations)
        cache = TemplateCache(base, base)
        pg = PostgresTemplates(args.server, worker="bench")
        try:
            t0 = time.perf_counter()
            registry, key = cache.keyed([str(migrations)], target=None, table="schema_migrations")
            template = pg.template(registry, key, target=None, table="schema_migrations")
            build = (time.perf_counter() - t0) * 1000
            with pg.rolled_back(template):
                pass  # the worker's clone, once

            def rollback() -> None:
                with pg.rolled_back(template) as conn:
                    conn.execute("SELECT count(*) FROM t1").fetchone()

            def clone() -> None:
                url = pg.new_database(template)
                with psycopg.connect(url) as conn:
                    conn.execute("SELECT count(*) FROM t1").fetchone()
                pg.drop_url(url)

            def naive() -> None:
                name = f"sm_test_{pg.run}_bench_naive_{uuid.uuid4().hex[:8]}"
                pg.admin().execute(f'CREATE DATABASE "{name}"')
                url = pg.url(name)
                selfmigrate.migrate(url, str(migrations), backup=False)
                with psycopg.connect(url) as conn:
                    conn.execute("SELECT count(*) FROM t1").fetchone()
                pg.drop(name)

            rollback_ms = statistics.median(timed(rollback, 200))
            clone_ms = statistics.median(timed(clone, args.repeat))
            naive_ms = statistics.median(timed(naive, args.repeat))
        finally:
            pg.close()
        plugin_run = suite(base / "suite_plugin", migrations, args.server, args.tests, "migrated_db")
        plain_run = suite(base / "suite_plain", migrations, args.server, args.tests, "plain_db")

    suite_overhead = (plugin_run - plain_run) / args.tests
    print(f"server {args.server}, {args.migrations} migrations")
    print(f"template build (once per run): {build:9.1f} ms")
    print(f"rollback  (migrated_db, per test):      {rollback_ms:9.2f} ms")
    print(f"template  (migrated_db_path, per test): {clone_ms:9.1f} ms")
    print(f"naive     (migrate per test):           {naive_ms:9.1f} ms")
    print(f"naive / rollback: {naive_ms / rollback_ms:8.0f}x   naive / template: {naive_ms / clone_ms:5.1f}x")
    print(
        f"pytest suite of {args.tests}: migrated_db {plugin_run:.0f} ms, plain connection {plain_run:.0f} ms:"
        f" {suite_overhead:.2f} ms per test (template build included)"
    )
    ok = rollback_ms <= 20 and naive_ms / rollback_ms >= 10
    print("targets (rollback <= 20 ms, >= 10x naive):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
