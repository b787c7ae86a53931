"""One Options object, the one place a backend is chosen, and an injected backend."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from helpers import dump

import selfmigrate
from selfmigrate import ConfigError, Runner
from selfmigrate.backends.select import engine_of, handles, open_backend
from selfmigrate.backends.sqlite.backend import SQLiteBackend
from selfmigrate.config import (
    DEFAULT_BACKUP_KEEP,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TABLE,
    ENGINE_DEFAULTS,
    FLASK_KEYS,
    Options,
)
from selfmigrate.faces.cli.main import cli
from selfmigrate.faces.project_settings import BY_NAME

if t.TYPE_CHECKING:
    import sqlite3

    from conftest import MigrationsFactory

FILES = {"0001_a.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", "0002_b.sql": "CREATE TABLE b (x);\n"}


# --- Options: every knob and its default in one place ---------------------------------


def test_defaults_are_the_documented_ones() -> None:
    options = Options()
    assert (options.table, options.lock_timeout, options.backup_keep) == ("schema_migrations", 60.0, 5)
    assert (options.allow_out_of_order, options.on_failure, options.target) == (False, "raise", None)
    assert (options.backup, options.backup_dir) == (True, None)
    assert (DEFAULT_TABLE, DEFAULT_LOCK_TIMEOUT, DEFAULT_BACKUP_KEEP) == ("schema_migrations", 60.0, 5)


def test_every_face_starts_from_the_same_defaults(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    location = make_migrations(FILES, package=False)
    assert Runner(tmp_path / "r.sqlite", location).options == Options()
    app = Flask("config_test_app", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config.update(DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location)
    selfmigrate.apply(app)
    assert app.extensions["selfmigrate"].options == Options()
    assert {key: app.config[key] for key in FLASK_KEYS} == {k: getattr(Options(), f) for k, f in FLASK_KEYS.items()}
    # The command line's defaults are the project settings' (faces/project_settings.py), from config.py.
    # The PostgreSQL settings are None in Options (their variable, else the default).
    defaults = {name: s.default for name, s in BY_NAME.items() if name not in ("database", "migrations")}
    assert defaults == {name: ENGINE_DEFAULTS.get(name, getattr(Options(), name)) for name in defaults}
    assert all(getattr(Options(), name) is None for name in ENGINE_DEFAULTS)
    assert {p.name for p in cli.params} >= {"table", "lock_timeout"}


def test_replace_copies_and_refuses_unknown_settings() -> None:
    options = Options(table="t")
    changed = options.replace(backup=False)
    assert (changed.table, changed.backup, options.backup) == ("t", False, True)
    with pytest.raises(TypeError, match="no_such"):
        options.replace(no_such=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"on_failure": "ignore"}, "on_failure must be one of raise, log, not 'ignore'"),
        ({"lock_timeout": -1}, "lock_timeout must be a number of seconds, 0 or more, not -1"),
        ({"lock_timeout": True}, "lock_timeout must be a number"),
        ({"backup_keep": 0}, "backup_keep must be 1 or more"),
    ],
)
def test_check_names_the_setting(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Options().replace(**changes).check()


def test_a_bad_setting_is_refused_even_when_the_database_is_up_to_date(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    selfmigrate.migrate(db_path, location)
    before = dump(db_path)
    with pytest.raises(ConfigError, match="backup_keep"):
        selfmigrate.migrate(db_path, location, backup_keep=0)
    assert dump(db_path) == before


# --- choosing the backend ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "engine"),
    [
        ("app.sqlite", "sqlite"),
        (Path("app.sqlite"), "sqlite"),
        ("sqlite:///app.sqlite", "sqlite"),
        ("sqlite+pysqlite:///app.sqlite", "sqlite"),
        ("data:2024.sqlite", "sqlite"),  # a file name with a colon, not a URL
        ("mysql://host/db", None),
    ],
)
def test_the_engine_comes_from_the_url_scheme(database: str | Path, engine: str | None) -> None:
    assert engine_of(database) == engine


def test_handles_only_urls_of_supported_engines() -> None:
    assert handles("sqlite:///x.db") and handles("sqlite+pysqlite:///x.db")
    assert not handles("mysql://host/db") and not handles("x.db")


def test_a_url_of_an_engine_without_backend_is_a_config_error(
    make_migrations: MigrationsFactory, tmp_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    with pytest.raises(ConfigError, match=r"'mysql://host/db' names an engine .* sqlite://"):
        selfmigrate.migrate("mysql://host/db", location)
    with pytest.raises(ConfigError, match="mysql://"):
        open_backend("mysql://host/db", lock_timeout=1.0)
    assert list(tmp_path.iterdir()) == [Path(location)]  # nothing written anywhere


def test_a_sqlite_path_gets_the_sqlite_backend(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path}/app.sqlite", lock_timeout=2.0)
    assert isinstance(backend, SQLiteBackend)
    assert (backend.path, backend.lock_timeout) == (tmp_path / "app.sqlite", 2.0)


# --- the backend is injected, never swapped ---------------------------------------------


class CountingBackend(SQLiteBackend):
    """A real SQLite backend that counts its connections."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, lock_timeout=5.0)
        self.connections = 0

    def connect(self, *, create: bool = True) -> sqlite3.Connection:
        self.connections += 1
        return super().connect(create=create)


def test_the_runner_uses_the_backend_it_is_given(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(FILES, package=False)
    backend = CountingBackend(db_path)
    runner = Runner.from_options(db_path, location, Options(backup=False), backend=backend)
    assert runner.backend is backend and runner.tracker.backend is backend
    report = runner.apply()
    assert [r.version for r in report.applied] == [1, 2]
    assert backend.connections >= 1
    assert runner.status().up_to_date


def test_loggers_keep_their_documented_names(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(FILES, package=False)
    with caplog.at_level(logging.INFO, logger="selfmigrate"):
        selfmigrate.migrate(db_path, location)
        selfmigrate.create(location, "third")
    names = {record.name for record in caplog.records}
    assert {"selfmigrate.runner", "selfmigrate.create"} <= names
