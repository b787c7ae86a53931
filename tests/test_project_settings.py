"""The project's settings: pyproject.toml's [tool.selfmigrate] found upward, SELFMIGRATE_* variables, precedence."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from selfmigrate.errors import ConfigError
from selfmigrate.faces import project_settings
from selfmigrate.faces.project_settings import find_pyproject, load


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a [tool.selfmigrate] table and a package beside it."""
    root = tmp_path / "proj"
    write(
        root / "pyproject.toml",
        """
        [project]
        name = "proj"

        [tool.selfmigrate]
        database = "instance/app.sqlite"
        migrations = "flask_app.migrations"
        table = "proj_migrations"
        lock_timeout = 5
        """,
    )
    write(root / "flask_app" / "__init__.py", "")
    return root


def test_found_from_a_subfolder_with_paths_from_the_pyproject_folder(project: Path) -> None:
    deep = project / "flask_app" / "templates" / "x"
    deep.mkdir(parents=True)
    settings = load(deep, environ={})
    assert settings.pyproject == project / "pyproject.toml"
    assert settings["database"] == str(project / "instance" / "app.sqlite")
    # The package's folder is in the project: used as a folder (create writes there,
    # nothing needs the package importable); it does not exist yet.
    assert settings["migrations"] == (str(project / "flask_app" / "migrations"),)
    assert settings["table"] == "proj_migrations"
    assert settings["lock_timeout"] == 5.0
    assert settings.values["table"].source == "pyproject"
    assert settings.values["table"].origin == str(project / "pyproject.toml")
    assert settings.values["backup_keep"].source == "default"
    assert settings["backup_keep"] == 5


def test_a_pyproject_without_the_table_is_passed_over_like_ruff(project: Path) -> None:
    sub = project / "packages" / "sub"
    write(sub / "pyproject.toml", '[project]\nname = "sub"\n\n[tool.ruff]\nline-length = 99\n')
    assert find_pyproject(sub) == project / "pyproject.toml"
    assert load(sub, environ={})["table"] == "proj_migrations"


def test_the_nearest_table_wins_and_tables_are_not_merged(project: Path) -> None:
    sub = project / "sub"
    write(sub / "pyproject.toml", '[tool.selfmigrate]\ndatabase = "other.db"\n')
    settings = load(sub, environ={})
    assert settings.pyproject == sub / "pyproject.toml"
    assert settings["database"] == str(sub / "other.db")
    assert settings["table"] == "schema_migrations"  # not the outer table's
    assert settings.values["table"].source == "default"


def test_no_pyproject_gives_the_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, environ={})
    assert settings.pyproject is None
    assert {name: v.source for name, v in settings.values.items()} == dict.fromkeys(
        project_settings.BY_NAME, "default"
    )
    assert settings["database"] is None
    assert settings["migrations"] == ()
    assert settings["lock_timeout"] == 60.0


def test_precedence_option_over_environment_over_pyproject_over_default(project: Path) -> None:
    environ = {"SELFMIGRATE_TABLE": "env_table", "SELFMIGRATE_LOCK_TIMEOUT": "7.5", "SELFMIGRATE_BACKUP": "off"}
    settings = load(project, environ=environ).given("table", "cli_table").given("database", None)
    assert settings["table"] == "cli_table"
    assert (settings.values["table"].source, settings.values["table"].origin) == ("option", "--table")
    assert settings["lock_timeout"] == 7.5
    assert settings.values["lock_timeout"].origin == "SELFMIGRATE_LOCK_TIMEOUT"
    assert settings["backup"] is False
    # Not given on the command line (None): the pyproject's value stays.
    assert settings.values["database"].source == "pyproject"
    assert settings.values["allow_out_of_order"].source == "default"


def test_environment_values_are_read_by_kind(tmp_path: Path) -> None:
    environ = {
        "SELFMIGRATE_MIGRATIONS": "app.migrations  extra/migrations",
        "SELFMIGRATE_BACKUP_KEEP": "all",
        "SELFMIGRATE_ALLOW_OUT_OF_ORDER": "Yes",
        "SELFMIGRATE_DATABASE": "",  # empty: not set
        "SELFMIGRATE_CLI_GROUP": "db",  # a Flask key, not a setting here: left alone
    }
    settings = load(tmp_path, environ=environ)
    assert settings["migrations"] == ("app.migrations", "extra/migrations")  # as given: from the cwd
    assert settings["backup_keep"] is None
    assert settings["allow_out_of_order"] is True
    assert settings.values["database"].source == "default"


