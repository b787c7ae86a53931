"""The Flask face: :func:`apply` in an app factory, and the ``flask`` command group.

Holds the translation of an app's config (``SELFMIGRATE_*`` keys) into
:class:`~selfmigrate.config.Options` and the group that runs the CLI's commands with it.
Must not import Flask or click at import time, nor know an engine or the runner.
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

from ..config import DEFAULT_CLI_GROUP, DEFAULT_MIGRATIONS_DIR, FAILURE_POLICIES, FLASK_KEYS, Options
from ..core.locations import default_location, from_base
from ..errors import ConfigError
from ..startup import migrate_with

if t.TYPE_CHECKING:
    import click
    from flask import Flask

    from ..core.locations import LocationsSpec
    from ..report import MigrationReport

#: The key of :attr:`flask.Flask.extensions` that holds :class:`FlaskState`.
EXTENSION_KEY = "selfmigrate"


class FlaskState:
    """What :func:`apply` resolved and did, kept in ``app.extensions["selfmigrate"]``.

    A plain class, not a dataclass: making one costs a third of a millisecond of
    every app's start (the budget of ``apply(app)`` over ``migrate()`` is one).
    """

    #: The database file.
    database: Path | str
    #: The migrations locations.
    migrations: LocationsSpec
    #: Every other setting, read from the app's config.
    options: Options
    #: What :func:`apply` did at startup.
    report: MigrationReport | None

    def __init__(
        self,
        database: Path | str,
        migrations: LocationsSpec,
        options: Options,
        report: MigrationReport | None = None,
    ) -> None:
        self.database = database
        self.migrations = migrations
        self.options = options
        self.report = report

    def __repr__(self) -> str:
        return (
            f"FlaskState(database={self.database!r}, migrations={self.migrations!r},"
            f" options={self.options!r}, report={self.report!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlaskState):
            return NotImplemented
        mine = (self.database, self.migrations, self.options, self.report)
        return mine == (other.database, other.migrations, other.options, other.report)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    @property
    def table(self) -> str:
        """The tracker table."""
        return self.options.table

    @table.setter
    def table(self, value: str) -> None:
        self.options.table = value

    @property
    def lock_timeout(self) -> float:
        """Seconds to wait for the write lock."""
        return self.options.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, value: float) -> None:
        self.options.lock_timeout = value

    @property
    def allow_out_of_order(self) -> bool:
        """Whether out-of-order migrations are applied."""
        return self.options.allow_out_of_order

    @allow_out_of_order.setter
    def allow_out_of_order(self, value: bool) -> None:
        self.options.allow_out_of_order = value

    @property
    def backup(self) -> bool:
        """Whether a snapshot is taken before migrating a non-empty database."""
        return self.options.backup

    @backup.setter
    def backup(self, value: bool) -> None:
        self.options.backup = value

    @property
    def backup_dir(self) -> str | os.PathLike[str] | None:
        """Where snapshots go (``None``: the database's folder)."""
        return self.options.backup_dir

    @backup_dir.setter
    def backup_dir(self, value: str | os.PathLike[str] | None) -> None:
        self.options.backup_dir = value

    @property
    def backup_keep(self) -> int | None:
        """How many snapshots to keep (``None``: all)."""
        return self.options.backup_keep

    @backup_keep.setter
    def backup_keep(self, value: int | None) -> None:
        self.options.backup_keep = value


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
    options = options_for(app)
    state = FlaskState(database=database_for(app), migrations=migrations_for(app), options=options)
    app.extensions[EXTENSION_KEY] = state
    _register_commands(app, app.config["SELFMIGRATE_CLI_GROUP"])
    state.report = migrate_with(state.database, state.migrations, options)
    return state.report


def options_for(app: Flask) -> Options:
    """The :class:`~selfmigrate.config.Options` from the app's ``SELFMIGRATE_*`` keys.

    Each key missing from the config is set to its default (``app.config.setdefault``),
    so that the app's config shows what was used.
    """
    config = app.config
    defaults = Options()
    for key, field in FLASK_KEYS.items():
        config.setdefault(key, getattr(defaults, field))
    config.setdefault("SELFMIGRATE_CLI_GROUP", DEFAULT_CLI_GROUP)
    options = Options(**{field: config[key] for key, field in FLASK_KEYS.items()})
    options.allow_out_of_order = bool(options.allow_out_of_order)
    options.backup = bool(options.backup)
    options.backup_dir = _backup_dir_for(app)
    if options.on_failure not in FAILURE_POLICIES:
        raise ConfigError(
            f"SELFMIGRATE_ON_FAILURE must be one of {', '.join(FAILURE_POLICIES)}, not {options.on_failure!r}."
        )
    return options


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
    app.cli.add_command(_lazy_group(name))


#: The ``flask <group> --help`` text (and the group's line in ``flask --help``).
GROUP_HELP = "Apply and manage selfmigrate migrations of this app's database (settings from the app's config)."


def _lazy_group(name: str) -> click.Group:
    """A stand-in for :func:`flask_group` that builds it only when a command line uses it.

    Registering the real group would import the command line (its commands,
    the runner's options) at every start of the app; this one costs a class.
    Flask has imported click already.
    """
    import click

    class LazyFlaskGroup(click.Group):
        """``flask <name>``: the real group is made on first use (see :func:`flask_group`)."""

        def __init__(self) -> None:
            self._real: click.Group | None = None
            super().__init__(name, help=GROUP_HELP)

        @property
        def commands(self) -> t.MutableMapping[str, click.Command]:
            """The real group's table of commands (the CLI's own)."""
            return self.real().commands

        @commands.setter
        def commands(self, value: t.MutableMapping[str, click.Command]) -> None:
            pass  # click.Group.__init__ sets an empty table; the real group's is the one

        def real(self) -> click.Group:
            if self._real is None:
                self._real = flask_group(name)
            return self._real

        def make_context(
            self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: t.Any
        ) -> click.Context:
            # The context (and so the command it invokes) is the real group's.
            return self.real().make_context(info_name, args, parent, **extra)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            return self.real().get_command(ctx, cmd_name)

        def list_commands(self, ctx: click.Context) -> list[str]:
            return self.real().list_commands(ctx)

    return LazyFlaskGroup()


def flask_group(name: str) -> click.Group:
    """A ``flask`` command group named ``name`` running the same commands as ``python -m selfmigrate``.

    The database, migrations and every setting come from the app's
    ``app.extensions["selfmigrate"]``, which :func:`apply` filled in. Registered
    by :func:`apply`.
    """
    import click
    from flask import current_app
    from flask.cli import with_appcontext

    from .cli.main import cli
    from .cli.settings import SelfMigrateGroup, Settings

    class FlaskCommandGroup(SelfMigrateGroup):
        """The commands of the CLI's group as a ``flask`` command group, set up from the app.

        It shares the group's table of commands (the same dict), so a command
        added there is a ``flask`` command too.
        """

        def __init__(self, name: str, **attrs: t.Any) -> None:
            super().__init__(name, **attrs)
            self.commands = cli.commands

    @with_appcontext
    @click.pass_context
    def settings_from_app(ctx: click.Context) -> None:
        state = current_app.extensions.get(EXTENSION_KEY)
        if not isinstance(state, FlaskState):
            raise ConfigError("The app has no selfmigrate settings; call selfmigrate.apply(app) in its factory.")
        migrations = state.migrations
        locations = (migrations,) if isinstance(migrations, (str, os.PathLike)) else tuple(migrations)
        ctx.obj = Settings(database=str(state.database), migrations=locations, options=state.options)

    return FlaskCommandGroup(
        name=name,
        callback=settings_from_app,
        help=GROUP_HELP,
    )


def database_for(app: Flask) -> Path | str:
    """The database file from the app's config.

    ``SELFMIGRATE_DATABASE``, else ``DATABASE``, else a SQLite
    ``SQLALCHEMY_DATABASE_URI``. Each may be a path or a SQLAlchemy URL
    (a string or a ``sqlalchemy.engine.URL``), resolved to the file
    SQLAlchemy opens for it (see ``selfmigrate.sqlite.database_path``). A
    relative path is taken from ``app.instance_path``, whose folder is created
    if missing, as Flask-SQLAlchemy does for ``SQLALCHEMY_DATABASE_URI``.
    """
    from ..backends.select import database_location, handles

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
        if key == "SQLALCHEMY_DATABASE_URI" and not handles(str(value)):
            continue
        try:
            path = database_location(value, app.instance_path, flask_sqlalchemy=key == "SQLALCHEMY_DATABASE_URI")
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from e
        if isinstance(path, str):
            return path  # a server's URL
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
            return from_base(configured, app.root_path)
        return [from_base(location, app.root_path) for location in configured]
    package = f"{app.import_name}.migrations"
    folder = Path(app.root_path) / DEFAULT_MIGRATIONS_DIR
    found = default_location(package, folder)
    if found is not None:
        return found
    raise ConfigError(
        f"No migrations found for app {app.import_name!r}: there is no package {package} and no"
        f" folder {folder}. Create one of them, or set SELFMIGRATE_MIGRATIONS to a package name"
        " or a directory."
    )
