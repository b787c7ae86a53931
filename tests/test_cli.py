"""The command line, through both faces: ``python -m selfmigrate`` and ``flask selfmigrate``.

Every test runs real commands against real SQLite files in ``tmp_path``; the
faces are click's :class:`~click.testing.CliRunner` on :data:`selfmigrate.cli.cli`,
a real Flask app's ``test_cli_runner()``, and a few real subprocesses.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

from click.testing import CliRunner, Result

import selfmigrate
from selfmigrate.cli import cli

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

FILES = {
    "0001_create_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n"
    "-- migrate:down\nDROP TABLE items;\n",
    "0002_add_price.sql": "ALTER TABLE items ADD COLUMN price INTEGER;\n-- migrate:down\n"
    "ALTER TABLE items DROP COLUMN price;\n",
    "0003_add_index.py": """
        def up(conn):
            conn.execute("CREATE INDEX items_title ON items (title)")

        def down(conn):
            conn.execute("DROP INDEX items_title")
    """,
}


def run(db: Path, migrations: str, *args: str, input: str | None = None) -> Result:
    """Run a ``python -m selfmigrate`` command in-process."""
    return CliRunner().invoke(cli, ["-d", str(db), "-m", migrations, *args], input=input)


def schema(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


class TestStatus:
    def test_exit_codes_follow_the_database(self, make_migrations: MigrationsFactory, db_path: Path) -> None:
        location = make_migrations(FILES)
        selfmigrate.migrate(db_path, location, target=2)
        result = run(db_path, location, "status")
        assert result.exit_code == 1, result.output
        assert "0002_add_price" in result.stdout and "pending" in result.stdout
        selfmigrate.migrate(db_path, location)
        result = run(db_path, location, "status")
        assert result.exit_code == 0, result.output
        assert "Up to date." in result.stdout

    def test_json(self, make_migrations: MigrationsFactory, db_path: Path) -> None:
        location = make_migrations(FILES)
        selfmigrate.migrate(db_path, location, target=1)
        result = run(db_path, location, "status", "--json")
        assert result.exit_code == 1
        document = json.loads(result.stdout)
        assert document["current_version"] == 1
        assert document["pending"] == [2, 3]
        assert [m["state"] for m in document["migrations"]] == ["applied", "pending", "pending"]
        assert document["migrations"][0]["applied_at"]

    def test_edited_migration_is_a_problem(self, make_migrations: MigrationsFactory, db_path: Path) -> None:
        location = make_migrations(FILES, package=False)
        selfmigrate.migrate(db_path, location)
        with open(Path(location) / "0002_add_price.sql", "a") as f:
            f.write("-- reviewed\n")
        result = run(db_path, location, "status", "--json")
        assert result.exit_code == 3
        assert json.loads(result.stdout)["migrations"][1]["state"] == "edited"

    def test_missing_database_is_not_created(self, make_migrations: MigrationsFactory, db_path: Path) -> None:
        result = run(db_path, make_migrations(FILES), "status")
        assert result.exit_code == 2
        assert "does not exist" in result.stderr
        assert not db_path.exists()

    def test_subprocess(self, make_migrations: MigrationsFactory, db_path: Path) -> None:
        location = make_migrations(FILES, package=False)
        selfmigrate.migrate(db_path, location)
        done = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "status"],
            env={"SELFMIGRATE_DATABASE": str(db_path), "SELFMIGRATE_MIGRATIONS": location, "PATH": ""},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "Up to date." in done.stdout
