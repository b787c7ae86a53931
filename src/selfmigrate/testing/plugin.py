"""The pytest plugin (entry point ``selfmigrate``): hooks, the ``migrate_to`` marker, the fixtures.

Holds :func:`migrated_db`, :func:`migrated_db_path`, :func:`migrated_db_factory` and the
fixtures and ini options they read (docs/testing.rst). Must not import the machinery, nor do
anything, for a run that uses none of it: :mod:`.templates` is imported by the fixtures.
"""

from __future__ import annotations

import typing as t

import pytest

from ..config import DEFAULT_TABLE

if t.TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from ..core.locations import LocationSpec
    from .templates import Locations, MigratedDatabaseFactory, TemplateCache

# The names are repeated in selfmigrate.testing.templates; importing it here would cost
# every pytest run that has selfmigrate installed.
MIGRATIONS_OPTION = "selfmigrate_migrations"
TABLE_OPTION = "selfmigrate_table"
CHECK_DATABASE_OPTION = "selfmigrate_check_database"
DATABASE_OPTION = "selfmigrate_database"
MARKER = "migrate_to"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add selfmigrate's ini options."""
    parser.addini(
        MIGRATIONS_OPTION,
        type="linelist",
        default=[],
        help="selfmigrate: migrations for migrated_db (package names or directories relative to the"
        " ini file, one a line)",
    )
    parser.addini(
        TABLE_OPTION,
        default="",
        help=f"selfmigrate: tracker table of the test databases (default: {DEFAULT_TABLE})",
    )
    parser.addini(
        CHECK_DATABASE_OPTION,
        default="",
        help="selfmigrate: database the applied-migrations-unchanged check compares with",
    )
    parser.addini(
        DATABASE_OPTION,
        default="",
        help="selfmigrate: a PostgreSQL server URL for the test databases (postgresql://…; the"
        " SELFMIGRATE_TEST_DATABASE variable wins); unset: SQLite files",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``migrate_to`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(version): migrated_db and migrated_db_path are migrated only up to this version",
    )


@pytest.fixture(scope="session")
def selfmigrate_migrations(pytestconfig: pytest.Config) -> list[str]:
    """Where the migrations for :func:`migrated_db` come from.

    By default the ``selfmigrate_migrations`` ini option: package names or
    directories (relative to the ini file), one a line; without it, the
    project's setting (``SELFMIGRATE_MIGRATIONS``, else ``migrations`` in the
    ``[tool.selfmigrate]`` table of the nearest pyproject.toml). Override this
    fixture in a ``conftest.py`` to use other migrations for the tests of that
    folder; it may return a package name, a path, or a list of them.
    """
    from .templates import ini_migrations, project_settings

    if not any(v.strip() for v in pytestconfig.getini(MIGRATIONS_OPTION)):
        configured = project_settings(pytestconfig)["migrations"]
        if configured:
            return list(configured)
    return ini_migrations(pytestconfig)


@pytest.fixture(scope="session")
def selfmigrate_table(pytestconfig: pytest.Config) -> str:
    """The tracker table of the test databases: the ``selfmigrate_table`` ini option.

    Set it to what the app uses (``SELFMIGRATE_TABLE``), so that the app finds
    nothing pending. Without it, the project's setting (``SELFMIGRATE_TABLE``,
    else ``table`` in ``[tool.selfmigrate]``), else ``schema_migrations``.
    """
    from .templates import ini_table, project_settings

    if not t.cast(str, pytestconfig.getini(TABLE_OPTION)).strip():
        return t.cast(str, project_settings(pytestconfig)["table"])
    return ini_table(pytestconfig)


@pytest.fixture(scope="session")
def selfmigrate_check_database(pytestconfig: pytest.Config) -> Path | None:
    """The database the "applied migrations unchanged" check compares with.

    By default the ``selfmigrate_check_database`` ini option (a path relative to
    the ini file), or ``None``: the check is skipped. Override in conftest.py to
    point at a copy of a production database.
    """
    from .templates import ini_check_database

    return ini_check_database(pytestconfig)


@pytest.fixture(scope="session")
def selfmigrate_database(pytestconfig: pytest.Config) -> str | None:
    """The PostgreSQL server the test databases are made on, or ``None`` for SQLite files.

    ``SELFMIGRATE_TEST_DATABASE`` if set, else the ``selfmigrate_database`` ini
    option: a ``postgresql://`` URL of a database on the server to connect to
    for ``CREATE DATABASE`` (``postgres`` will do). Not the app's
    ``SELFMIGRATE_DATABASE``: the plugin creates and drops databases on that
    server. Override in conftest.py to choose otherwise.
    """
    from .templates import ini_database

    return ini_database(pytestconfig)


@pytest.fixture(scope="session")
def _selfmigrate_templates(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config, selfmigrate_database: str | None
) -> t.Iterator[TemplateCache]:
    """The session's template databases (shared by the xdist workers of one run)."""
    from .templates import session_cache

    cache = session_cache(tmp_path_factory, pytestconfig, selfmigrate_database)
    try:
        yield cache
    finally:
        cache.close()


def _factory(
    request: pytest.FixtureRequest, templates: TemplateCache, migrations: LocationSpec | Locations, table: str
) -> MigratedDatabaseFactory:
    from .templates import MigratedDatabaseFactory, as_locations

    return MigratedDatabaseFactory(
        templates, as_locations(migrations), table, label=request.node.name, module=request.node.path
    )


@pytest.fixture
def migrated_db_factory(
    request: pytest.FixtureRequest,
    _selfmigrate_templates: TemplateCache,
    selfmigrate_migrations: LocationSpec | Locations,
    selfmigrate_table: str,
) -> t.Iterator[MigratedDatabaseFactory]:
    """A factory of migrated databases, for tests that need several or other migrations.

    ``migrated_db_factory()`` returns the path of a new database migrated with
    the ``selfmigrate_migrations``; ``migrated_db_factory("other.migrations",
    to=3)`` one from other migrations, up to version 3. The files are removed
    when the test ends. On PostgreSQL (:func:`selfmigrate_database`) it returns
    the URL of a new database on the server, dropped when the test ends.
    """
    factory = _factory(request, _selfmigrate_templates, selfmigrate_migrations, selfmigrate_table)
    yield factory
    factory.cleanup()


@pytest.fixture
def migrated_db_path(
    request: pytest.FixtureRequest,
    _selfmigrate_templates: TemplateCache,
    selfmigrate_migrations: LocationSpec | Locations,
    selfmigrate_table: str,
) -> t.Iterator[Path]:
    """The path of a fully migrated database file, private to the test.

    For apps that open the database themselves:
    ``create_app({"DATABASE": migrated_db_path})``; ``selfmigrate.apply`` then
    finds nothing pending. With ``@pytest.mark.migrate_to(N)`` the database is
    migrated only up to version ``N``. Removed when the test ends.

    On PostgreSQL (:func:`selfmigrate_database`) it is the URL (a :class:`str`,
    ``postgresql://…/sm_test_…``) of a database of its own on the server,
    cloned from the session's template and dropped when the test ends.
    """
    from .templates import marked_version

    # Not built on migrated_db_factory: one fixture fewer per test.
    factory = _factory(request, _selfmigrate_templates, selfmigrate_migrations, selfmigrate_table)
    try:
        yield factory(to=marked_version(request))
    finally:
        factory.cleanup()


@pytest.fixture
def migrated_db(
    request: pytest.FixtureRequest,
    _selfmigrate_templates: TemplateCache,
    selfmigrate_migrations: LocationSpec | Locations,
    selfmigrate_table: str,
) -> t.Iterator[sqlite3.Connection]:
    """A :class:`sqlite3.Connection` to a fully migrated database, private to the test.

    On PostgreSQL (:func:`selfmigrate_database`) a :class:`psycopg.Connection`
    inside a transaction that is rolled back when the test ends, on a migrated
    database of the xdist worker's own; with :func:`migrated_db_path`, a plain
    connection to that URL.

    ``@pytest.mark.migrate_to(N)`` stops it at version ``N``. The connection is
    closed when the test ends. A test (or a fixture it uses) that also asks for
    :func:`migrated_db_path` gets a connection to that file: both are one
    database. Otherwise no file is needed, and the database is an in-memory copy
    of the migrated template (:meth:`sqlite3.Connection.deserialize`), which is
    several times cheaper than a file copy.
    """
    from .templates import marked_version

    if _selfmigrate_templates.postgres is not None:
        yield from _postgres_db(request, _selfmigrate_templates, selfmigrate_migrations, selfmigrate_table)
        return
    if "migrated_db_path" in request.fixturenames:
        import sqlite3

        conn = sqlite3.connect(request.getfixturevalue("migrated_db_path"))
    else:
        factory = _factory(request, _selfmigrate_templates, selfmigrate_migrations, selfmigrate_table)
        conn = factory.connect_in_memory(to=marked_version(request))
    try:
        yield conn
    finally:
        conn.close()


def _postgres_db(
    request: pytest.FixtureRequest, templates: TemplateCache, migrations: LocationSpec | Locations, table: str
) -> t.Iterator[t.Any]:
    import contextlib

    import psycopg

    from .templates import marked_version

    if "migrated_db_path" in request.fixturenames:
        # Closed, not committed: the database is the test's own and dropped after it.
        with contextlib.closing(psycopg.connect(request.getfixturevalue("migrated_db_path"))) as conn:
            yield conn
        return
    factory = _factory(request, templates, migrations, table)
    with factory.rolled_back(to=marked_version(request)) as conn:
        yield conn
