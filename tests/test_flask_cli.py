"""``flask selfmigrate`` with the real ``flask`` executable: loading the app for these commands migrates nothing.

Each test writes a Flask app (an app factory calling ``selfmigrate.apply``) into a
temporary folder and runs ``flask --app myapp …`` in a subprocess, as a user does.
Where a command must leave the database alone, it is compared with its dump.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import dump

from selfmigrate.backends.select import handles

FLASK = shutil.which("flask", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(FLASK is None, reason="the flask executable is missing: pip install -e '.[test]'")

FACTORY = """\
from flask import Flask

import selfmigrate


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DATABASE="app.sqlite")
    app.config.from_mapping({config})
    selfmigrate.apply(app)

    @app.cli.command("count")
    def count():
        import sqlite3

        conn = sqlite3.connect(app.config["DATABASE"] if "/" in app.config["DATABASE"] else
                               app.instance_path + "/" + app.config["DATABASE"])
        print(conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0])
        conn.close()

    return app
"""

ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT);\n-- migrate:down\nDROP TABLE items;\n"
PRICE = "ALTER TABLE items ADD COLUMN price INTEGER;\n-- migrate:down\nALTER TABLE items DROP COLUMN price;\n"


def make_app(root: Path, *, config: str = "{}", migrations: dict[str, str] | None = None) -> Path:
    """Write the package ``myapp`` into ``root``; return its migrations folder."""
    package = root / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FACTORY.format(config=config), encoding="utf-8")
    folder = package / "migrations"
    if migrations is not None:
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for name, text in migrations.items():
            (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def flask(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert FLASK is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SELFMIGRATE_", "FLASK_"))}
    return subprocess.run(
        [FLASK, "--app", "myapp", *args], cwd=root, capture_output=True, text=True, env=env, timeout=60
    )


def test_the_group_is_a_flask_cli_plugin() -> None:
    """Flask finds ``flask selfmigrate`` before it loads the app (an entry point: reinstall to get it)."""
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="flask.commands")}
    assert found.get("selfmigrate") == "selfmigrate.faces.flask_command:cli", "run pip install -e . again"


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    """An app at version 1 with its database created by a first start."""
    make_app(tmp_path, migrations={"0001_items.sql": ITEMS})
    done = flask(tmp_path, "count")  # any other command loads and migrates the app
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
    return tmp_path


def test_status_of_an_unedited_template_is_shown_not_a_traceback(app_root: Path) -> None:
    db = app_root / "instance" / "app.sqlite"
    done = flask(app_root, "selfmigrate", "create", "add price")
    assert done.returncode == 0, done.stderr
    created = app_root / "myapp" / "migrations" / "0002_add_price.py"
    assert done.stdout.strip() == os.path.join("myapp", "migrations", "0002_add_price.py")
    before = dump(db)
    done = flask(app_root, "selfmigrate", "status")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "0002_add_price  pending, cannot load: Migration file" in done.stdout
    assert f"{created} is the unedited template" in done.stdout
    assert dump(db) == before
    # Any other command loads the app, which migrates: that start fails before any change, and says why.
    done = flask(app_root, "count")
    assert done.returncode != 0 and f"{created} is the unedited template" in done.stderr
    assert dump(db) == before


@pytest.mark.parametrize("command", [["status"], ["plan"], ["history"], ["config"], ["verify"]])
def test_read_only_commands_see_the_database_as_it_is(app_root: Path, command: list[str]) -> None:
    (app_root / "myapp" / "migrations" / "0002_price.sql").write_text(PRICE, encoding="utf-8")
    db = app_root / "instance" / "app.sqlite"
    before = dump(db)
    done = flask(app_root, "selfmigrate", *command)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert dump(db) == before  # 0002 is still pending
    if command == ["status"]:
        assert "0002_price  pending" in done.stdout and done.returncode == 1


def test_rollback_is_not_undone_by_the_next_selfmigrate_command(app_root: Path) -> None:
    db = app_root / "instance" / "app.sqlite"
    done = flask(app_root, "selfmigrate", "rollback", "--yes")
    assert done.returncode == 0, done.stderr
    assert "is at version none (no migration applied)" in done.stdout
    rolled_back = dump(db)
    done = flask(app_root, "selfmigrate", "status")
    assert done.returncode == 1 and "0001_items  pending" in done.stdout
    assert dump(db) == rolled_back
    done = flask(app_root, "selfmigrate", "apply")
    assert done.returncode == 0 and "Applied 0001_items" in done.stdout


def test_first_create_makes_the_folder_apply_reads(tmp_path: Path) -> None:
    make_app(tmp_path)  # no migrations yet: a start would fail, the commands do not
    done = flask(tmp_path, "selfmigrate", "create", "--sql", "create items")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "myapp" / "migrations"
    assert (folder / "__init__.py").read_text() == ""  # inside the package myapp
    (folder / "0001_create_items.sql").write_text(ITEMS, encoding="utf-8")
    done = flask(tmp_path, "count")  # a start: apply(app) reads that folder
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr


def test_config_says_where_each_value_came_from(tmp_path: Path) -> None:
    make_app(tmp_path, config="{'SELFMIGRATE_LOCK_TIMEOUT': 5}", migrations={"0001_items.sql": ITEMS})
    done = flask(tmp_path, "selfmigrate", "config")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[2:]}
    assert lines["database"].endswith("(app.config['DATABASE'])")
    assert lines["lock_timeout"].split()[1:] == ["5", "(app.config['SELFMIGRATE_LOCK_TIMEOUT'])"]
    assert lines["table"].endswith("(default)")
    assert "the package myapp.migrations" in lines["migrations"]
    assert not (tmp_path / "instance" / "app.sqlite").exists()  # nothing was migrated


def test_a_disabled_group_says_so(tmp_path: Path) -> None:
    make_app(tmp_path, config="{'SELFMIGRATE_CLI_GROUP': None}", migrations={"0001_items.sql": ITEMS})
    done = flask(tmp_path, "selfmigrate", "status")
    assert done.returncode == 2
    assert done.stderr == (
        "Error: App 'myapp' names its selfmigrate commands none (SELFMIGRATE_CLI_GROUP is None); use that.\n"
    )


def test_an_app_without_apply_is_told_to_call_it(tmp_path: Path) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n", encoding="utf-8")
    done = flask(tmp_path, "selfmigrate", "status")
    assert done.returncode == 2
    assert "call selfmigrate.apply(app) in its factory" in done.stderr and "Traceback" not in done.stderr


def test_a_postgresql_uri_is_named_when_it_is_not_used(tmp_path: Path) -> None:
    uri = "postgresql://app:s3cret@db.example/app"
    if handles(uri):
        pytest.skip("the PostgreSQL backend is present: such a URI is used (see tests of backends/postgres)")
    make_app(tmp_path, config=f"{{'SQLALCHEMY_DATABASE_URI': {uri!r}, 'DATABASE': None}}", migrations={})
    done = flask(tmp_path, "selfmigrate", "status")
    assert done.returncode == 2
    assert "SQLALCHEMY_DATABASE_URI = 'postgresql://app:***@db.example/app'" in done.stderr
    assert "s3cret" not in done.stderr and "no backend for" in done.stderr


def test_a_configuration_error_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    make_app(tmp_path, config="{'DATABASE': None}", migrations={"0001_items.sql": ITEMS})
    done = flask(tmp_path, "selfmigrate", "status")
    assert done.returncode == 2
    assert done.stderr.startswith("Error: No SQLite database is configured for app 'myapp'")
    assert len(done.stderr.splitlines()) == 1
