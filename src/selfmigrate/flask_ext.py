"""The Flask face: :func:`apply` in an app factory.

This module never imports Flask at import time (``import selfmigrate`` must stay
cheap and work without Flask); it only uses the app object it is given.
"""

from __future__ import annotations

import importlib.util
import os
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .defaults import DEFAULT_BACKUP_KEEP, DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE, FAILURE_POLICIES
from .errors import ConfigError
from .startup import migrate

if t.TYPE_CHECKING:
    from flask import Flask

    from .registry import LocationSpec, LocationsSpec
    from .report import MigrationReport

#: The key of :attr:`flask.Flask.extensions` that holds :class:`FlaskState`.
EXTENSION_KEY = "selfmigrate"
#: The default name of the ``flask`` command group (``SELFMIGRATE_CLI_GROUP``);
#: Flask-Migrate's is ``db``.
DEFAULT_CLI_GROUP = "selfmigrate"


@dataclass
class FlaskState:
    """What :func:`apply` resolved and did, kept in ``app.extensions["selfmigrate"]``."""

    #: The database file.
    database: Path
    #: The migrations locations.
    migrations: LocationsSpec
    #: The tracker table.
    table: str
    #: Seconds to wait for the write lock.
    lock_timeout: float
    #: Whether out-of-order migrations are applied.
    allow_out_of_order: bool
    #: What :func:`apply` did at startup.
    report: MigrationReport | None = None
    #: Whether a snapshot is taken before migrating a non-empty database.
    backup: bool = True
    #: Where snapshots go (``None``: the database's folder).
    backup_dir: str | None = None
    #: How many snapshots to keep (``None``: all).
    backup_keep: int | None = DEFAULT_BACKUP_KEEP


