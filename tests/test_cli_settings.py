"""The command line of a project: [tool.selfmigrate] and SELFMIGRATE_* read, shown by ``config``; its conventions.

Real projects in ``tmp_path`` (a pyproject.toml, a package, a Flask app), commands
through click's CliRunner and real ``python -m selfmigrate`` processes. Where a
command must refuse, the database is compared with its dump from before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import dump

import selfmigrate
from selfmigrate.core.migration import PY_TEMPLATE_MARK
from selfmigrate.faces.cli.main import cli
from selfmigrate.faces.project_settings import SETTINGS

#: No SELFMIGRATE_* variable of the test process leaks into the commands.
CLEAN_ENV: dict[str, str | None] = {s.env: None for s in SETTINGS}

ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT);\n-- migrate:down\nDROP TABLE items;\n"

APP = """\
from flask import Flask

import selfmigrate


def create_app():
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DATABASE="app.sqlite")
    selfmigrate.apply(app)
    return app
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**CLEAN_ENV, **(env or {})})


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [sys.executable, "-m", "selfmigrate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Flask project: pyproject.toml with [tool.selfmigrate] naming the app's database and package."""
    root = tmp_path / "proj"
    write(
        root / "pyproject.toml",
        """
        [project]
        name = "proj"
        version = "1"

        [tool.selfmigrate]
        database = "instance/app.sqlite"
        migrations = "myapp.migrations"
        """,
    )
    write(root / "myapp" / "__init__.py", APP)
    return root


class TestProjectSettings:
    def test_create_and_status_need_no_flags_and_create_writes_where_apply_reads(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sub = project / "myapp" / "templates"
        sub.mkdir()
        done = run("create", "--sql", "create items", cwd=sub)  # from a subfolder: found upward
        assert done.returncode == 0, done.stderr
        migrations = project / "myapp" / "migrations"
        created = migrations / "0001_create_items.sql"
        assert done.stdout.strip() == str(created)
        assert (migrations / "__init__.py").read_text() == ""  # inside a package: a package
        created.write_text(ITEMS, encoding="utf-8")
        # The app reads the same folder and database: its start applies the migration...
        monkeypatch.syspath_prepend(str(project))
        from myapp import create_app  # type: ignore[import-not-found]

        report = create_app().extensions["selfmigrate"].report
        assert [r.id for r in report.applied] == ["0001_create_items"]
        sys.modules.pop("myapp", None)
        sys.modules.pop("myapp.migrations", None)
        # ... and the command line sees it applied.
        done = run("status", cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0001_create_items  applied" in done.stdout and "Up to date." in done.stdout

    def test_relative_paths_are_from_the_pyproject_folder_not_the_working_directory(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(project / "myapp" / "migrations" / "0001_create_items.sql", ITEMS)
        elsewhere = project / "docs"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        (project / "instance").mkdir()
        result = invoke("apply")
        assert result.exit_code == 0, result.output
        assert (project / "instance" / "app.sqlite").is_file()
        assert not (elsewhere / "instance").exists()

    def test_config_shows_each_value_and_where_it_came_from(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(project)
        result = invoke("config", "--table", "cli_table", env={"SELFMIGRATE_LOCK_TIMEOUT": "7"})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0] == f"pyproject.toml: {project / 'pyproject.toml'}"
        assert lines[1] == (
            "Precedence: command-line option > environment variable (SELFMIGRATE_*) >"
            " pyproject.toml [tool.selfmigrate] > default."
        )
        shown = {line.split()[0]: line for line in lines[2:]}
        assert list(shown) == [s.name for s in SETTINGS]
        assert shown["database"].split() == ["database", str(project / "instance" / "app.sqlite"), "(pyproject.toml)"]
        assert shown["migrations"].split()[1:] == [str(project / "myapp" / "migrations"), "(pyproject.toml)"]
        assert shown["table"].split()[1:] == ["cli_table", "(--table)"]
        assert shown["lock_timeout"].split()[1:] == ["7.0", "(SELFMIGRATE_LOCK_TIMEOUT)"]
        assert shown["backup_keep"].split()[1:] == ["5", "(default)"]
        # The option wins over the variable, the variable over the table.
        result = invoke(
            "--lock-timeout", "1", "config", "--json", env={"SELFMIGRATE_LOCK_TIMEOUT": "7", "SELFMIGRATE_TABLE": "t"}
        )
        document = json.loads(result.stdout)
        assert document["pyproject"] == str(project / "pyproject.toml")
        assert document["settings"]["lock_timeout"] == {"value": 1.0, "source": "option", "origin": "--lock-timeout"}
        assert document["settings"]["table"] == {"value": "t", "source": "environment", "origin": "SELFMIGRATE_TABLE"}
        assert document["settings"]["database"]["source"] == "pyproject"

    def test_config_without_a_pyproject_says_where_it_looked(self, tmp_path: Path) -> None:
        done = run("config", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == (
            f"pyproject.toml: none with a [tool.selfmigrate] table in {tmp_path} or above."
        )
        assert "(default)" in done.stdout and "(pyproject.toml)" not in done.stdout

    def test_a_broken_pyproject_is_one_error_line_and_changes_nothing(self, project: Path) -> None:
        write(project / "myapp" / "migrations" / "0001_create_items.sql", ITEMS)
        (project / "instance").mkdir()
        assert run("apply", cwd=project).returncode == 0
        before = dump(project / "instance" / "app.sqlite")
        (project / "pyproject.toml").write_text("[tool.selfmigrate]\nlock_timeout = 'soon'\n", encoding="utf-8")
        done = run("--database", "instance/app.sqlite", "-m", "myapp/migrations", "rollback", "-y", cwd=project)
        assert done.returncode == 2
        assert done.stderr == (
            f"Error: {project / 'pyproject.toml'}: [tool.selfmigrate] lock_timeout is 'soon'; it takes a"
            " number of seconds, 0 or more.\n"
        )
        assert dump(project / "instance" / "app.sqlite") == before


class TestConventions:
    @pytest.fixture
    def folder(self, tmp_path: Path) -> Path:
        write(tmp_path / "m" / "0001_create_items.sql", ITEMS)
        return tmp_path / "m"

    def test_global_options_after_the_command(self, folder: Path, tmp_path: Path) -> None:
        db = tmp_path / "app.sqlite"
        assert invoke("apply", "--database", str(db), "--migrations", str(folder)).exit_code == 0
        before = invoke("-d", str(db), "-m", str(folder), "status")
        after = invoke("status", "-d", str(db), "-m", str(folder), "--table", "schema_migrations")
        assert after.exit_code == before.exit_code == 0
        assert after.stdout == before.stdout
        # After the command wins over before it.
        result = invoke("--table", "other", "-m", str(folder), "config", "--table", "mine", "--json")
        assert json.loads(result.stdout)["settings"]["table"]["value"] == "mine"

    def test_every_subcommand_help_lists_the_global_options(self) -> None:
        for name in cli.commands:
            result = invoke(name, "-h")
            assert result.exit_code == 0, name + result.output
            assert "--database PATH" in result.stdout and "--lock-timeout" in result.stdout, name

    def test_version_and_short_help(self, tmp_path: Path) -> None:
        done = run("--version", cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, f"selfmigrate {selfmigrate.__version__}\n")
        assert invoke("-h").stdout == invoke("--help").stdout
        assert invoke("-h").stdout.startswith("Usage: ")

    def test_one_error_style(self, folder: Path, tmp_path: Path) -> None:
        write(folder / "0002_broken.py", "def up(conn)\n")
        done = run("-m", str(folder), "verify", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("Error: Migration file ") and "error:" not in done.stderr
        done = run("status", "--no-such-option", cwd=tmp_path)
        assert done.returncode == 2 and "Error: No such option '--no-such-option'." in done.stderr
        done = run("status", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("Error: No database given. Pass --database PATH")
        assert "[tool.selfmigrate]" in done.stderr and "Traceback" not in done.stderr

    def test_one_wording_for_no_migration_applied(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        db = tmp_path / "app.sqlite"
        args = ["-d", str(db), "-m", str(empty)]
        outputs = [run(*args, "apply", cwd=tmp_path)]
        outputs += [run(*args, command, cwd=tmp_path) for command in ("status", "plan", "history", "rollback")]
        for done in outputs:
            assert done.returncode == (2 if done.args[-1] == "rollback" else 0), done.args[-1] + done.stderr
            text = done.stdout + done.stderr
            assert "no migration applied" in text, done.args[-1] + text
            assert "(empty)" not in text and "version none." not in text and "no migrations applied" not in text

    def test_create_without_any_setting_makes_no_stray_folder(self, tmp_path: Path) -> None:
        done = run("create", "first", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("Error: No migrations location is configured")
        assert list(tmp_path.iterdir()) == []


class TestPendingThatCannotLoad:
    @pytest.mark.parametrize(
        ("name", "text", "reason"),
        [
            ("0002_unedited.py", None, "is the unedited template: its up() only raises NotImplementedError"),
            ("0002_unedited.sql", None, "has no SQL statement to apply"),
            ("0002_syntax.py", "def up(conn)\n", "cannot be imported: SyntaxError"),
        ],
    )
    def test_status_says_why_without_a_traceback(
        self, tmp_path: Path, name: str, text: str | None, reason: str
    ) -> None:
        folder = tmp_path / "m"
        write(folder / "0001_create_items.sql", ITEMS)
        db = tmp_path / "app.sqlite"
        selfmigrate.migrate(db, folder)
        if text is None:
            result = invoke("-m", str(folder), "create", "unedited", *(["--sql"] if name.endswith(".sql") else []))
            assert result.exit_code == 0, result.output
        else:
            write(folder / name, text)
        before = dump(db)
        done = run("-d", str(db), "-m", str(folder), "status", cwd=tmp_path)
        assert done.returncode == 3, done.stdout + done.stderr
        line = next(line for line in done.stdout.splitlines() if line.strip().startswith("0002_"))
        assert "pending, cannot load: Migration file" in line and reason in line
        assert "1 pending migration(s) cannot load" in done.stdout
        assert "Traceback" not in done.stderr
        document = json.loads(run("-d", str(db), "-m", str(folder), "status", "--json", cwd=tmp_path).stdout)
        entry = document["migrations"][1]
        assert entry["state"] == "pending" and reason in entry["cannot_load"]
        assert document["migrations"][0]["cannot_load"] is None
        assert dump(db) == before

    def test_the_py_template_carries_the_mark_status_looks_for(self) -> None:
        template = Path(selfmigrate.__file__).parent / "templates" / "migration.py.template"
        assert PY_TEMPLATE_MARK in template.read_text(encoding="utf-8")


def test_create_makes_a_package_only_inside_a_package(tmp_path: Path) -> None:
    from selfmigrate.ops.create import create

    write(tmp_path / "pkg" / "__init__.py", "")
    inside = create(tmp_path / "pkg" / "migrations", "first")
    assert (inside.parent / "__init__.py").read_text() == ""
    top = create(tmp_path / "migrations", "first")
    assert sorted(p.name for p in top.parent.iterdir()) == ["0001_first.py"]
    # An existing folder is never changed.
    write(tmp_path / "pkg" / "old" / "0001_x.sql", ITEMS)
    create(tmp_path / "pkg" / "old", "second")
    assert not (tmp_path / "pkg" / "old" / "__init__.py").exists()