@pytest.mark.parametrize(
    ("variable", "value", "wanted"),
    [
        ("SELFMIGRATE_LOCK_TIMEOUT", "soon", "a number of seconds"),
        ("SELFMIGRATE_LOCK_TIMEOUT", "-1", "a number of seconds"),
        ("SELFMIGRATE_LOCK_TIMEOUT", "nan", "a number of seconds"),
        ("SELFMIGRATE_BACKUP", "maybe", "one of 1, true"),
        ("SELFMIGRATE_BACKUP_KEEP", "0", "1 or more"),
    ],
)
def test_a_bad_environment_value_names_the_variable(tmp_path: Path, variable: str, value: str, wanted: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, environ={variable: value})
    assert variable in str(e.value)
    assert repr(value) in str(e.value)
    assert wanted in str(e.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lock_timeout = \"5\"", "lock_timeout is '5'; it takes a number of seconds"),
        ("lock_timeout = true", "it takes a number of seconds"),
        ("backup = 1", "backup is 1; it takes true or false"),
        ("backup_keep = 0", "1 or more, or \"all\""),
        ("migrations = []", "a package name or a directory, or a list of them"),
        ("table = 3", "it takes a name"),
        ("lock-timeout = 5", "has no setting 'lock-timeout'. Did you mean 'lock_timeout'?"),
        ("on_failure = \"log\"", "has no setting 'on_failure'. The settings are: database, migrations"),
    ],
)
def test_a_bad_table_value_names_the_file_and_key(tmp_path: Path, line: str, expected: str) -> None:
    pyproject = write(tmp_path / "pyproject.toml", f"[tool.selfmigrate]\n{line}\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, environ={})
    assert str(pyproject) in str(e.value)
    assert expected in str(e.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool.selfmigrate\ndatabase = 'x'\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as e:
        load(tmp_path / ".", environ={})
    assert str(pyproject) in str(e.value)


def test_tool_selfmigrate_must_be_a_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool]\nselfmigrate = 'app.db'\n")
    with pytest.raises(ConfigError, match=r"tool.selfmigrate must be a table"):
        load(tmp_path, environ={})


def test_locations_paths_packages_and_urls(tmp_path: Path) -> None:
    write(tmp_path / "src" / "pkg" / "migrations" / "__init__.py", "")
    write(
        tmp_path / "pyproject.toml",
        """
        [tool.selfmigrate]
        database = "sqlite:///data/app.db"
        migrations = ["pkg.migrations", "db/migrations", "migrations", "installed.elsewhere", "/abs/m"]
        backup_dir = "snapshots"
        backup_keep = "all"
        """,
    )
    settings = load(tmp_path, environ={})
    assert settings["database"] == str(tmp_path / "data" / "app.db")
    assert settings["migrations"] == (
        str(tmp_path / "src" / "pkg" / "migrations"),  # a src layout
        str(tmp_path / "db" / "migrations"),
        str(tmp_path / "migrations"),  # a bare name is a folder of the project
        "installed.elsewhere",  # not in the project: a package to import
        "/abs/m",
    )
    assert settings["backup_dir"] == str(tmp_path / "snapshots")
    assert settings["backup_keep"] is None


@pytest.mark.parametrize(
    ("database", "expected"),
    [("sqlite:////abs/app.db", "sqlite:////abs/app.db"), ("postgresql://u@h/db", "postgresql://u@h/db")],
)
def test_absolute_and_server_urls_are_kept(tmp_path: Path, database: str, expected: str) -> None:
    write(tmp_path / "pyproject.toml", f'[tool.selfmigrate]\ndatabase = "{database}"\n')
    assert load(tmp_path, environ={})["database"] == expected


def test_document_is_json_with_each_origin(project: Path) -> None:
    settings = load(project, environ={"SELFMIGRATE_BACKUP_KEEP": "3"}).given("lock_timeout", 1.0)
    document = json.loads(json.dumps(settings.document()))
    assert document["pyproject"] == str(project / "pyproject.toml")
    assert document["precedence"] == ["option", "environment", "pyproject", "default"]
    assert document["settings"]["migrations"]["value"] == [str(project / "flask_app" / "migrations")]
    assert document["settings"]["backup_keep"] == {
        "value": 3,
        "source": "environment",
        "origin": "SELFMIGRATE_BACKUP_KEEP",
    }
    assert document["settings"]["lock_timeout"] == {"value": 1.0, "source": "option", "origin": "--lock-timeout"}
    assert document["settings"]["table"]["source"] == "pyproject"
