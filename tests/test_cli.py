"""The command line, through both faces: ``python -m selfmigrate`` and ``flask selfmigrate``.

Every test runs real commands against real SQLite files in ``tmp_path``. The
faces are click's :class:`~click.testing.CliRunner` on :data:`selfmigrate.faces.cli.main.cli`,
a real Flask app's ``test_cli_runner()`` (the app calls :func:`selfmigrate.apply`,
which registers the group), and a few real ``python -m selfmigrate`` subprocesses.

Where a command must refuse, the test checks that the database file is
byte-for-byte what it was.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from helpers import connected

import selfmigrate
from selfmigrate.backends.sqlite.backend import SQLiteBackend
from selfmigrate.faces.cli.main import cli

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

FILES = {
    "0001_create_items.sql": """
        CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
        -- migrate:down
        DROP TABLE items;
    """,
    "0002_add_price.sql": """
        ALTER TABLE items ADD COLUMN price INTEGER;
        -- migrate:down
        ALTER TABLE items DROP COLUMN price;
    """,
    "0003_add_index.py": """
        def up(conn):
            conn.execute("CREATE INDEX items_title ON items (title)")


        def down(conn):
            conn.execute("DROP INDEX items_title")
    """,
}

NEWER = {
    "0004_create_tags.sql": """
        CREATE TABLE tags (name TEXT PRIMARY KEY);
        -- migrate:down
        DROP TABLE tags;
    """,
    "0005_seed_tags.sql": "INSERT INTO tags (name) VALUES ('new');\n",
}

_apps = itertools.count()


class Face:
    """One way to run the commands against one database and migrations folder."""

    def __init__(self, kind: str, db: Path, migrations: Path) -> None:
        self.kind = kind
        self.db = db
        self.migrations = migrations
        self.app: Flask | None = None

    def start_app(self, **config: object) -> Flask:
        """Create the Flask app (its factory migrates the database)."""
        app = Flask(f"cli_app_{next(_apps)}", root_path=str(self.db.parent))
        app.config.update(SELFMIGRATE_DATABASE=str(self.db), SELFMIGRATE_MIGRATIONS=str(self.migrations), **config)
        selfmigrate.apply(app)
        self.app = app
        return app

    def __call__(self, *args: str, input: str | None = None) -> Result:
        if self.kind == "python":
            return CliRunner().invoke(cli, ["-d", str(self.db), "-m", str(self.migrations), *args], input=input)
        app = self.app or self.start_app()
        return app.test_cli_runner().invoke(args=["selfmigrate", *args], input=input)


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def states(stdout: str) -> dict[str, str]:
    """The state of each migration in ``status`` output."""
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines() if line.startswith("  ")}


def tracker(db: Path) -> list[tuple[int, str]]:
    with connected(db) as conn:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()


def tables(db: Path) -> set[str]:
    with connected(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


def columns(db: Path, table: str) -> list[str]:
    with connected(db) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


@pytest.fixture
def folder(make_migrations: MigrationsFactory) -> Path:
    """A migrations folder with FILES."""
    return Path(make_migrations(FILES, package=False))


@pytest.fixture(params=["python", "flask"])
def face(request: pytest.FixtureRequest, folder: Path, db_path: Path) -> Face:
    """Both faces, against a database migrated to version 3 (as the app's start leaves it)."""
    face = Face(request.param, db_path, folder)
    if request.param == "flask":
        face.start_app()
    else:
        selfmigrate.migrate(db_path, folder)
    return face


@pytest.fixture
def flask_face(folder: Path, db_path: Path) -> Face:
    """``flask selfmigrate`` only, the app started (the database at version 3)."""
    face = Face("flask", db_path, folder)
    face.start_app()
    return face


@pytest.fixture
def python_face(folder: Path, db_path: Path) -> Face:
    """``python -m selfmigrate`` only, the database not created yet."""
    return Face("python", db_path, folder)


class TestStatus:
    def test_up_to_date_then_pending_then_problem(self, face: Face) -> None:
        result = face("status")
        assert result.exit_code == 0, result.output
        assert "Up to date." in result.stdout
        write(face.migrations, NEWER)
        result = face("status")
        assert result.exit_code == 1, result.output
        assert states(result.stdout)["0004_create_tags"] == "pending"
        assert "2 migration(s) pending" in result.stdout
        with open(face.migrations / "0002_add_price.sql", "a") as f:
            f.write("-- reviewed\n")
        result = face("status")
        assert result.exit_code == 3, result.output
        assert states(result.stdout)["0002_add_price"] == "edited"

    def test_json(self, face: Face) -> None:
        write(face.migrations, NEWER)
        result = face("status", "--json")
        assert result.exit_code == 1
        document = json.loads(result.stdout)
        assert document["current_version"] == 3
        assert document["head"] == 5
        assert document["state"] == "pending"
        assert document["pending"] == [4, 5]
        states = [(m["version"], m["state"]) for m in document["migrations"]]
        assert states == [(1, "applied"), (2, "applied"), (3, "applied"), (4, "pending"), (5, "pending")]
        assert document["migrations"][0]["applied_at"].endswith("+00:00")

    def test_json_error(self, python_face: Face) -> None:
        result = python_face("status", "--json")
        assert result.exit_code == 2
        document = json.loads(result.stdout)
        assert document["state"] == "error" and "does not exist" in document["error"]
        assert "does not exist" in result.stderr
        assert not python_face.db.exists()

    def test_missing_file_is_a_problem(self, face: Face) -> None:
        (face.migrations / "0002_add_price.sql").unlink()
        result = face("status", "--json")
        assert result.exit_code == 3
        assert json.loads(result.stdout)["migrations"][1]["state"] == "missing"

    def test_newest_file_gone_is_ahead_incompatible(self, face: Face) -> None:
        (face.migrations / "0003_add_index.py").unlink()
        result = face("status", "--json")
        assert result.exit_code == 7
        document = json.loads(result.stdout)
        assert document["state"] == "ahead-incompatible" and document["ahead"] == [3]
        assert document["migrations"][2]["state"] == "ahead"
        assert document["migrations"][2]["compatible"] is False and document["migrations"][2]["down"] == "stored"
        text = face("status")
        assert text.exit_code == 7
        assert re.search(r"0003_add_index +ahead, not compatible", text.stdout), text.stdout
        assert "rollback --to 2" in text.stdout

    def test_out_of_order_is_a_problem(self, python_face: Face) -> None:
        (python_face.migrations / "0002_add_price.sql").rename(python_face.migrations / "0002_add_price.sql.off")
        selfmigrate.migrate(python_face.db, python_face.migrations)
        (python_face.migrations / "0002_add_price.sql.off").rename(python_face.migrations / "0002_add_price.sql")
        result = python_face("status", "--json")
        assert result.exit_code == 3
        assert json.loads(result.stdout)["migrations"][1]["state"] == "out-of-order"

    def test_subprocess_health_check(self, folder: Path, db_path: Path) -> None:
        env = {**os.environ, "SELFMIGRATE_DATABASE": str(db_path), "SELFMIGRATE_MIGRATIONS": str(folder)}
        command = [sys.executable, "-m", "selfmigrate", "status"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert "does not exist" in done.stderr and "Traceback" not in done.stderr
        assert not db_path.exists()
        selfmigrate.migrate(db_path, folder, target=2)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        selfmigrate.migrate(db_path, folder)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "Up to date." in done.stdout


    def test_interrupted_migration(self, face: Face) -> None:
        with connected(face.db) as conn:
            conn.execute("UPDATE schema_migrations SET state = 'started' WHERE version = 3")
        conn.close()
        before = face.db.read_bytes()
        result = face("status", "--json")
        assert result.exit_code == 3
        assert json.loads(result.stdout)["migrations"][2]["state"] == "interrupted"
        result = face("verify")
        assert result.exit_code == 3 and "resolve 3 --done" in result.stderr
        result = face("rollback", "--yes")
        assert result.exit_code == 3 and "interrupted" in result.stderr
        assert face.db.read_bytes() == before

    def test_started_migration_whose_process_holds_the_lock_is_running(self, face: Face) -> None:
        with connected(face.db) as conn:
            conn.execute("UPDATE schema_migrations SET state = 'started' WHERE version = 3")
        before = face.db.read_bytes()
        # The lock that a process running a non-transactional migration holds.
        with SQLiteBackend(face.db).migration_lock() as lock:
            lock.acquire(0)
            result = face("status", "--json")
            assert result.exit_code == 1, result.output
            document = json.loads(result.stdout)
            assert document["migrations"][2]["state"] == "running" and document["state"] == "pending"
        result = face("status", "--json")  # released: its process is gone
        assert result.exit_code == 3
        assert json.loads(result.stdout)["migrations"][2]["state"] == "interrupted"
        assert face.db.read_bytes() == before

    def test_foreign_tracker_points_to_adopt(self, python_face: Face) -> None:
        with connected(python_face.db) as conn:
            conn.execute("CREATE TABLE schema_migrations (filename TEXT, applied_on TEXT)")
        conn.close()
        result = python_face("status")
        assert result.exit_code == 2
        assert "selfmigrate adopt" in result.stderr


class TestPlan:
    def test_shows_sql_and_changes_nothing(self, face: Face) -> None:
        write(face.migrations, NEWER)
        before = face.db.read_bytes()
        result = face("plan")
        assert result.exit_code == 0, result.output
        assert "is at version 3; 'apply' would run 2 migration(s)" in result.stdout
        assert "CREATE TABLE tags (name TEXT PRIMARY KEY);" in result.stdout
        assert "DROP TABLE tags" not in result.stdout  # the down is not what apply runs
        assert result.stdout.index("0004_create_tags") < result.stdout.index("0005_seed_tags")
        assert face.db.read_bytes() == before

    def test_apply_dry_run_is_plan(self, face: Face) -> None:
        write(face.migrations, NEWER)
        before = face.db.read_bytes()
        result = face("apply", "--dry-run", "--to", "4")
        assert result.exit_code == 0, result.output
        assert "0004_create_tags" in result.stdout and "0005_seed_tags" not in result.stdout
        assert face.db.read_bytes() == before

    def test_nothing_pending(self, face: Face) -> None:
        result = face("plan")
        assert result.exit_code == 0
        assert "Nothing to apply" in result.stdout

    def test_python_migration_is_named_not_run(self, python_face: Face) -> None:
        selfmigrate.migrate(python_face.db, python_face.migrations, target=2)
        result = python_face("plan")
        assert "0003_add_index" in result.stdout and "(Python: runs up(conn))" in result.stdout
        assert "items_title" not in tables(python_face.db)


class TestApply:
    def test_line_per_migration(self, face: Face) -> None:
        write(face.migrations, NEWER)
        result = face("apply")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].startswith("Applied 0004_create_tags in ") and lines[0].endswith(" ms")
        assert lines[1].startswith("Applied 0005_seed_tags in ")
        assert "is at version 5" in lines[2]
        assert [v for v, _ in tracker(face.db)] == [1, 2, 3, 4, 5]
        again = face("apply")
        assert again.exit_code == 0 and "Nothing to apply" in again.stdout
        assert [v for v, _ in tracker(face.db)] == [1, 2, 3, 4, 5]

    def test_to(self, face: Face) -> None:
        write(face.migrations, NEWER)
        result = face("apply", "--to", "4")
        assert result.exit_code == 0, result.output
        assert [v for v, _ in tracker(face.db)] == [1, 2, 3, 4]

    def test_creates_a_new_database(self, python_face: Face) -> None:
        result = python_face("apply")
        assert result.exit_code == 0, result.output
        assert [v for v, _ in tracker(python_face.db)] == [1, 2, 3]

    def test_lock_timeout(self, face: Face) -> None:
        write(face.migrations, NEWER)
        holder = sqlite3.connect(face.db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            if face.kind == "python":
                result = CliRunner().invoke(
                    cli, ["-d", str(face.db), "-m", str(face.migrations), "--lock-timeout", "0.1", "apply"]
                )
            else:
                assert face.app is not None
                face.app.extensions["selfmigrate"].lock_timeout = 0.1
                result = face("apply")
        finally:
            holder.rollback()
            holder.close()
        assert result.exit_code == 4, result.output
        assert "Timed out" in result.stderr and "write lock" in result.stderr
        assert [v for v, _ in tracker(face.db)] == [1, 2, 3]

    def test_failing_migration(self, face: Face) -> None:
        write(face.migrations, {"0004_broken.sql": "CREATE TABLE ok (x);\nINSERT INTO nowhere VALUES (1);\n"})
        before = face.db.read_bytes()
        result = face("apply")
        assert result.exit_code == 5
        assert "0004_broken" in result.stderr and "line 2" in result.stderr
        assert "Traceback" not in result.output
        assert face.db.read_bytes() == before


class TestRollback:
    def test_steps_runs_downs_and_removes_rows(self, face: Face) -> None:
        with connected(face.db) as conn:
            conn.execute("INSERT INTO items (title, price) VALUES ('kept', 3)")
        result = face("rollback", "--steps", "2", "--yes")
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert out.index("0003_add_index") < out.index("0002_add_price")  # newest first, announced
        assert "Rolled back 0003_add_index in" in out and "Rolled back 0002_add_price in" in out
        assert "is at version 1." in out
        assert tracker(face.db) == [(1, "create_items")]
        assert columns(face.db, "items") == ["id", "title"]
        assert "items_title" not in tables(face.db)
        with connected(face.db) as conn:
            assert conn.execute("SELECT title FROM items").fetchall() == [("kept",)]
        assert face("apply").exit_code == 0
        assert [v for v, _ in tracker(face.db)] == [1, 2, 3]

    def test_to(self, face: Face) -> None:
        result = face("rollback", "--to", "0", "--yes")
        assert result.exit_code == 0, result.output
        assert tracker(face.db) == []
        assert "items" not in tables(face.db)

    def test_target_above_current(self, face: Face) -> None:
        write(face.migrations, NEWER)
        before = face.db.read_bytes()
        result = face("rollback", "--to", "4", "--yes")
        assert result.exit_code == 2
        assert "not below" in result.stderr and "apply --to 4" in result.stderr
        assert face.db.read_bytes() == before
        result = face("rollback", "--to", "3", "--yes")
        assert result.exit_code == 0 and "Nothing to roll back" in result.stdout
        assert face.db.read_bytes() == before

    def test_default_is_one_step(self, face: Face) -> None:
        assert face("rollback", "--yes").exit_code == 0
        assert [v for v, _ in tracker(face.db)] == [1, 2]

    def test_asks_first(self, face: Face) -> None:
        before = face.db.read_bytes()
        result = face("rollback", "--steps", "2", input="n\n")
        assert result.exit_code == 1
        assert "0003_add_index" in result.stdout
        assert face.db.read_bytes() == before
        result = face("rollback", input="y\n")
        assert result.exit_code == 0, result.output
        assert [v for v, _ in tracker(face.db)] == [1, 2]

    def test_refuses_past_a_migration_without_down(self, face: Face) -> None:
        write(face.migrations, NEWER)
        assert face("apply").exit_code == 0
        before = face.db.read_bytes()
        result = face("rollback", "--to", "3", "--yes")
        assert result.exit_code == 2
        message = result.stderr.strip()
        assert "0005_seed_tags" in message and "no down" in message and "Nothing was rolled back" in message
        assert face.db.read_bytes() == before

    def test_failing_down_is_undone(self, python_face: Face) -> None:
        write(python_face.migrations, {"0004_bad_down.sql": "CREATE TABLE x (a);\n-- migrate:down\nDROP TABLE nope;\n"})
        selfmigrate.migrate(python_face.db, python_face.migrations)
        before = python_face.db.read_bytes()
        result = python_face("rollback", "--yes")
        assert result.exit_code == 5
        assert "Rolling back migration 0004_bad_down (its down) failed" in result.stderr
        assert "DROP TABLE nope" in result.stderr
        assert python_face.db.read_bytes() == before

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--to", "9"], "not the version of any migration"),
            (["--steps", "4"], "has 3 applied"),
            (["--steps", "0"], "1 or more"),
            (["--to", "1", "--steps", "1"], "not both"),
        ],
    )
    def test_bad_range(self, face: Face, args: list[str], expected: str) -> None:
        before = face.db.read_bytes()
        result = face("rollback", "--yes", *args)
        assert result.exit_code == 2
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert face.db.read_bytes() == before


