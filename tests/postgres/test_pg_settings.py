"""The PostgreSQL settings (direct URL, per-migration timeouts, lock retries) from every face, on the real server.

Each of ``direct_database``, ``table_lock_timeout``, ``statement_timeout`` and
``lock_retries`` is taken from a Flask config key, an argument of
:func:`selfmigrate.migrate`, the ``[tool.selfmigrate]`` table and a ``SELFMIGRATE_*``
variable (the last two through the command line, which ``config`` shows); the
variables still reach :func:`selfmigrate.migrate` when it leaves a setting unset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import flask
import pytest
from pghelpers import dump, holding, rows, write

import selfmigrate
from selfmigrate.errors import ConfigError, MigrationError

#: The ways a setting reaches a run.
FACES = ("flask", "migrate", "pyproject", "environment", "environment-migrate")
#: The variables of the settings (cleared for every test: the runner's own must not leak in).
VARIABLES = (
    "SELFMIGRATE_DIRECT_DATABASE",
    "SELFMIGRATE_TABLE_LOCK_TIMEOUT",
    "SELFMIGRATE_STATEMENT_TIMEOUT",
    "SELFMIGRATE_LOCK_RETRIES",
)

#: Records the timeouts each migration ran under (SET LOCAL is visible inside its transaction).
SEEN = {
    "0001_seen.sql": """
        CREATE TABLE seen (version int, lock_timeout text, statement_timeout text);
        INSERT INTO seen VALUES (1, current_setting('lock_timeout'), current_setting('statement_timeout'));
    """,
    "0002_directive.sql": """
        -- migrate:lock-timeout 3s
        INSERT INTO seen VALUES (2, current_setting('lock_timeout'), current_setting('statement_timeout'));
    """,
    "0003_python.py": """
        statement_timeout = "45s"

        def up(conn):
            conn.execute(
                "INSERT INTO seen VALUES (3, current_setting('lock_timeout'), current_setting('statement_timeout'))"
            )
    """,
}
BASE = {"0001_accounts.sql": "CREATE TABLE accounts (id serial PRIMARY KEY, email text);\n"}
ALTER = {"0002_alter.sql": "-- migrate:lock-timeout 50ms\nALTER TABLE accounts ADD COLUMN name text;\n"}
CONCURRENT = {
    "0001_t.sql": "CREATE TABLE t (id int);\n",
    "0002_index.sql": "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
}


@pytest.fixture(autouse=True)
def _no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SELFMIGRATE_")}
    environ.update(extra or {})
    return environ


def _toml(value: object) -> str:
    return json.dumps(value)  # a JSON string or number is a TOML one


def run(
    face: str, url: str, folder: Path, settings: dict[str, t.Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[bool, str]:
    """Apply ``folder`` to ``url`` with ``settings`` given through ``face``: (succeeded, error text).

    A :class:`ConfigError` of an in-process face is raised (the CLI's is exit code 2 and its text).
    """
    if face == "flask":
        app = flask.Flask("pg_settings_app", instance_path=str(tmp_path / "instance"))
        app.config.update(SELFMIGRATE_DATABASE=url, SELFMIGRATE_MIGRATIONS=str(folder))
        app.config.update({f"SELFMIGRATE_{name.upper()}": value for name, value in settings.items()})
        try:
            selfmigrate.apply(app)
        except MigrationError as e:
            return False, str(e)
        return True, ""
    if face in ("migrate", "environment-migrate"):
        if face == "environment-migrate":
            for name, value in settings.items():
                monkeypatch.setenv(f"SELFMIGRATE_{name.upper()}", str(value))
            settings = {}
        try:
            selfmigrate.migrate(url, str(folder), **settings)
        except MigrationError as e:
            return False, str(e)
        return True, ""
    if face == "pyproject":
        project = tmp_path / "project"
        project.mkdir(exist_ok=True)
        lines = [f"{name} = {_toml(value)}" for name, value in {"database": url, **settings}.items()]
        lines.append(f"migrations = {_toml(str(folder))}")
        (project / "pyproject.toml").write_text("[tool.selfmigrate]\n" + "\n".join(lines) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "apply"],
            cwd=project,
            env=_environ(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    else:
        variables = {f"SELFMIGRATE_{name.upper()}": str(value) for name, value in settings.items()}
        done = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "--database", url, "--migrations", str(folder), "apply"],
            cwd=tmp_path,
            env=_environ(variables),
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode == 2:
        raise ConfigError(done.stderr)
    return done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("face", FACES)
def test_the_timeouts_come_from_each_face_and_a_directive_still_wins(
    face: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", SEEN)
    settings = {"table_lock_timeout": "250ms", "statement_timeout": "2min"}
    ok, error = run(face, pg_url, folder, settings, tmp_path, monkeypatch)
    assert ok, error
    assert rows(pg_url, "SELECT * FROM seen ORDER BY version") == [
        (1, "250ms", "2min"),
        (2, "3s", "2min"),  # -- migrate:lock-timeout
        (3, "250ms", "45s"),  # statement_timeout = "45s" in the .py
    ]
    # Back on the defaults, nothing of the settings carried over on the session.
    assert rows(pg_url, "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')") == [("0", "0")]


def test_without_settings_a_migration_runs_under_the_documented_defaults(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", SEEN)
    selfmigrate.migrate(pg_url, str(folder))
    assert rows(pg_url, "SELECT * FROM seen WHERE version = 1") == [(1, "5s", "0")]


@pytest.mark.parametrize("face", FACES)
def test_lock_retries_come_from_each_face(
    face: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    write(folder, ALTER)
    before = dump(pg_url)
    with holding(pg_url, "SELECT * FROM accounts", application_name="web-request"):
        ok, error = run(face, pg_url, folder, {"lock_retries": 0}, tmp_path, monkeypatch)
    assert not ok
    # The default (3) would say "every retry (3)" after retrying for 3.5 s.
    assert "SQLSTATE 55P03" in error and "every retry (0) did too" in error, error
    assert "'web-request'" in error
    assert dump(pg_url) == before


@pytest.mark.parametrize("face", FACES)
def test_the_direct_url_comes_from_each_face(
    face: str, pgbouncer_url: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", CONCURRENT)
    ok, error = run(face, pgbouncer_url, folder, {"direct_database": pg_url}, tmp_path, monkeypatch)
    assert ok, error
    assert rows(pg_url, "SELECT version FROM schema_migrations ORDER BY 1") == [(1,), (2,)]
    assert rows(pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass") == [(True,)]


def test_without_a_direct_url_the_pooler_is_refused_naming_every_way_to_give_one(
    pgbouncer_url: str, pg_url: str, tmp_path: Path
) -> None:
    folder = write(tmp_path / "m", CONCURRENT)
    before = dump(pg_url)
    with pytest.raises(ConfigError) as caught:
        selfmigrate.migrate(pgbouncer_url, str(folder), lock_timeout=30)
    message = str(caught.value)
    assert "SELFMIGRATE_DIRECT_DATABASE=postgresql://user@host:5432/database" in message
    assert "direct_database=" in message and "[tool.selfmigrate]" in message
    assert dump(pg_url) == before


def test_an_argument_wins_over_the_variable_which_wins_over_nothing(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", {"0001_seen.sql": SEEN["0001_seen.sql"]})
    monkeypatch.setenv("SELFMIGRATE_TABLE_LOCK_TIMEOUT", "7s")
    monkeypatch.setenv("SELFMIGRATE_STATEMENT_TIMEOUT", "9s")
    selfmigrate.migrate(pg_url, str(folder), table_lock_timeout="1500ms")
    assert rows(pg_url, "SELECT lock_timeout, statement_timeout FROM seen") == [("1500ms", "9s")]


def test_config_shows_each_setting_and_where_it_came_from(pg_url: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[tool.selfmigrate]\n"
        f"database = {_toml(pg_url)}\n"
        'migrations = "migrations"\n'
        'table_lock_timeout = "2s"\n'
        'statement_timeout = "1min"\n'
        "lock_retries = 5\n"
    )
    variables = {"SELFMIGRATE_LOCK_RETRIES": "1", "SELFMIGRATE_DIRECT_DATABASE": pg_url}
    command = [sys.executable, "-m", "selfmigrate", "config"]
    shown = subprocess.run(
        [*command, "--json"], cwd=project, env=_environ(variables), capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    settings = json.loads(shown.stdout)["settings"]
    got = {name: (settings[name]["value"], settings[name]["origin"]) for name in ("direct_database", "lock_retries")}
    assert got == {
        "direct_database": (pg_url, "SELFMIGRATE_DIRECT_DATABASE"),
        "lock_retries": (1, "SELFMIGRATE_LOCK_RETRIES"),  # the variable wins over the table
    }
    assert (settings["table_lock_timeout"]["value"], settings["table_lock_timeout"]["source"]) == ("2s", "pyproject")
    assert settings["statement_timeout"]["value"] == "1min"
    text = subprocess.run(command, cwd=project, env=_environ(), capture_output=True, text=True, timeout=60).stdout
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")}
    assert lines["lock_retries"] == ["5", "(pyproject.toml)"]
    assert lines["direct_database"] == ["(none)", "(default)"]
    (project / "pyproject.toml").write_text(f"[tool.selfmigrate]\ndatabase = {_toml(pg_url)}\n")
    text = subprocess.run(command, cwd=project, env=_environ(), capture_output=True, text=True, timeout=60).stdout
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")}
    assert (lines["table_lock_timeout"], lines["statement_timeout"]) == (["5s", "(default)"], ["0", "(default)"])
    assert lines["lock_retries"] == ["3", "(default)"]


@pytest.mark.parametrize(
    ("face", "settings", "named"),
    [
        ("flask", {"table_lock_timeout": "5 parsecs"}, "SELFMIGRATE_TABLE_LOCK_TIMEOUT"),
        ("flask", {"lock_retries": -1}, "SELFMIGRATE_LOCK_RETRIES"),
        ("migrate", {"statement_timeout": 30}, "statement_timeout (SELFMIGRATE_STATEMENT_TIMEOUT)"),
        ("migrate", {"lock_retries": "3"}, "lock_retries (SELFMIGRATE_LOCK_RETRIES)"),
        ("migrate", {"direct_database": ""}, "direct_database (SELFMIGRATE_DIRECT_DATABASE)"),
        ("pyproject", {"statement_timeout": "soon"}, "[tool.selfmigrate] statement_timeout"),
        ("pyproject", {"lock_retries": 2.5}, "[tool.selfmigrate] lock_retries"),
        ("environment", {"lock_retries": "many"}, "SELFMIGRATE_LOCK_RETRIES"),
        ("environment", {"table_lock_timeout": "-1s"}, "SELFMIGRATE_TABLE_LOCK_TIMEOUT"),
        ("environment-migrate", {"table_lock_timeout": "5 minutes"}, "SELFMIGRATE_TABLE_LOCK_TIMEOUT"),
        ("environment-migrate", {"lock_retries": "-2"}, "SELFMIGRATE_LOCK_RETRIES"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key_and_changes_nothing(
    face: str, settings: dict[str, t.Any], named: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "m", BASE)
    selfmigrate.migrate(pg_url, str(folder))
    write(folder, {"0002_name.sql": "ALTER TABLE accounts ADD COLUMN name text;\n"})
    before = dump(pg_url)
    with pytest.raises(ConfigError) as caught:
        run(face, pg_url, folder, settings, tmp_path, monkeypatch)
    assert named in str(caught.value)
    assert dump(pg_url) == before
