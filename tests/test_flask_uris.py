"""A SQLite URL resolves to exactly the file SQLAlchemy's engine opens (and Flask-SQLAlchemy's, for its key).

The ground truth is the engine itself: each URL is opened with SQLAlchemy (or
Flask-SQLAlchemy) and ``PRAGMA database_list`` names the file it really uses;
that file must be the one selfmigrate migrated.
"""

from __future__ import annotations

import os
import sqlite3
import typing as t
from pathlib import Path

import pytest
from flask import Flask

import selfmigrate
from selfmigrate.backends.sqlite.connection import database_path
from selfmigrate.errors import ConfigError
from selfmigrate.faces.flask import EXTENSION_KEY, FlaskState

sqlalchemy = pytest.importorskip("sqlalchemy")
flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

MIGRATIONS = {"0001_init.sql": "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\n"}

# {abs} is replaced by an absolute folder of the test's own.
URLS = [
    "sqlite:///app.db",
    "sqlite:///my%20app.db",
    "sqlite:///a%3Fb.db",
    "sqlite:///a+b%23c.db",
    "sqlite:///sub/app.db",
    "sqlite:///app.db?timeout=5",
    "sqlite:///app.db?timeout=5&check_same_thread=false",
    "sqlite:///app.db?mode=ro",  # ignored without uri=true (SQLAlchemy warns)
    "sqlite+pysqlite:///app.db",
    "sqlite:///file:data.db?mode=rwc&uri=true",
    "sqlite:///file:data.db?uri=true",
    "sqlite:///file:my%2520data.db?uri=true",
    "sqlite:///file:sub/data.db?uri=true&cache=shared",
    "sqlite:///file:data.db?uri=true&vfs=unix-dotfile",
    "sqlite:///app.db?uri=true",  # no "file:": SQLite takes the name literally
    "sqlite:///app.db?uri=true&mode=rwc",
    "sqlite:////{abs}/abs.db",
    "sqlite:////{abs}/my%20abs.db?timeout=2",
    "sqlite:///file:{abs}/uri.db?uri=true",
    "sqlite:///file:///{abs}/uri3.db?uri=true&mode=rwc",
    "sqlite:///file://localhost/{abs}/uri4.db?uri=true",
]

REFUSED = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file:data.db?uri=true&mode=memory",
    "sqlite:///file:data.db?uri=true&vfs=memdb",
    "sqlite:///file:?uri=true",
    "sqlite://somehost/app.db",
    "sqlite:///app.db?uri=maybe",
    "sqlite+pysqlcipher:///app.db",
    "sqlite:///file://otherhost/app.db?uri=true",
    "sqlite:///app.db?timeout=1&timeout=2",
]


def _fill(url: str, folder: Path) -> str:
    return url.replace("/{abs}", str(folder)).replace("{abs}", str(folder))