class TestHistory:
    def test_newest_first(self, face: Face) -> None:
        write(face.migrations, NEWER)
        face("apply", "--to", "4")
        result = face("history")
        assert result.exit_code == 0, result.output
        order = [line.split()[1] for line in result.stdout.splitlines()]
        assert order == ["0004_create_tags", "0003_add_index", "0002_add_price", "0001_create_items"]
        rows = json.loads(face("history", "--json").stdout)
        assert [r["version"] for r in rows] == [4, 3, 2, 1]
        assert {"applied_at", "duration_ms", "applied_by", "checksum"} <= set(rows[0])

    def test_needs_no_migrations(self, python_face: Face) -> None:
        selfmigrate.migrate(python_face.db, python_face.migrations)
        result = CliRunner().invoke(cli, ["-d", str(python_face.db), "history"])
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == 3


class TestVerify:
    def test_ok(self, face: Face) -> None:
        result = face("verify")
        assert result.exit_code == 0, result.output
        assert "OK: checked 3 migration file(s) and database" in result.stdout

    def test_without_a_database(self, folder: Path) -> None:
        result = CliRunner().invoke(cli, ["-m", str(folder), "verify"])
        assert result.exit_code == 0, result.output
        assert "OK: checked 3 migration file(s)." in result.stdout

    def test_two_branches_both_added_0004(self, folder: Path) -> None:
        write(folder, {"0004_a.sql": "SELECT 1;", "0004_b.sql": "SELECT 2;"})
        result = CliRunner().invoke(cli, ["-m", str(folder), "verify"])
        assert result.exit_code == 2
        assert "0004_a.sql" in result.stderr and "0004_b.sql" in result.stderr

    def test_bad_name_and_broken_file(self, folder: Path) -> None:
        write(folder, {"add_things.sql": "SELECT 1;"})
        result = CliRunner().invoke(cli, ["-m", str(folder), "verify"])
        assert result.exit_code == 2 and "add_things.sql" in result.stderr
        (folder / "add_things.sql").unlink()
        write(folder, {"0004_no_up.py": "def upp(conn):\n    pass\n", "0005_empty.sql": "\n"})
        result = CliRunner().invoke(cli, ["-m", str(folder), "verify"])
        assert result.exit_code == 2
        assert "0004_no_up.py has no up(conn)" in result.stderr and "0005_empty.sql is empty" in result.stderr

    def test_gap_warns_and_fails_when_strict(self, folder: Path) -> None:
        write(folder, {"0007_later.sql": "SELECT 1;"})
        result = CliRunner().invoke(cli, ["-m", str(folder), "verify"])
        assert result.exit_code == 0
        assert "Warning: No migration has version 4–6" in result.stderr
        assert CliRunner().invoke(cli, ["-m", str(folder), "verify", "--strict"]).exit_code == 2

    def test_edited_migration(self, face: Face) -> None:
        with open(face.migrations / "0001_create_items.sql", "a") as f:
            f.write("CREATE INDEX sneaky ON items (title);\n")
        result = face("verify")
        assert result.exit_code == 3
        assert "0001_create_items.sql was edited" in result.stderr and "rehash 1" in result.stderr

    def test_subprocess_in_ci(self, folder: Path) -> None:
        write(folder, {"0003_other_branch.sql": "SELECT 1;"})
        done = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "-m", str(folder), "verify"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "0003_other_branch.sql" in done.stderr and "Traceback" not in done.stderr


