"""The pytest plugin on PostgreSQL, through real inner pytest runs (pytester) against the server.

Each test writes a small project whose ``selfmigrate_database`` ini option names the
test server, runs pytest on it (in a subprocess for xdist), and reads what the inner
run left: a counter file the Python migration appends to (how often the migrations
ran), a stats file the inner conftest writes at the end of each process (templates
built, ``CREATE DATABASE … TEMPLATE`` clones), and the server's list of databases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import typing as t
import uuid
from pathlib import Path

import psycopg
import pytest

pytest_plugins = ["pytester"]

COUNTER = "SELFMIGRATE_PLUGIN_TEST_COUNTER"
STATS = "SELFMIGRATE_PLUGIN_TEST_STATS"

MIGRATIONS = {
    "0001_item.sql": "CREATE TABLE item (id SERIAL PRIMARY KEY, name TEXT NOT NULL);\n",
    "0002_price.sql": "ALTER TABLE item ADD COLUMN price INTEGER;\nCREATE INDEX item_price ON item (price);\n",
    "0003_audit.py": textwrap.dedent(f"""\
        import os


        def up(conn):
            with open(os.environ["{COUNTER}"], "a") as f:
                f.write("ran\\n")
            conn.execute("CREATE TABLE audit (id SERIAL PRIMARY KEY, what TEXT)")
        """),
}

CONFTEST = f"""\
import json
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _stats(_selfmigrate_templates):
    yield
    pg = _selfmigrate_templates.postgres
    with open(os.environ["{STATS}"], "a") as f:
        f.write(json.dumps({{"built": pg.built, "cloned": pg.cloned, "dirty": pg.dirty, "run": pg.run}}) + "\\n")
"""

# Each test writes a row and checks it sees only its own: a write seen by a later test fails it.
ISOLATION = """\
import psycopg
import pytest


@pytest.mark.parametrize("n", range({count}))
def test_connection(migrated_db, n):
    assert isinstance(migrated_db, psycopg.Connection)
    assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (0,)
    migrated_db.execute("INSERT INTO item (name, price) VALUES (%s, %s)", (f"c{{n}}", n))
    assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (1,)