def _opened_file(engine: t.Any) -> Path:
    """The main database file an engine really opens."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("PRAGMA database_list").fetchall()
    [main] = [row for row in rows if row[1] == "main"]
    assert main[2], f"{engine.url} is not a file database"
    return Path(main[2])


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def _folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    instance, cwd, absolute = tmp_path / "instance", tmp_path / "cwd", tmp_path / "abs"
    for folder in (instance / "sub", cwd / "sub", absolute):
        folder.mkdir(parents=True)
    return instance, cwd, absolute


def _app(tmp_path: Path, instance: Path, migrations: str, **config: t.Any) -> Flask:
    app = Flask("uri_app", root_path=str(tmp_path), instance_path=str(instance))
    app.config.update(SELFMIGRATE_MIGRATIONS=migrations, SELFMIGRATE_CLI_GROUP=None, **config)
    return app


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
@pytest.mark.parametrize("template", URLS)
def test_sqlalchemy_database_uri_is_the_file_flask_sqlalchemy_opens(
    make_migrations: MigrationsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    instance, cwd, absolute = _folders(tmp_path)
    monkeypatch.chdir(cwd)  # relative paths must not depend on the working directory
    url = _fill(template, absolute)
    app = _app(tmp_path, instance, make_migrations(MIGRATIONS), SQLALCHEMY_DATABASE_URI=url)
    selfmigrate.apply(app)
    state = app.extensions[EXTENSION_KEY]
    assert isinstance(state, FlaskState)
    db = flask_sqlalchemy.SQLAlchemy(app)
    with app.app_context():
        opened = _opened_file(db.engine)
        db.engine.dispose()
    assert opened == state.database.resolve()
    assert {"note", "schema_migrations"} <= _tables(opened)  # the app's engine sees the migrated database
    assert not any(cwd.glob("*.db*"))


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
@pytest.mark.parametrize("key", ["SELFMIGRATE_DATABASE", "DATABASE"])
@pytest.mark.parametrize("template", URLS)
def test_selfmigrate_database_url_is_the_file_sqlalchemy_opens_from_the_instance_folder(
    make_migrations: MigrationsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, key: str
) -> None:
    # selfmigrate's own keys take a relative path from the instance folder: the file is
    # the one SQLAlchemy opens for the same URL with the instance folder as working directory.
    instance, cwd, absolute = _folders(tmp_path)
    monkeypatch.chdir(cwd)
    url = _fill(template, absolute)
    app = _app(tmp_path, instance, make_migrations(MIGRATIONS), **{key: url})
    selfmigrate.apply(app)
    migrated = app.extensions[EXTENSION_KEY].database
    monkeypatch.chdir(instance)
    engine = sqlalchemy.create_engine(url)
    try:
        opened = _opened_file(engine)
    finally:
        engine.dispose()
    assert opened == migrated.resolve()
    assert {"note", "schema_migrations"} <= _tables(opened)


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
@pytest.mark.parametrize("template", URLS)
def test_database_path_agrees_with_sqlalchemys_connect_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    # The same table through make_url + the dialect's create_connect_args, then sqlite3.
    _, cwd, absolute = _folders(tmp_path)
    monkeypatch.chdir(cwd)
    url = sqlalchemy.engine.make_url(_fill(template, absolute))
    args, kwargs = url.get_dialect()().create_connect_args(url)
    conn = sqlite3.connect(*args, **{k: v for k, v in kwargs.items() if k in ("uri", "timeout")})
    try:
        [main] = [row for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
    finally:
        conn.close()
    assert Path(main[2]) == database_path(_fill(template, absolute)).resolve()
    # A URL object from SQLAlchemy is accepted as its text.
    app = Flask("uri_obj", root_path=str(tmp_path), instance_path=str(tmp_path / "inst"))
    app.config["SELFMIGRATE_DATABASE"] = url
    from selfmigrate.faces.flask import database_for

    expected = database_path(_fill(template, absolute), app.instance_path)
    assert database_for(app) == expected


@pytest.mark.parametrize("key", ["SQLALCHEMY_DATABASE_URI", "SELFMIGRATE_DATABASE"])
@pytest.mark.parametrize("url", REFUSED)
def test_in_memory_or_unresolvable_urls_are_a_config_error_naming_key_and_value(
    make_migrations: MigrationsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, key: str
) -> None:
    instance, cwd, absolute = _folders(tmp_path)
    monkeypatch.chdir(cwd)
    app = _app(tmp_path, instance, make_migrations(MIGRATIONS), **{key: url})
    with pytest.raises(ConfigError) as info:
        selfmigrate.apply(app)
    assert str(info.value).startswith(f"{key}: ") and repr(url) in str(info.value)
    assert EXTENSION_KEY not in app.extensions
    # No database was created, anywhere it could have gone.
    assert [p for folder in (instance, cwd, absolute) for p in folder.rglob("*") if p.is_file()] == []


def test_the_memory_url_flask_sqlalchemy_would_turn_into_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="in memory"):
        database_path("sqlite:///file::memory:?uri=true", tmp_path, flask_sqlalchemy=True)


def test_urls_resolve_without_sqlalchemy_being_imported_by_selfmigrate() -> None:
    import subprocess
    import sys

    code = (
        "import sys, selfmigrate.faces.flask, selfmigrate.sqlite as s;"
        "s.database_path('sqlite:///file:x.db?uri=true', '/i', flask_sqlalchemy=True);"
        "print('sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "value", ["file:plain.db", "file:my%20plain.db?mode=rwc", "file:sub/x%3Fy.db#frag", "file:///{abs}/p.db"]
)
def test_a_plain_file_uri_is_the_file_sqlite_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    _, cwd, absolute = _folders(tmp_path)
    monkeypatch.chdir(cwd)
    value = _fill(value, absolute)
    conn = sqlite3.connect(value, uri=True)
    try:
        [main] = [row for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
    finally:
        conn.close()
    assert Path(main[2]) == database_path(value).resolve()