class TestRehash:
    def test_after_a_cosmetic_edit(self, face: Face, caplog: pytest.LogCaptureFixture) -> None:
        path = face.migrations / "0002_add_price.sql"
        path.write_text("-- price in cents\n" + path.read_text())
        assert face("status").exit_code == 3
        with caplog.at_level("INFO", logger="selfmigrate"):
            result = face("rehash", "2")
        assert result.exit_code == 0, result.output
        assert "replaced by" in result.stdout
        assert any("Recorded a new checksum for migration 0002_add_price" in r.message for r in caplog.records)
        assert face("status").exit_code == 0
        again = face("rehash", "2")
        assert again.exit_code == 0 and "nothing changed" in again.stdout

    def test_unknown_or_unapplied_version(self, face: Face) -> None:
        before = face.db.read_bytes()
        assert face("rehash", "9").exit_code == 2
        write(face.migrations, NEWER)
        result = face("rehash", "4")
        assert result.exit_code == 2 and "not applied" in result.stderr
        assert face.db.read_bytes() == before


class TestBaseline:
    def make_legacy_schema(self, db: Path) -> None:
        """A database built by hand: the schema of migrations 1 and 2, with data."""
        with connected(db) as conn:
            conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price INTEGER)")
            conn.execute("INSERT INTO items (title, price) VALUES ('old', 5)")

    def test_records_without_running(self, python_face: Face) -> None:
        self.make_legacy_schema(python_face.db)
        result = python_face("baseline", "--version", "2", "--yes")
        assert result.exit_code == 0, result.output
        assert "0001_create_items" in result.stdout and "0002_add_price" in result.stdout
        assert tracker(python_face.db) == [(1, "create_items"), (2, "add_price")]
        history = json.loads(python_face("history", "--json").stdout)
        assert all(row["applied_by"].startswith("baseline by ") for row in history)
        assert python_face("apply").exit_code == 0
        assert [v for v, _ in tracker(python_face.db)] == [1, 2, 3]
        with connected(python_face.db) as conn:
            assert conn.execute("SELECT title, price FROM items").fetchall() == [("old", 5)]

    def test_shows_and_asks_first(self, python_face: Face) -> None:
        self.make_legacy_schema(python_face.db)
        before = python_face.db.read_bytes()
        result = python_face("baseline", "--version", "2", input="n\n")
        assert result.exit_code == 1
        assert "0002_add_price" in result.stdout
        assert python_face.db.read_bytes() == before

    def test_refuses_a_database_with_history_unless_forced(self, face: Face) -> None:
        write(face.migrations, NEWER)
        before = face.db.read_bytes()
        result = face("baseline", "--version", "5", "--yes")
        assert result.exit_code == 3
        assert "already has selfmigrate history" in result.stderr and "--force" in result.stderr
        assert face.db.read_bytes() == before
        result = face("baseline", "--version", "5", "--force", "--yes")
        assert result.exit_code == 0, result.output
        assert [v for v, _ in tracker(face.db)] == [1, 2, 3, 4, 5]
        assert "tags" not in tables(face.db)  # recorded, not run

    def test_bad_input(self, python_face: Face) -> None:
        result = python_face("baseline", "--version", "2", "--yes")
        assert result.exit_code == 2 and "does not exist" in result.stderr
        assert not python_face.db.exists()
        self.make_legacy_schema(python_face.db)
        before = python_face.db.read_bytes()
        for args in (["--version", "8"], []):
            result = python_face("baseline", "--yes", *args)
            assert result.exit_code == 2, result.output
        assert python_face.db.read_bytes() == before


