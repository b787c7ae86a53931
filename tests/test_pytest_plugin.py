"""The pytest plugin, through real inner pytest runs (pytester).

Each test writes a small project (migrations, ini file, test modules) into
``pytester.path`` and runs pytest on it, in process where isolation does not
matter and in a subprocess where it does (xdist, imports, files left behind).
A Python migration that appends a line to a counter file shows how often the
migrations really ran.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

import selfmigrate

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

pytest_plugins = ["pytester"]

COUNTER = "SELFMIGRATE_PLUGIN_TEST_COUNTER"

ITEM = """\
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
-- migrate:down
DROP TABLE item;
"""
PRICE = """\
ALTER TABLE item ADD COLUMN price INTEGER;
CREATE INDEX item_price ON item (price);
-- migrate:down
DROP INDEX item_price;
ALTER TABLE item DROP COLUMN price;
"""
COUNTED = f"""\
import os


def up(conn):
    with open(os.environ["{COUNTER}"], "a") as f:
        f.write("ran\\n")
    conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)")


def down(conn):
    conn.execute("DROP TABLE audit")
"""
MIGRATIONS = {"0001_item.sql": ITEM, "0002_price.sql": PRICE, "0003_audit.py": COUNTED}


@pytest.fixture
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the counting migration appends to (inner runs inherit the variable)."""
    path = tmp_path / "counter.txt"
    monkeypatch.setenv(COUNTER, str(path))
    return path


def runs(counter: Path) -> int:
    """How many times the counting migration ran."""
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def project(pytester: pytest.Pytester, files: dict[str, str] | None = None, ini: str | None = "migrations") -> Path:
    """Write ``migrations/`` and, unless ``ini`` is None, a pytest.ini pointing at it."""
    folder = write_migrations(pytester.path / "migrations", MIGRATIONS if files is None else files)
    if ini is not None:
        pytester.makeini(f"[pytest]\nselfmigrate_migrations = {ini}\n")
    return folder


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


# --- the fixtures ----------------------------------------------------------