@pytest.mark.parametrize("n", range({count}))
def test_url(migrated_db_path, n):
    assert isinstance(migrated_db_path, str) and migrated_db_path.startswith("postgresql://")
    with psycopg.connect(migrated_db_path) as conn:  # commits at the end of the block
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (0,)
        conn.execute("INSERT INTO item (name) VALUES ('u')")
    with psycopg.connect(migrated_db_path) as conn:
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (1,)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project on the test server: migrations, pytest.ini with selfmigrate_database, the stats conftest."""
    monkeypatch.setenv(COUNTER, str(tmp_path / "counter.txt"))
    monkeypatch.setenv(STATS, str(tmp_path / "stats.jsonl"))
    monkeypatch.delenv("SELFMIGRATE_TEST_DATABASE", raising=False)
    folder = pytester.path / "migrations"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(text)
    pytester.makeini(f"[pytest]\nselfmigrate_migrations = migrations\nselfmigrate_database = {pg_server}\n")
    pytester.makeconftest(CONFTEST)
    return tmp_path


def runs(tmp_path: Path) -> int:
    """How many times the counting migration ran (once per template built)."""
    path = tmp_path / "counter.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def stats(tmp_path: Path) -> list[dict[str, t.Any]]:
    """What each process of the inner run counted."""
    return [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]


def databases(server: str, run: str) -> list[str]:
    """The databases of an inner run left on the server."""
    with psycopg.connect(server, autocommit=True) as conn:
        return [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"sm\\_%\\_{run}\\_%",))
        ]


def run_subprocess(pytester: pytest.Pytester, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_each_test_sees_only_its_own_writes_and_the_template_is_built_once(
    pytester: pytest.Pytester, inner: Path, pg_server: str
) -> None:
    pytester.makepyfile(test_inner=ISOLATION.format(count=3))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    assert runs(inner) == 1  # the migrations ran once, into the template
    [counts] = stats(inner)
    # One clone for the connection tests' database, one per URL test; no rebuild.
    assert counts == {"built": 1, "cloned": 1 + 3, "dirty": 0, "run": counts["run"]}
    assert databases(pg_server, counts["run"]) == []  # all dropped at the end of the session


def test_xdist_workers_share_one_template_and_each_has_its_own_database(
    pytester: pytest.Pytester, inner: Path, pg_server: str
) -> None:
    pytester.makepyfile(test_inner=ISOLATION.format(count=6))
    result = run_subprocess(pytester, "-p", "xdist", "-n", "2", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 passed" in result.stdout
    assert runs(inner) == 1  # built once for both workers, under the advisory lock
    per_worker = stats(inner)
    assert len(per_worker) == 2 and len({s["run"] for s in per_worker}) == 1
    assert sum(s["built"] for s in per_worker) == 1
    # Each worker that ran a connection test cloned its own database once; URL tests one each.
    assert sum(s["cloned"] for s in per_worker) <= 2 + 6
    assert databases(pg_server, per_worker[0]["run"]) == []


def test_a_test_that_commits_in_sql_does_not_leak_into_the_next(pytester: pytest.Pytester, inner: Path) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest
        from psycopg import ProgrammingError

        def test_1_commit_refused(migrated_db):
            migrated_db.execute("INSERT INTO item (name) VALUES ('a')")
            with pytest.raises(ProgrammingError):
                migrated_db.commit()

        def test_2_sql_commit(migrated_db):
            assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (0,)
            migrated_db.execute("INSERT INTO item (name) VALUES ('b')")
            migrated_db.execute("COMMIT")

        def test_3_fresh_again(migrated_db):
            assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (0,)
            migrated_db.execute("SET search_path = nowhere")

        def test_4_settings_rolled_back(migrated_db):
            assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (0,)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    [counts] = stats(inner)
    assert counts["dirty"] == 1 and counts["cloned"] == 2 and counts["built"] == 1


def test_migrate_to_and_the_factory_on_postgres(pytester: pytest.Pytester, inner: Path) -> None:
    pytester.makepyfile(
        test_inner="""
        import psycopg
        import pytest

        def columns(conn):
            return [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'item' ORDER BY 1")]

        @pytest.mark.migrate_to(1)
        def test_up_to_1(migrated_db):
            assert columns(migrated_db) == ["id", "name"]

        def test_factory(migrated_db_factory):
            a, b = migrated_db_factory(), migrated_db_factory(to=2)
            assert a != b
            with psycopg.connect(a) as conn:
                assert "price" in columns(conn)
                assert conn.execute("SELECT to_regclass('audit')").fetchone() != (None,)
            with psycopg.connect(b) as conn:
                assert conn.execute("SELECT to_regclass('audit')").fetchone() == (None,)

        def test_both(migrated_db, migrated_db_path):
            assert migrated_db.info.dbname == psycopg.conninfo.conninfo_to_dict(migrated_db_path)["dbname"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    [counts] = stats(inner)
    assert counts["built"] == 3  # up to 1, up to 2, all


def test_a_failing_migration_fails_the_tests_once_and_leaves_no_database(
    pytester: pytest.Pytester, inner: Path, pg_server: str
) -> None:
    (pytester.path / "migrations" / "0004_bad.sql").write_text("CREATE TABLE item (id INTEGER);\n")
    pytester.makepyfile(test_inner="def test_a(migrated_db):\n    pass\n\ndef test_b(migrated_db):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*selfmigrate could not migrate a test database from*", "*0004*"])
    assert runs(inner) == 1  # not migrated again for the second test
    [counts] = stats(inner)
    assert databases(pg_server, counts["run"]) == []


def test_stale_databases_of_dead_runs_are_dropped_and_others_kept(
    pytester: pytest.Pytester, inner: Path, pg_server: str
) -> None:
    from selfmigrate.testing.pg_templates import lock_key

    dead, live = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    names = {
        "dead": f"sm_tmpl_{dead}_0123456789abcdef",
        "dead_test": f"sm_test_{dead}_gw1_000003",
        "live": f"sm_test_{live}_main_000000",
        "foreign": f"sm_test_{uuid.uuid4().hex[:12]}",  # tests/postgres's own pg_url form
    }
    with psycopg.connect(pg_server, autocommit=True) as admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            # A live session of run `live` holds its shared lock, as the plugin's processes do.
            admin.execute("SELECT pg_advisory_lock_shared(%s)", (lock_key(f"run {live}"),))
            pytester.makepyfile(test_inner="def test_a(migrated_db):\n    pass\n")
            pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
            left = {r[0] for r in admin.execute("SELECT datname FROM pg_database")}
            assert names["dead"] not in left and names["dead_test"] not in left
            assert names["live"] in left and names["foreign"] in left
        finally:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_crashed_run_leaves_databases_the_next_run_drops(
    pytester: pytest.Pytester, inner: Path, pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both runs inherit the same xdist variables (as runs started inside an xdist worker
    # do): they must still be two runs.
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "f" * 32)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    pytester.makepyfile(
        test_inner=f"""
        import os

        def test_crash(migrated_db, migrated_db_factory):
            with open(os.environ["{STATS}"], "w") as f:
                f.write(migrated_db_factory())
            os._exit(3)
        """
    )
    crashed = run_subprocess(pytester)
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr
    run = (inner / "stats.jsonl").read_text().rpartition("/")[2].split("_")[2]
    (inner / "stats.jsonl").unlink()
    left = databases(pg_server, run)
    assert len(left) == 3  # the template, the worker's clone, the factory's
    pytester.makepyfile(test_inner="def test_a(migrated_db):\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        now = {r[0] for r in admin.execute("SELECT datname FROM pg_database")}
    assert not now & set(left)


def test_the_environment_variable_wins_and_a_bad_url_is_named(
    pytester: pytest.Pytester, inner: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner="def test_a(migrated_db):\n    pass\n")
    monkeypatch.setenv("SELFMIGRATE_TEST_DATABASE", "mysql://x@127.0.0.1/db")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*must be a PostgreSQL server URL*mysql://x@127.0.0.1/db*"])
    monkeypatch.setenv("SELFMIGRATE_TEST_DATABASE", "postgresql://postgres:secret@127.0.0.1:1/postgres")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot reach the PostgreSQL server*postgres:***@127.0.0.1:1*"])
    assert "secret" not in result.stdout.str()