def apply(app: Flask) -> MigrationReport:
    """Migrate the app's database to the newest version; call it in the app factory.

    Reads the ``SELFMIGRATE_*`` config keys once (see the configuration docs),
    applies every pending migration, and stores a :class:`FlaskState` in
    ``app.extensions["selfmigrate"]``.

    :returns: what was applied.
    :raises MigrationError: a migration failed (unless ``SELFMIGRATE_ON_FAILURE``
        is ``"log"``); the database is as it was before that migration.
    :raises ConfigError: no database is configured, or :func:`apply` was already
        called for this app.
    """
    if EXTENSION_KEY in app.extensions:
        raise ConfigError(
            f"selfmigrate.apply() was already called for app {app.import_name!r}. Call it once,"
            " in the app factory."
        )
    config = app.config
    config.setdefault("SELFMIGRATE_TABLE", DEFAULT_TABLE)
    config.setdefault("SELFMIGRATE_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)
    config.setdefault("SELFMIGRATE_ON_FAILURE", "raise")
    config.setdefault("SELFMIGRATE_ALLOW_OUT_OF_ORDER", False)
    config.setdefault("SELFMIGRATE_BACKUP", True)
    config.setdefault("SELFMIGRATE_BACKUP_DIR", None)
    config.setdefault("SELFMIGRATE_BACKUP_KEEP", DEFAULT_BACKUP_KEEP)
    config.setdefault("SELFMIGRATE_CLI_GROUP", DEFAULT_CLI_GROUP)
    on_failure = config["SELFMIGRATE_ON_FAILURE"]
    if on_failure not in FAILURE_POLICIES:
        raise ConfigError(
            f"SELFMIGRATE_ON_FAILURE must be one of {', '.join(FAILURE_POLICIES)}, not {on_failure!r}."
        )
    state = FlaskState(
        database=database_for(app),
        migrations=migrations_for(app),
        table=config["SELFMIGRATE_TABLE"],
        lock_timeout=config["SELFMIGRATE_LOCK_TIMEOUT"],
        allow_out_of_order=bool(config["SELFMIGRATE_ALLOW_OUT_OF_ORDER"]),
        backup=bool(config["SELFMIGRATE_BACKUP"]),
        backup_dir=_backup_dir_for(app),
        backup_keep=config["SELFMIGRATE_BACKUP_KEEP"],
    )
    app.extensions[EXTENSION_KEY] = state
    _register_commands(app, config["SELFMIGRATE_CLI_GROUP"])
    state.report = migrate(
        state.database,
        state.migrations,
        table=state.table,
        lock_timeout=state.lock_timeout,
        allow_out_of_order=state.allow_out_of_order,
        on_failure=on_failure,
        backup=state.backup,
        backup_dir=state.backup_dir,
        backup_keep=state.backup_keep,
    )
    return state.report


def _backup_dir_for(app: Flask) -> str | None:
    """``SELFMIGRATE_BACKUP_DIR``; a relative path is taken from ``app.instance_path``."""
    value = app.config["SELFMIGRATE_BACKUP_DIR"]
    if not value:
        return None
    return os.path.join(app.instance_path, os.fspath(value))


def _register_commands(app: Flask, name: str | None) -> None:
    """Add the ``flask <name>`` command group (none when ``name`` is empty)."""
    if not name:
        return
    if name in app.cli.commands:
        raise ConfigError(
            f"App {app.import_name!r} already has a command named {name!r}; set"
            " SELFMIGRATE_CLI_GROUP to another name for selfmigrate's commands (or to None for none)."
        )
    from .cli import flask_group

    app.cli.add_command(flask_group(name))


def database_for(app: Flask) -> Path:
    """The database file from the app's config.

    ``SELFMIGRATE_DATABASE``, else ``DATABASE``, else a SQLite
    ``SQLALCHEMY_DATABASE_URI``. Each may be a path or a SQLAlchemy URL
    (a string or a ``sqlalchemy.engine.URL``), resolved to the file
    SQLAlchemy opens for it (see ``selfmigrate.sqlite.database_path``). A
    relative path is taken from ``app.instance_path``, whose folder is created
    if missing, as Flask-SQLAlchemy does for ``SQLALCHEMY_DATABASE_URI``.
    """
    from .sqlite import database_path

    config = app.config
    keys = ("SELFMIGRATE_DATABASE", "DATABASE", "SQLALCHEMY_DATABASE_URI")
    for key in keys:
        value = config.get(key)
        if not value:
            continue
        if not isinstance(value, (str, os.PathLike)):
            # A sqlalchemy.engine.URL (never imported here): its text form parses back to it.
            render = getattr(value, "render_as_string", None)
            value = render(hide_password=False) if callable(render) else str(value)
        if key == "SQLALCHEMY_DATABASE_URI" and not str(value).startswith(("sqlite:", "sqlite+")):
            continue
        try:
            path = database_path(value, app.instance_path, flask_sqlalchemy=key == "SQLALCHEMY_DATABASE_URI")
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from e
        if path.parent == Path(app.instance_path) or Path(app.instance_path) in path.parents:
            os.makedirs(app.instance_path, exist_ok=True)
        return path
    raise ConfigError(
        f"No SQLite database is configured for app {app.import_name!r}; selfmigrate looked"
        f" at {', '.join(keys)}. Set SELFMIGRATE_DATABASE (or DATABASE) to a file path, for"
        " example app.config['DATABASE'] = 'app.sqlite' (relative to the instance folder)."
    )


def migrations_for(app: Flask) -> LocationsSpec:
    """The migrations locations from the app's config.

    ``SELFMIGRATE_MIGRATIONS``, else the package ``<app.import_name>.migrations``,
    else the folder ``<app.root_path>/migrations``. In ``SELFMIGRATE_MIGRATIONS``,
    a relative directory path (a :class:`os.PathLike`, or a string with a path
    separator) is taken from ``app.root_path``, not from the working directory,
    which differs between ``flask run``, gunicorn and a container.
    """
    configured = app.config.get("SELFMIGRATE_MIGRATIONS")
    if configured:
        if isinstance(configured, (str, os.PathLike)):
            return _from_root(app, configured)
        return [_from_root(app, location) for location in configured]
    package = f"{app.import_name}.migrations"
    try:
        if importlib.util.find_spec(package) is not None:
            return package
    except (ImportError, ValueError):
        pass
    folder = Path(app.root_path) / "migrations"
    if folder.is_dir():
        return folder
    raise ConfigError(
        f"No migrations found for app {app.import_name!r}: there is no package {package} and no"
        f" folder {folder}. Create one of them, or set SELFMIGRATE_MIGRATIONS to a package name"
        " or a directory."
    )


def _from_root(app: Flask, location: LocationSpec) -> LocationSpec:
    """A relative directory path taken from ``app.root_path``; package names as given."""
    if isinstance(location, str) and "/" not in location and os.sep not in location:
        return location
    path = Path(location)
    return path if path.is_absolute() else Path(app.root_path) / path