def test_each_test_gets_a_private_fully_migrated_database(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    pytester.makepyfile(
        """
        import sqlite3

        import pytest

        import selfmigrate

        SEEN = []

        def test_first(migrated_db):
            SEEN.append(migrated_db)
            migrated_db.execute("INSERT INTO item (name, price) VALUES ('pen', 3)")
            migrated_db.commit()
            assert migrated_db.execute("SELECT name, price FROM item").fetchall() == [("pen", 3)]

        def test_second_sees_none_of_the_first(migrated_db):
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                SEEN[0].execute("SELECT 1")
            assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (0,)
            assert migrated_db.execute("SELECT count(*) FROM audit").fetchone() == (0,)

        def test_nothing_pending_for_the_app(migrated_db_path):
            report = selfmigrate.migrate(migrated_db_path, "migrations")
            assert report.applied == [] and report.current_version == 3

        def test_both_fixtures_share_one_database(migrated_db, migrated_db_path):
            migrated_db.execute("INSERT INTO item (name) VALUES ('cup')")
            migrated_db.commit()
            other = sqlite3.connect(migrated_db_path)
            assert other.execute("SELECT name FROM item").fetchall() == [("cup",)]
            other.close()

        @pytest.fixture
        def app_database(migrated_db_path):
            return migrated_db_path

        def test_also_when_the_path_is_asked_for_by_another_fixture(migrated_db, app_database):
            migrated_db.execute("INSERT INTO item (name) VALUES ('mug')")
            migrated_db.commit()
            other = sqlite3.connect(app_database)
            assert other.execute("SELECT name FROM item").fetchall() == [("mug",)]
            other.close()

        def test_the_database_grows(migrated_db):
            rows = [(f"item {i}" * 20,) for i in range(5000)]
            migrated_db.executemany("INSERT INTO item (name) VALUES (?)", rows)
            migrated_db.commit()
            assert migrated_db.execute("SELECT count(*) FROM item").fetchone() == (5000,)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=6)
    # Six tests, six databases, one migration run: the template was copied.
    assert runs(counter) == 1


def test_a_failing_test_still_fails(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    pytester.makepyfile(
        """
        def test_wrong_schema(migrated_db):
            assert "colour" in [row[1] for row in migrated_db.execute("PRAGMA table_info(item)")]

        def test_right_schema(migrated_db):
            assert "price" in [row[1] for row in migrated_db.execute("PRAGMA table_info(item)")]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E  *AssertionError: assert 'colour' in *'id', 'name', 'price'*"])


def test_databases_are_closed_and_removed_after_the_test(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    seen = pytester.path / "seen.txt"
    pytester.makepyfile(
        f"""
        def test_remember(migrated_db, migrated_db_path, migrated_db_factory):
            extra = migrated_db_factory()
            with open({str(seen)!r}, "w") as f:
                f.write(str(migrated_db_path) + "\\n" + str(extra))
            assert migrated_db_path.is_file() and extra.is_file() and extra != migrated_db_path
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    paths = [Path(line) for line in seen.read_text().splitlines()]
    assert len(paths) == 2
    assert not any(path.exists() for path in paths)


def test_tracker_table_from_the_ini_option(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester, ini=None)
    pytester.makeini("[pytest]\nselfmigrate_migrations = migrations\nselfmigrate_table = app_migrations\n")
    pytester.makepyfile(
        """
        import selfmigrate

        def test_table(migrated_db, migrated_db_path):
            names = {r[0] for r in migrated_db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert "app_migrations" in names and "schema_migrations" not in names
            assert selfmigrate.migrate(migrated_db_path, "migrations", table="app_migrations").applied == []
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


# --- where the migrations come from ----------------------------------------


def test_without_a_migrations_setting_the_error_says_what_to_set(pytester: pytest.Pytester) -> None:
    project(pytester, ini=None)
    pytester.makepyfile("def test_needs_db(migrated_db):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*selfmigrate does not know where the migrations are*selfmigrate_migrations*"])


def test_pyproject_option_with_a_package_and_a_directory(pytester: pytest.Pytester, counter: Path) -> None:
    package = pytester.path / "shop" / "migrations"
    write_migrations(package, {"__init__.py": "", "0001_item.sql": ITEM})
    (pytester.path / "shop" / "__init__.py").write_text("")
    write_migrations(pytester.path / "extra", {"0002_price.sql": PRICE})
    pytester.syspathinsert()
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nselfmigrate_migrations = ["shop.migrations", "extra"]\n')
    pytester.makepyfile(
        """
        def test_merged(migrated_db):
            assert [r[1] for r in migrated_db.execute("PRAGMA table_info(item)")] == ["id", "name", "price"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_conftest_fixture_overrides_the_ini_option_for_its_folder(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    other = pytester.path / "legacy"
    write_migrations(other / "migrations", {"0001_old.sql": "CREATE TABLE old_thing (id INTEGER PRIMARY KEY);\n"})
    (other / "conftest.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            import pytest

            @pytest.fixture(scope="session")
            def selfmigrate_migrations():
                return Path(__file__).parent / "migrations"
            """
        )
    )
    (other / "test_legacy.py").write_text(
        "def test_legacy(migrated_db):\n"
        "    tables = {r[0] for r in migrated_db.execute(\"SELECT name FROM sqlite_master WHERE type='table'\")}\n"
        "    assert 'old_thing' in tables and 'item' not in tables\n"
    )
    pytester.makepyfile(
        test_root_folder="""
        def test_root(migrated_db):
            tables = {r[0] for r in migrated_db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            assert 'item' in tables and 'old_thing' not in tables
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_factory_makes_several_databases_from_other_sources(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    write_migrations(pytester.path / "reports", {"0001_report.sql": "CREATE TABLE report (id INTEGER PRIMARY KEY);\n"})
    pytester.makepyfile(
        """
        import sqlite3

        def tables(path):
            conn = sqlite3.connect(path)
            try:
                return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                conn.close()

        def test_factory(migrated_db_factory):
            a, b = migrated_db_factory(), migrated_db_factory()
            assert a != b and tables(a) == tables(b)
            assert "audit" in tables(a)
            assert "audit" not in tables(migrated_db_factory(to=2))
            own = {"schema_migrations", "schema_migrations_fingerprint", "schema_migrations_layout",
                   "schema_migrations_rollback"}
            assert tables(migrated_db_factory("reports")) == {"report"} | own
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


# --- the marker ----------------------------------------------------------------


def test_migrate_to_marker_for_testing_a_data_migration(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        {
            "0001_item.sql": ITEM,
            "0002_slug.py": """\
                def up(conn):
                    conn.execute("ALTER TABLE item ADD COLUMN slug TEXT")
                    conn.execute("UPDATE item SET slug = lower(replace(name, ' ', '-'))")
                """,
        },
    )
    pytester.makepyfile(
        """
        import pytest
        import selfmigrate

        @pytest.mark.migrate_to(1)
        def test_slugs_are_filled_in(migrated_db, migrated_db_path):
            assert [r[1] for r in migrated_db.execute("PRAGMA table_info(item)")] == ["id", "name"]
            migrated_db.execute("INSERT INTO item (name) VALUES ('Blue Pen')")
            migrated_db.commit()
            report = selfmigrate.migrate(migrated_db_path, "migrations", target=2)
            assert [r.version for r in report.applied] == [2]
            assert migrated_db.execute("SELECT name, slug FROM item").fetchall() == [("Blue Pen", "blue-pen")]

        @pytest.mark.migrate_to(1)
        def test_marked_connection_alone(migrated_db):
            assert [r[1] for r in migrated_db.execute("PRAGMA table_info(item)")] == ["id", "name"]

        def test_unmarked_is_at_head(migrated_db):
            assert [r[1] for r in migrated_db.execute("PRAGMA table_info(item)")] == ["id", "name", "slug"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_migrate_to_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*migrate_to(version)*migrated only up to this version*"])
    pytester.makepyfile("import pytest\n\n@pytest.mark.migrate_to(1)\ndef test_x():\n    pass\n")
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_bad_migrate_to_markers_are_clear_errors(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.migrate_to("2")
        def test_string(migrated_db):
            pass

        @pytest.mark.migrate_to(7)
        def test_unknown_version(migrated_db):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_string: @pytest.mark.migrate_to takes one version number*got migrate_to('2')*",
            "*could not migrate a test database from *migrations up to version 7*",
            "*Target version 7 is not the version of any migration file*",
        ]
    )


# --- templates: once per session, never stale ---------------------------------


def test_a_broken_migration_is_reported_once_per_test_and_migrated_once(
    pytester: pytest.Pytester, counter: Path
) -> None:
    project(
        pytester,
        {
            "0001_item.sql": ITEM,
            "0002_audit.py": COUNTED,
            "0003_broken.sql": "INSERT INTO item (name) VALUES ('a');\nINSERT INTO nowhere VALUES (1);\n",
        },
    )
    pytester.makepyfile("def test_a(migrated_db):\n    pass\n\ndef test_b(migrated_db_path):\n    pass\n")
    basetemp = pytester.path / "bt"
    result = pytester.runpytest(f"--basetemp={basetemp}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*0003_broken.sql, line 2", "*statement: INSERT INTO nowhere VALUES (1);", "*error: *no such table: nowhere"]
    )
    assert runs(counter) == 1  # the failure was remembered, not retried per test
    assert list((basetemp / "selfmigrate-templates").iterdir()) == []  # no half-built template left


def test_a_migration_changed_during_the_session_gets_a_new_template(pytester: pytest.Pytester, counter: Path) -> None:
    folder = project(pytester)
    price = folder / "0002_price.sql"
    pytester.makepyfile(
        test_edit_first=f"""
        def cols(conn):
            return [r[1] for r in conn.execute("PRAGMA table_info(item)")]

        def test_1_before_the_edit(migrated_db):
            assert cols(migrated_db) == ["id", "name", "price"]

        def test_2_still_the_same(migrated_db):
            assert cols(migrated_db) == ["id", "name", "price"]

        def test_3_add_a_file(migrated_db):
            with open({str(folder / "0004_stock.sql")!r}, "w") as f:
                f.write("ALTER TABLE item ADD COLUMN stock INTEGER;\\n")

        def test_4_seen_by_the_next_test(migrated_db):
            assert cols(migrated_db) == ["id", "name", "price", "stock"]

        def test_5_edit_in_place(migrated_db):
            with open({str(price)!r}, "w") as f:
                f.write("ALTER TABLE item ADD COLUMN cost INTEGER;\\n")
        """,
        test_edit_second="""
        def test_6_seen_from_the_next_module_on(migrated_db):
            assert [r[1] for r in migrated_db.execute("PRAGMA table_info(item)")] == ["id", "name", "cost", "stock"]
        """,
    )
    basetemp = pytester.path / "bt"
    pytester.runpytest("-p", "no:randomly", f"--basetemp={basetemp}").assert_outcomes(passed=6)
    assert runs(counter) == 3
    assert len(list((basetemp / "selfmigrate-templates").glob("*.sqlite"))) == 3


def test_a_migration_edited_between_runs_is_never_served_stale(pytester: pytest.Pytester, counter: Path) -> None:
    folder = project(pytester)
    pytester.makepyfile(
        """
        import os

        def test_columns(migrated_db):
            cols = [r[1] for r in migrated_db.execute("PRAGMA table_info(item)")]
            assert cols == ["id", "name", os.environ["EXPECTED_COLUMN"]]
        """
    )
    os.environ["EXPECTED_COLUMN"] = "price"
    try:
        pytester.runpytest().assert_outcomes(passed=1)
        (folder / "0002_price.sql").write_text("ALTER TABLE item ADD COLUMN cost INTEGER;\n")
        os.environ["EXPECTED_COLUMN"] = "cost"
        pytester.runpytest().assert_outcomes(passed=1)
    finally:
        del os.environ["EXPECTED_COLUMN"]


def test_under_xdist_every_worker_gets_correct_private_databases(pytester: pytest.Pytester, counter: Path) -> None:
    pytest.importorskip("xdist")
    project(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_private(migrated_db, n):
            migrated_db.execute("INSERT INTO item (name) VALUES (?)", (f"item {n}",))
            migrated_db.commit()
            assert migrated_db.execute("SELECT name FROM item").fetchall() == [(f"item {n}",)]
        """
    )
    basetemp = pytester.path / "bt"
    result = pytester.runpytest_subprocess("-n", "2", f"--basetemp={basetemp}")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["*2 workers*"])
    templates = basetemp / "selfmigrate-templates"
    assert [p.suffix for p in templates.iterdir()] == [".sqlite"]  # one template, no partial file
    assert 1 <= runs(counter) <= 2  # at most once per worker


# --- harmless when unused -------------------------------------------------------


def test_importing_the_plugin_imports_no_flask_and_no_machinery() -> None:
    code = (
        "import sys, selfmigrate.testing.plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flask'"
        " or m in ('selfmigrate.testing.templates', 'selfmigrate.core.runner', 'sqlite3')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unused_plugin_does_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    before = sorted(p.name for p in pytester.path.iterdir())
    basetemp = pytester.path.parent / "unused-basetemp"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1)
    # pytester itself keeps the inner run's output in stdout, stderr, runpytest-*;
    # Python caches the test module's bytecode unless PYTHONDONTWRITEBYTECODE is set.
    pytesters = {"stdout", "stderr", "__pycache__"}
    after = sorted(p.name for p in pytester.path.iterdir() if p.name not in pytesters and "runpytest-" not in p.name)
    assert after == before
    assert not basetemp.exists()  # no template, no database, not even the temp folder


def test_plugin_is_loaded_from_the_entry_point_and_can_be_disabled(pytester: pytest.Pytester) -> None:
    project(pytester)
    pytester.makepyfile("def test_needs_db(migrated_db):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:selfmigrate")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'migrated_db' not found*"])


# --- the migration checks -------------------------------------------------------

CHECKS = """
from selfmigrate.pytest_checks import (  # noqa: F401
    test_applied_migrations_unchanged,
    test_migration_versions_unique,
    test_migrations_apply_from_empty,
    test_migrations_round_trip,
)
"""


def test_checks_pass_on_good_migrations(pytester: pytest.Pytester, counter: Path) -> None:
    project(pytester)
    pytester.makepyfile(test_inner_checks=CHECKS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*no database to compare with: set the ini option selfmigrate_check_database*"])
    # apply from empty once, round trip: up, (down), up again for the one Python migration
    assert runs(counter) == 3


def test_round_trip_check_reports_a_down_that_forgets_something(pytester: pytest.Pytester, counter: Path) -> None:
    forgetful = PRICE.replace("DROP INDEX item_price;\n", "")
    forgetful = forgetful.replace("ALTER TABLE item DROP COLUMN price;", "SELECT 1;")
    project(pytester, {"0001_item.sql": ITEM, "0002_price.sql": forgetful, "0003_audit.py": COUNTED})
    pytester.makepyfile(test_inner_checks=CHECKS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*Migration 0002_price (*0002_price.sql): up then down does not give back the schema before it:",
            "*table item: columns should be (id INTEGER, name TEXT), are (id INTEGER, name TEXT, price INTEGER)",
            "*index item_price should not be there",
            "*Make its down undo exactly what its up does.",
        ]
    )


def test_round_trip_check_reports_a_failing_down(pytester: pytest.Pytester) -> None:
    broken_down = ITEM.replace("DROP TABLE item;", "DROP TABLE itme;")
    project(pytester, {"0001_item.sql": broken_down})
    pytester.makepyfile(test_inner_checks=CHECKS)
    result = pytester.runpytest("-k", "round_trip")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Migration 0001_item (*): its down failed.*", "*no such table: itme*"])


def test_duplicate_versions_check_names_both_files(pytester: pytest.Pytester) -> None:
    project(pytester, {"0001_item.sql": ITEM, "0002_a.sql": PRICE, "0002_b.sql": "SELECT 1;\n"})
    pytester.makepyfile(test_inner_checks=CHECKS)
    result = pytester.runpytest("-k", "unique")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*version 2: *0002_a.sql, *0002_b.sql*", "*Renumber the newer file*"])


def test_edited_check_compares_with_a_database_and_leaves_it_alone(pytester: pytest.Pytester, counter: Path) -> None:
    folder = project(pytester, ini=None)
    production = pytester.path / "production.sqlite"
    selfmigrate.migrate(production, str(folder))
    conn = sqlite3.connect(production)
    conn.execute("INSERT INTO item (name, price) VALUES ('kept', 1)")
    conn.commit()
    conn.close()
    pytester.makeini(
        "[pytest]\nselfmigrate_migrations = migrations\nselfmigrate_check_database = production.sqlite\n"
    )
    pytester.makepyfile(test_inner_checks=CHECKS)
    pytester.runpytest("-k", "unchanged").assert_outcomes(passed=1)

    (folder / "0002_price.sql").write_text(PRICE.replace("INTEGER", "REAL"))
    before = production.read_bytes()
    result = pytester.runpytest("-k", "unchanged")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*These migrations were edited after they were applied to *production.sqlite:", "*0002_price.sql (version 2*"]
    )
    assert production.read_bytes() == before  # read only: the data and history survived


# --- the checks as library functions ----------------------------------------------

REBUILT_DOWN = """\
ALTER TABLE item ADD COLUMN price INTEGER;
-- migrate:down
CREATE TABLE new_item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO new_item (id, name) SELECT id, name FROM item;
DROP TABLE item;
ALTER TABLE new_item RENAME TO item;
"""


def test_a_down_that_rebuilds_the_table_round_trips(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    from selfmigrate.testing.roundtrip import check_round_trips

    # SQLite stores the rebuilt table as CREATE TABLE "item" (...): not a difference.
    location = make_migrations(
        {
            "0001_item.sql": ITEM,
            "0002_price.sql": REBUILT_DOWN,
            "0003_note.py": """\
                def up(conn):
                    conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")
                """,
        },
        package=False,
    )
    report = check_round_trips(tmp_path / "rt.sqlite", location)
    assert report.ok, report.problem
    assert report.checked == ["0001_item", "0002_price"]
    assert report.without_down == ["0003_note"]


def test_schema_diff_names_each_difference() -> None:
    from selfmigrate.backends.sqlite.schema import schema
    from selfmigrate.testing.checks import Schema, schema_diff

    def of(sql: str) -> Schema:
        conn = sqlite3.connect(":memory:")
        conn.executescript(sql)
        try:
            return schema(conn)
        finally:
            conn.close()

    before = of("CREATE TABLE a (id INTEGER, x TEXT); CREATE INDEX a_x ON a (x); CREATE VIEW v AS SELECT 1;")
    after = of("CREATE TABLE a (id INTEGER); CREATE TABLE b (id); CREATE VIEW v AS SELECT 2;")
    assert schema_diff(before, after) == [
        "table a: columns should be (id INTEGER, x TEXT), are (id INTEGER)",
        "index a_x is missing",
        "table b should not be there",
        "view v: should be 'CREATE VIEW v AS SELECT 1', is 'CREATE VIEW v AS SELECT 2'",
    ]