class TestCreate:
    def test_edit_opens_the_editor(self, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        editor = tmp_path / "editor.py"
        editor.write_text("import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write('SELECT 42;\\n')\n")
        monkeypatch.delenv("VISUAL", raising=False)
        monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
        result = CliRunner().invoke(cli, ["-m", str(folder), "create", "--sql", "--edit", "answer"])
        assert result.exit_code == 0, result.output
        created = folder / "0004_answer.sql"
        assert result.stdout.strip() == str(created)
        assert created.read_text() == "SELECT 42;\n"

    def test_flask_face(self, flask_face: Face) -> None:
        result = flask_face("create", "add tags")
        assert result.exit_code == 0, result.output
        assert (flask_face.migrations / "0004_add_tags.py").exists()


class TestBadInput:
    """Each: a one-line error naming the problem and the fix, a non-zero exit, nothing written."""

    COMMANDS = [
        ["status"],
        ["plan"],
        ["history"],
        ["verify"],
        ["rollback", "--yes"],
        ["rehash", "1"],
        ["baseline", "--version", "1", "--yes"],
        ["adopt", "--yes"],
    ]

    @pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
    def test_unknown_database_is_not_created(self, python_face: Face, args: list[str]) -> None:
        result = python_face(*args)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr
        assert not python_face.db.exists()

    @pytest.mark.parametrize("args", [*COMMANDS, ["apply"]], ids=lambda a: a[0])
    def test_directory(self, folder: Path, tmp_path: Path, args: list[str]) -> None:
        result = CliRunner().invoke(cli, ["-d", str(tmp_path), "-m", str(folder), *args])
        assert result.exit_code == 2, result.output
        assert "is a directory" in result.stderr and "Traceback" not in result.output

    @pytest.mark.parametrize("args", [*COMMANDS, ["apply"]], ids=lambda a: a[0])
    def test_not_sqlite(self, python_face: Face, args: list[str]) -> None:
        python_face.db.write_bytes(b"name,price\nold,5\n" * 20)
        before = python_face.db.read_bytes()
        result = python_face(*args)
        assert result.exit_code == 2, result.output
        assert "Is it a SQLite database file?" in result.stderr
        assert python_face.db.read_bytes() == before

    def test_apply_to_unknown_version(self, face: Face) -> None:
        before = face.db.read_bytes()
        result = face("apply", "--to", "42")
        assert result.exit_code == 2
        assert "Target version 42 is not the version of any migration file" in result.stderr
        assert face.db.read_bytes() == before

    def test_apply_to_unknown_version_creates_nothing(self, python_face: Face) -> None:
        assert python_face("apply", "--to", "42").exit_code == 2
        assert not python_face.db.exists()

    def test_apply_to_below_current(self, face: Face) -> None:
        before = face.db.read_bytes()
        result = face("apply", "--to", "1")
        assert result.exit_code == 2
        assert "below" in result.stderr and "rollback --to 1" in result.stderr
        assert face.db.read_bytes() == before

    def test_no_database_given(self, folder: Path) -> None:
        result = CliRunner().invoke(cli, ["-m", str(folder), "status"], env={"SELFMIGRATE_DATABASE": None})
        assert result.exit_code == 2
        assert "--database" in result.stderr and "SELFMIGRATE_DATABASE" in result.stderr

    def test_subprocess_rollback_without_a_terminal(self, folder: Path, db_path: Path) -> None:
        selfmigrate.migrate(db_path, folder)
        before = db_path.read_bytes()
        done = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "-d", str(db_path), "-m", str(folder), "rollback", "--to", "0"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "0001_create_items" in done.stdout and "Aborted" in done.stderr
        assert db_path.read_bytes() == before
        done = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "-d", str(db_path), "-m", str(folder), "rollback", "--to", "0", "-y"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert tracker(db_path) == []


class TestFlaskGroup:
    def test_help_lists_every_command(self, flask_face: Face) -> None:
        result = flask_face("--help")
        assert result.exit_code == 0
        for name in cli.commands:
            assert name in result.stdout

    def test_shares_the_command_table(self, flask_face: Face) -> None:
        """A command added to the python -m group (backups, resolve) is a flask command too."""
        assert flask_face.app is not None
        group = flask_face.app.cli.commands["selfmigrate"]
        assert isinstance(group, click.Group)
        ctx = click.Context(group)
        assert group.list_commands(ctx) == sorted(cli.commands)
        assert all(group.get_command(ctx, name) is command for name, command in cli.commands.items())

    def test_group_name_is_configurable(self, folder: Path, db_path: Path) -> None:
        face = Face("flask", db_path, folder)
        app = face.start_app(SELFMIGRATE_CLI_GROUP="migrations")
        assert "migrations" in app.cli.commands and "selfmigrate" not in app.cli.commands
        result = app.test_cli_runner().invoke(args=["migrations", "status"])
        assert result.exit_code == 0, result.output

    def test_no_group(self, folder: Path, db_path: Path) -> None:
        app = Face("flask", db_path, folder).start_app(SELFMIGRATE_CLI_GROUP=None)
        assert "selfmigrate" not in app.cli.commands

    def test_name_clash_is_an_error(self, folder: Path, db_path: Path) -> None:
        app = Flask("clash", root_path=str(db_path.parent))
        app.config.update(SELFMIGRATE_DATABASE=str(db_path), SELFMIGRATE_MIGRATIONS=str(folder))

        @app.cli.command("selfmigrate")
        def mine() -> None:
            """Another command of that name."""

        with pytest.raises(selfmigrate.ConfigError, match="SELFMIGRATE_CLI_GROUP"):
            selfmigrate.apply(app)
