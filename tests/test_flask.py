"""The Flask face: selfmigrate.apply(app) in real Flask apps."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest
from flask import Flask

import selfmigrate
from selfmigrate import ConfigError, LockTimeout, MigrationError
from selfmigrate.faces.flask import EXTENSION_KEY, FlaskState

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

MIGRATIONS = {
    "0001_create_saved_search.sql": """
        CREATE TABLE saved_search (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        INSERT INTO saved_search (name) VALUES ('first');
    """,
    "0002_add_custom_sql_query.py": """
        def up(conn):
            conn.execute("ALTER TABLE saved_search ADD COLUMN custom_sql_query TEXT")
    """,
}


def columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        conn.close()


def make_app(tmp_path: Path, import_name: str = "flask_test_app", **config: t.Any) -> Flask:
    """A Flask app whose instance folder (not yet created) is under tmp_path."""
    root = tmp_path / "approot"
    root.mkdir(exist_ok=True)
    app = Flask(import_name, root_path=str(root), instance_path=str(tmp_path / "instance"))
    app.config.update(config)
    return app


def test_apply_migrates_the_app_database_and_keeps_state(
    make_migrations: MigrationsFactory, tmp_path: Path
) -> None:
    location = make_migrations(MIGRATIONS)
    app = make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location)
    report = selfmigrate.apply(app)

    database = tmp_path / "instance" / "app.sqlite"
    assert [r.version for r in report.applied] == [1, 2]
    assert "custom_sql_query" in columns(database, "saved_search")
    state = app.extensions[EXTENSION_KEY]
    assert isinstance(state, FlaskState)
    assert state.database == database and state.migrations == location and state.report is report
    # Defaults are written into the config, where the app can see them.
    assert app.config["SELFMIGRATE_TABLE"] == "schema_migrations"
    assert app.config["SELFMIGRATE_LOCK_TIMEOUT"] == 60.0
    assert app.config["SELFMIGRATE_ON_FAILURE"] == "raise"
    assert app.config["SELFMIGRATE_ALLOW_OUT_OF_ORDER"] is False


def test_the_app_factory_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's create_app, in a real package with its migrations beside it."""
    package = tmp_path / "site" / "factoryapp_xyz"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            import selfmigrate

            def create_app(test_config=None):
                app = Flask(__name__, instance_relative_config=True)
                app.config.from_mapping(DATABASE="app.sqlite")
                if test_config:
                    app.config.update(test_config)
                selfmigrate.apply(app)

                @app.get("/")
                def index():
                    from sqlite3 import connect
                    conn = connect(app.config["SELFMIGRATE_DATABASE_PATH"])
                    names = [r[0] for r in conn.execute("SELECT name FROM saved_search")]
                    conn.close()
                    return {"names": names}

                return app
            """
        )
    )
    (package / "migrations" / "__init__.py").write_text("")
    for name, text in MIGRATIONS.items():
        (package / "migrations" / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "factoryapp_xyz", raising=False)
    from factoryapp_xyz import create_app  # type: ignore[import-not-found]

    database = tmp_path / "db" / "app.sqlite"
    database.parent.mkdir()
    app = create_app({"DATABASE": str(database), "SELFMIGRATE_DATABASE_PATH": str(database)})
    assert app.extensions[EXTENSION_KEY].migrations == "factoryapp_xyz.migrations"
    assert versions(database) == [1, 2]
    assert app.test_client().get("/").get_json() == {"names": ["first"]}
    # The next start (a restarted container) finds nothing to do.
    again = create_app({"DATABASE": str(database), "SELFMIGRATE_DATABASE_PATH": str(database)})
    assert again.extensions[EXTENSION_KEY].report.applied == []
    for module in [m for m in sys.modules if m.startswith("factoryapp_xyz")]:
        monkeypatch.delitem(sys.modules, module)


def test_relative_path_creates_the_instance_folder(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS))
    assert not (tmp_path / "instance").exists()
    selfmigrate.apply(app)
    assert app.extensions[EXTENSION_KEY].database == tmp_path / "instance" / "app.sqlite"
    assert versions(tmp_path / "instance" / "app.sqlite") == [1, 2]


def test_absolute_path_is_used_as_is(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    database = tmp_path / "abs.sqlite"
    app = make_app(tmp_path, DATABASE=str(database), SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS))
    selfmigrate.apply(app)
    assert versions(database) == [1, 2]
    assert not (tmp_path / "instance").exists()


def test_selfmigrate_database_wins_over_database(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        SELFMIGRATE_DATABASE="mine.sqlite",
        DATABASE="other.sqlite",
        SQLALCHEMY_DATABASE_URI="sqlite:///third.sqlite",
        SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS),
    )
    selfmigrate.apply(app)
    assert sorted(p.name for p in (tmp_path / "instance").iterdir()) == ["mine.sqlite"]


def test_sqlalchemy_sqlite_uri_is_a_fallback(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(
        tmp_path, SQLALCHEMY_DATABASE_URI="sqlite:///sa.sqlite", SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS)
    )
    selfmigrate.apply(app)
    assert versions(tmp_path / "instance" / "sa.sqlite") == [1, 2]


def test_sqlalchemy_absolute_uri(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    database = tmp_path / "abs_sa.sqlite"
    app = make_app(
        tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}", SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS)
    )
    assert database.is_absolute()
    selfmigrate.apply(app)
    assert versions(database) == [1, 2]
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize(
    "config",
    [{}, {"SQLALCHEMY_DATABASE_URI": "mysql://db/app"}, {"DATABASE": ""}],
    ids=["nothing", "not-sqlite", "empty"],
)
def test_no_database_configured_lists_the_keys(
    make_migrations: MigrationsFactory, tmp_path: Path, config: dict[str, str]
) -> None:
    app = make_app(tmp_path, SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS), **config)
    with pytest.raises(ConfigError) as info:
        selfmigrate.apply(app)
    for key in ("SELFMIGRATE_DATABASE", "DATABASE", "SQLALCHEMY_DATABASE_URI"):
        assert key in str(info.value)
    assert EXTENSION_KEY not in app.extensions
    assert not (tmp_path / "instance").exists()


def test_in_memory_database_names_the_key(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(tmp_path, SELFMIGRATE_DATABASE=":memory:", SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS))
    with pytest.raises(ConfigError, match="SELFMIGRATE_DATABASE: .*in memory"):
        selfmigrate.apply(app)


def test_default_migrations_package(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    location = make_migrations(MIGRATIONS)
    package = location.rsplit(".", 1)[0]
    app = make_app(tmp_path, import_name=package, DATABASE="app.sqlite")
    selfmigrate.apply(app)
    assert app.extensions[EXTENSION_KEY].migrations == location
    assert versions(tmp_path / "instance" / "app.sqlite") == [1, 2]


def test_default_package_wins_over_folder(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    location = make_migrations(MIGRATIONS)
    app = make_app(tmp_path, import_name=location.rsplit(".", 1)[0], DATABASE="app.sqlite")
    (Path(app.root_path) / "migrations").mkdir()
    (Path(app.root_path) / "migrations" / "0001_other.sql").write_text("CREATE TABLE other (x);")
    selfmigrate.apply(app)
    assert app.extensions[EXTENSION_KEY].migrations == location
    assert "custom_sql_query" in columns(tmp_path / "instance" / "app.sqlite", "saved_search")


def test_default_migrations_folder(tmp_path: Path) -> None:
    app = make_app(tmp_path, import_name="no_such_flask_app_xyz", DATABASE="app.sqlite")
    folder = Path(app.root_path) / "migrations"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(textwrap.dedent(text))
    selfmigrate.apply(app)
    assert app.extensions[EXTENSION_KEY].migrations == folder
    assert versions(tmp_path / "instance" / "app.sqlite") == [1, 2]


def test_relative_migrations_directory_is_taken_from_the_root_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS="db/migrations")
    folder = Path(app.root_path) / "db" / "migrations"
    folder.mkdir(parents=True)
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(textwrap.dedent(text))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # gunicorn and containers start in other folders
    assert [r.version for r in selfmigrate.apply(app).applied] == [1, 2]
    assert app.extensions[EXTENSION_KEY].migrations == folder


def test_sqlalchemy_uri_with_a_driver(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        SQLALCHEMY_DATABASE_URI="sqlite+pysqlite:///sa.sqlite",
        SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS),
    )
    selfmigrate.apply(app)
    assert versions(tmp_path / "instance" / "sa.sqlite") == [1, 2]


def test_no_migrations_found_is_an_error_naming_both_places(tmp_path: Path) -> None:
    app = make_app(tmp_path, import_name="no_such_flask_app_xyz", DATABASE="app.sqlite")
    with pytest.raises(ConfigError) as info:
        selfmigrate.apply(app)
    assert "no_such_flask_app_xyz.migrations" in str(info.value)
    assert str(Path(app.root_path) / "migrations") in str(info.value)
    assert "SELFMIGRATE_MIGRATIONS" in str(info.value)


def test_list_of_migrations_locations(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    first = make_migrations({"0001_create_saved_search.sql": MIGRATIONS["0001_create_saved_search.sql"]})
    second = make_migrations(
        {"0002_add_custom_sql_query.py": MIGRATIONS["0002_add_custom_sql_query.py"]}, package=False
    )
    app = make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=[first, second])
    assert [r.version for r in selfmigrate.apply(app).applied] == [1, 2]


def test_second_apply_is_a_clear_error(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS))
    selfmigrate.apply(app)
    state = app.extensions[EXTENSION_KEY]
    with pytest.raises(ConfigError, match="already called .* Call it once"):
        selfmigrate.apply(app)
    assert app.extensions[EXTENSION_KEY] is state


def test_failing_migration_raises_from_the_factory_and_keeps_the_data(
    make_migrations: MigrationsFactory, tmp_path: Path
) -> None:
    location = make_migrations(MIGRATIONS)
    selfmigrate.apply(make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location))
    database = tmp_path / "instance" / "app.sqlite"
    conn = sqlite3.connect(database)
    before = "\n".join(conn.iterdump())
    conn.close()
    folder = Path(selfmigrate.MigrationRegistry(location).locations[0].root)  # type: ignore[arg-type]
    (folder / "0003_bad.sql").write_text("DELETE FROM saved_search;\nINSERT INTO nowhere VALUES (1);\n")

    app = make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location)
    with pytest.raises(MigrationError) as info:
        selfmigrate.apply(app)
    assert "0003_bad.sql, line 2" in str(info.value)
    conn = sqlite3.connect(database)
    assert "\n".join(conn.iterdump()) == before
    conn.close()


def test_on_failure_log_lets_the_app_start_and_runs_no_later_migration(
    make_migrations: MigrationsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(
        {
            **MIGRATIONS,
            "0003_bad.sql": "UPDATE saved_search SET name = 'changed';\nINSERT INTO nowhere VALUES (1);\n",
            "0004_later.sql": "CREATE TABLE later (x);",
        }
    )
    app = make_app(
        tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location, SELFMIGRATE_ON_FAILURE="log"
    )

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    with caplog.at_level(logging.INFO, logger="selfmigrate"):
        report = selfmigrate.apply(app)
    assert not report.ok and isinstance(report.error, MigrationError)
    assert [r.version for r in report.applied] == [1, 2] and report.pending == (3, 4)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "0003_bad" in errors[0].getMessage()
    assert errors[0].name.startswith("selfmigrate")
    database = tmp_path / "instance" / "app.sqlite"
    assert versions(database) == [1, 2]
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT name FROM saved_search").fetchall() == [("first",)]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'later'").fetchall() == []
    conn.close()
    assert app.test_client().get("/ping").text == "pong"
    assert app.extensions[EXTENSION_KEY].report is report


def test_bad_failure_policy(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    app = make_app(
        tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS), SELFMIGRATE_ON_FAILURE="no"
    )
    with pytest.raises(ConfigError, match="SELFMIGRATE_ON_FAILURE"):
        selfmigrate.apply(app)
    assert not (tmp_path / "instance").exists()


def test_lock_timeout_and_table_keys(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    database = tmp_path / "app.sqlite"
    sqlite3.connect(database).close()
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        app = make_app(
            tmp_path,
            DATABASE=str(database),
            SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS),
            SELFMIGRATE_LOCK_TIMEOUT=0.1,
            SELFMIGRATE_TABLE="history",
        )
        with pytest.raises(LockTimeout, match=str(database)):
            selfmigrate.apply(app)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    app = make_app(
        tmp_path,
        DATABASE=str(database),
        SELFMIGRATE_MIGRATIONS=make_migrations(MIGRATIONS),
        SELFMIGRATE_TABLE="history",
    )
    selfmigrate.apply(app)
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT version FROM history").fetchall() == [(1,), (2,)]
    conn.close()


def test_allow_out_of_order_key(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    location = make_migrations({"0001_a.sql": "CREATE TABLE a (x);", "0003_c.sql": "CREATE TABLE c (x);"})
    selfmigrate.apply(make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location))
    folder = Path(selfmigrate.MigrationRegistry(location).locations[0].root)  # type: ignore[arg-type]
    (folder / "0002_b.sql").write_text("CREATE TABLE b (x);")
    with pytest.raises(selfmigrate.OutOfOrderError):
        selfmigrate.apply(make_app(tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location))
    app = make_app(
        tmp_path, DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS=location, SELFMIGRATE_ALLOW_OUT_OF_ORDER=True
    )
    assert [r.version for r in selfmigrate.apply(app).applied] == [2]


def test_import_selfmigrate_does_not_import_flask_click_or_pytest() -> None:
    code = textwrap.dedent(
        """
        import sys
        import selfmigrate
        import selfmigrate.core.runner, selfmigrate.core.registry, selfmigrate.core.tracker, selfmigrate.sqlite
        import selfmigrate.ops.create, selfmigrate.core.status, selfmigrate.report, selfmigrate.faces.flask
        import selfmigrate.backends.sqlite.backend
        assert callable(selfmigrate.apply) and callable(selfmigrate.migrate)
        heavy = sorted(m for m in ("flask", "werkzeug", "click", "pytest", "jinja2") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
