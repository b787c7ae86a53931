"""The pytest plugin and the project's settings; the import-path case explained once.

Inner pytest runs (pytester) in temporary projects with a pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT);\n"
TAGS = "CREATE TABLE tags (name TEXT PRIMARY KEY);\n"

USES_DB = """
def test_items(migrated_db):
    tables = {r[0] for r in migrated_db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "items" in tables
    print("TRACKER", sorted(t for t in tables if t in ("schema_migrations", "app_versions", "env_table")))
    print("TAGS", "tags" in tables)
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SELFMIGRATE_MIGRATIONS", "SELFMIGRATE_TABLE"):
        monkeypatch.delenv(name, raising=False)


def write(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def test_the_tool_selfmigrate_table_is_enough(pytester: pytest.Pytester) -> None:
    write(
        pytester,
        {
            "pyproject.toml": '[tool.selfmigrate]\nmigrations = "db/migrations"\ntable = "app_versions"\n',
            "db/migrations/0001_items.sql": ITEMS,
            "tests/test_x.py": USES_DB,
        },
    )
    result = pytester.runpytest_inprocess("-s", "tests")
    result.assert_outcomes(passed=1)
    assert "TRACKER ['app_versions']\nTAGS False" in result.stdout.str()


def test_the_ini_option_wins_over_the_table_and_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        pytester,
        {
            "pyproject.toml": """
                [tool.pytest.ini_options]
                selfmigrate_migrations = ["tests_migrations"]

                [tool.selfmigrate]
                migrations = "db/migrations"
            """,
            "db/migrations/0001_items.sql": ITEMS,
            "tests_migrations/0001_items.sql": ITEMS,
            "tests_migrations/0002_tags.sql": TAGS,
            "test_x.py": USES_DB,
        },
    )
    monkeypatch.setenv("SELFMIGRATE_TABLE", "env_table")
    result = pytester.runpytest_inprocess("-s")
    result.assert_outcomes(passed=1)
    assert "TRACKER ['env_table']\nTAGS True" in result.stdout.str()


def test_a_broken_table_fails_the_test_that_needs_it_in_one_line(pytester: pytest.Pytester) -> None:
    write(pytester, {"pyproject.toml": "[tool.selfmigrate]\nmigrations = 3\n", "test_x.py": USES_DB})
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*selfmigrate: *pyproject.toml: [[]tool.selfmigrate] migrations is 3; it takes*"])


def test_an_unimportable_package_is_explained_once(pytester: pytest.Pytester) -> None:
    write(
        pytester,
        {
            "pyproject.toml": '[tool.pytest.ini_options]\nselfmigrate_migrations = ["app.migrations"]\n',
            "app/__init__.py": "",
            "app/migrations/__init__.py": "",
            "app/migrations/0001_items.sql": ITEMS,
            "tests/test_x.py": USES_DB + "\n\ndef test_path(migrated_db_path):\n    pass\n",
        },
    )
    # Plain "pytest" (not "python -m pytest", which pytester runs, nor with pytester's
    # PYTHONPATH): the project folder is not on sys.path.
    executable = shutil.which("pytest", path=str(Path(sys.executable).parent))
    assert executable is not None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [executable, "tests", "-p", "no:cacheprovider", f"--basetemp={pytester.path.parent / 'inner-basetemp'}"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = done.stdout
    assert "2 errors" in text, text
    # Once per test in the error reports. The short summary repeats each error's first
    # line (in full where CI is set: pytest does not truncate it there), so it is left out.
    reports = text.partition("short test summary info")[0]
    assert reports.count("The package app.migrations cannot be imported") == 2, text
    assert "During handling of the above exception" not in text
    assert 'Give a package name ("myapp.migrations")' not in text
    assert 'pythonpath = ["."]' in text and "testing-import-path" in text
    assert 'selfmigrate_migrations = ["app/migrations"]' in text
