"""The Flask face: :func:`apply` in an app factory, and the ``flask`` command group.

Holds the translation of an app's config (``SELFMIGRATE_*`` keys) into
:class:`~selfmigrate.config.Options` and the group that runs the CLI's commands with it,
which loads the app itself so that :func:`apply` migrates nothing for those commands.
Must not import Flask or click at import time, nor know an engine or the runner.
"""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

from ..config import (
    DEFAULT_CLI_GROUP,
    DEFAULT_MIGRATIONS_DIR,
    FAILURE_POLICIES,
    FLAG_FALSE,
    FLAG_TRUE,
    FLASK_KEYS,
    Options,
)
from ..core.locations import default_location, from_base
from ..startup import migrate_with

if t.TYPE_CHECKING:
    import click
    from flask import Flask

    from ..core.locations import LocationsSpec
    from ..errors import ConfigError
    from ..report import MigrationReport
    from .cli.settings import Settings

#: The key of :attr:`flask.Flask.extensions` that holds :class:`FlaskState`.
EXTENSION_KEY = "selfmigrate"
#: The key of click's ``ctx.meta`` that the ``flask selfmigrate`` group sets before it
#: loads the app: :func:`apply` then leaves the database as it is, for the command.
DEFER_KEY = "selfmigrate.defer"


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
    #: What :func:`apply` did at startup (``None``: it left migrating to a ``flask selfmigrate`` command).
    report: MigrationReport | None
    #: Where each setting came from, for ``flask selfmigrate config``.
    origins: dict[str, str] | None

    def __init__(
        self,
        database: Path | str,
        migrations: LocationsSpec,
        options: Options,
        report: MigrationReport | None = None,
        origins: dict[str, str] | None = None,
    ) -> None:
        self.database = database
        self.migrations = migrations
        self.options = options
        self.report = report
        self.origins = origins

    def _fields(self) -> tuple[object, ...]:
        return (self.database, self.migrations, self.options, self.report, self.origins)

    def __repr__(self) -> str:
        return (
            f"FlaskState(database={self.database!r}, migrations={self.migrations!r}, options={self.options!r},"
            f" report={self.report!r}, origins={self.origins!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlaskState):
            return NotImplemented
        return self._fields() == other._fields()

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


def _config_error(message: str) -> ConfigError:
    """A :class:`~selfmigrate.ConfigError`, its module imported only then: an app's every
    start calls :func:`apply`, and a good config never needs the errors module."""
    return _config_error_class()(message)


def _config_error_class() -> type[ConfigError]:
    """:class:`~selfmigrate.ConfigError`, imported when one is caught (see :func:`_config_error`)."""
    from ..errors import ConfigError

    return ConfigError


def apply(app: Flask) -> MigrationReport:
    """Migrate the app's database to the newest version; call it in the app factory.

    Reads the ``SELFMIGRATE_*`` config keys once (see the configuration docs),
    applies every pending migration, and stores a :class:`FlaskState` in
    ``app.extensions["selfmigrate"]``.

    When the app is loaded for a ``flask selfmigrate`` command, nothing is
    migrated: the command works on the database as it is (``status`` shows what
    is pending, ``rollback`` is not undone by the next start), and the report
    returned is empty.

    :returns: what was applied.
    :raises MigrationError: a migration failed (unless ``SELFMIGRATE_ON_FAILURE``
        is ``"log"``); the database is as it was before that migration.
    :raises ConfigError: no database is configured, or :func:`apply` was already
        called for this app.
    """
    if EXTENSION_KEY in app.extensions:
        raise _config_error(
            f"selfmigrate.apply() was already called for app {app.import_name!r}. Call it once, in the app factory."
        )
    origins: dict[str, str] = {}
    options = options_for(app, origins)
    deferred = loaded_for_command()
    database = database_for(app, origins)
    migrations = migrations_for(app, origins, deferred=deferred)
    state = FlaskState(database=database, migrations=migrations, options=options, origins=origins)
    app.extensions[EXTENSION_KEY] = state
    _register_commands(app, app.config["SELFMIGRATE_CLI_GROUP"])
    if deferred:
        from ..report import MigrationReport

        return MigrationReport(database=os.fspath(database))
    state.report = migrate_with(state.database, state.migrations, options)
    return state.report


def loaded_for_command() -> bool:
    """Whether the app is being loaded by the ``flask selfmigrate`` group, for one of its commands.

    The group is a Flask CLI plugin (entry point ``flask.commands``), so Flask
    finds it without loading the app; the group marks click's context, then
    loads the app. Cheap when there is no command line: click is not imported.
    """
    click = sys.modules.get("click")
    if click is None:
        return False
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.meta.get(DEFER_KEY) is True


def options_for(app: Flask, origins: dict[str, str] | None = None) -> Options:
    """The :class:`~selfmigrate.config.Options` from the app's ``SELFMIGRATE_*`` keys.

    Each key missing from the config is set to its default (``app.config.setdefault``),
    so that the app's config shows what was used.

    :param origins: filled in with the config key of each setting the app sets.
    """
    config = app.config
    if origins is not None:
        origins.update({field: f"app.config[{key!r}]" for key, field in FLASK_KEYS.items() if key in config})
    defaults = Options()
    for key, field in FLASK_KEYS.items():
        config.setdefault(key, getattr(defaults, field))
    config.setdefault("SELFMIGRATE_CLI_GROUP", DEFAULT_CLI_GROUP)
    options = Options(**{field: config[key] for key, field in FLASK_KEYS.items()})
    options.allow_out_of_order = _flag("SELFMIGRATE_ALLOW_OUT_OF_ORDER", options.allow_out_of_order)
    options.backup = _flag("SELFMIGRATE_BACKUP", options.backup)
    if isinstance(options.backup_keep, str) and options.backup_keep.lower() == "all":
        options.backup_keep = None  # as the variable and pyproject.toml take it
    options.backup_dir = _backup_dir_for(app)
    if options.on_failure not in FAILURE_POLICIES:
        raise _config_error(
            f"SELFMIGRATE_ON_FAILURE must be one of {', '.join(FAILURE_POLICIES)}, not {options.on_failure!r}."
        )
    return options


def _flag(key: str, value: object) -> bool:
    """A flag key's value: text as the ``SELFMIGRATE_*`` variables take it, anything else as Python's truth.

    ``app.config.from_prefixed_env()`` leaves ``FLASK_SELFMIGRATE_BACKUP=no`` (or
    ``False``, ``off``: not JSON) a string, and a non-empty string is true.

    :raises ConfigError: text that is no flag, naming the key.
    """
    if not isinstance(value, str):
        return bool(value)
    if value.strip().lower() in FLAG_TRUE:
        return True
    if value.strip().lower() in FLAG_FALSE:
        return False
    raise _config_error(
        f"{key} is {value!r}; it takes True or False (as text: one of {', '.join(FLAG_TRUE)} or"
        f" {', '.join(FLAG_FALSE)}, any case)."
    )


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
        raise _config_error(
            f"App {app.import_name!r} already has a command named {name!r}; set"
            " SELFMIGRATE_CLI_GROUP to another name for selfmigrate's commands (or to None for none)."
        )
    app.cli.add_command(_stand_in(name))


def _stand_in(name: str) -> click.Group:
    """A stand-in for :func:`flask_group` that builds it when a command line first uses it.

    Building the real group at every start of the app would import the command
    line's settings and define its classes: several milliseconds of each
    ``apply(app)`` (issue 10 gives it one). Flask has imported click already.
    """
    import click

    class FlaskGroupStandIn(click.Group):
        """``flask <name>``: delegates to the real group, made on first use."""

        def __init__(self) -> None:
            super().__init__(name, help=_GROUP_HELP)
            self._real: click.Group | None = None

        def real(self) -> click.Group:
            if self._real is None:
                self._real = flask_group(name)
            return self._real

        def make_context(
            self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: t.Any
        ) -> click.Context:
            # The context, and so the command it invokes, is the real group's.
            return self.real().make_context(info_name, args, parent, **extra)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            return self.real().get_command(ctx, cmd_name)

        def list_commands(self, ctx: click.Context) -> list[str]:
            return self.real().list_commands(ctx)

    return FlaskGroupStandIn()


#: The ``flask <group>`` help text (also the group's line in ``flask --help``).
_GROUP_HELP = (
    "Apply and manage selfmigrate migrations of this app's database (settings from the app's config)."
    " Loading the app for these commands migrates nothing: they see the database as it is."
)


def flask_group(name: str) -> click.Group:
    """A ``flask`` command group named ``name`` running the same commands as ``python -m selfmigrate``.

    The database, migrations and every setting come from the app's
    ``app.extensions["selfmigrate"]``, which :func:`apply` filled in. Registered
    by :func:`apply`, and as the Flask CLI plugin ``selfmigrate``
    (:data:`selfmigrate.faces.flask_command.cli`), which Flask finds before it
    loads the app: the group then loads it itself, and :func:`apply` leaves the
    database as it is for the command.
    """
    import click
    from flask import current_app
    from flask.cli import ScriptInfo

    from .cli.settings import SelfMigrateGroup

    class FlaskCommandGroup(SelfMigrateGroup):
        """The commands of the CLI's group as a ``flask`` command group, set up from the app.

        They are looked up in the CLI's table of commands when used, so that
        registering the group costs no import of the commands.
        """

        def list_commands(self, ctx: click.Context) -> list[str]:
            from .cli.main import cli

            return sorted(cli.commands)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            from .cli.main import cli

            return cli.commands.get(cmd_name)

    @click.pass_context
    def settings_from_app(ctx: click.Context) -> None:
        ctx.meta[DEFER_KEY] = True
        if current_app:  # loaded before the group ran (a group registered under another name)
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        else:
            app = ctx.ensure_object(ScriptInfo).load_app()
            ctx.with_resource(app.app_context())
        state = app.extensions.get(EXTENSION_KEY)
        if not isinstance(state, FlaskState):
            raise _config_error(
                f"App {app.import_name!r} has no selfmigrate settings; call selfmigrate.apply(app) in its factory."
            )
        group = app.config.get("SELFMIGRATE_CLI_GROUP")
        if group != ctx.info_name:
            where = f"'flask {group}'" if group else "none (SELFMIGRATE_CLI_GROUP is None)"
            raise _config_error(f"App {app.import_name!r} names its selfmigrate commands {where}; use that.")
        ctx.obj = settings_of(state)

    return FlaskCommandGroup(
        name=name,
        callback=settings_from_app,
        context_settings={"help_option_names": ["-h", "--help"]},
        help=_GROUP_HELP,
    )


def settings_of(state: FlaskState) -> Settings:
    """The CLI's settings from what :func:`apply` resolved, each with its origin."""
    from .cli.settings import Settings
    from .project_settings import BY_NAME, ProjectSettings, Value

    migrations = state.migrations
    locations = (migrations,) if isinstance(migrations, (str, os.PathLike)) else tuple(migrations)
    origins = state.origins or {}
    values: dict[str, Value] = {}
    for name, setting in BY_NAME.items():
        if name == "database":
            value: t.Any = str(state.database)
        elif name == "migrations":
            value = tuple(os.fspath(m) for m in locations)
        else:
            value = getattr(state.options, name)
        origin = origins.get(name, "default")
        values[name] = Value(setting, value, "default" if origin == "default" else "app", origin)
    project = ProjectSettings(
        pyproject=None,
        values=values,
        precedence=("option", "app", "default"),
        label="Settings of the app (its config):",
    )
    return Settings(database=str(state.database), migrations=locations, options=state.options, project=project)


def database_for(app: Flask, origins: dict[str, str] | None = None) -> Path | str:
    """The database file from the app's config.

    ``SELFMIGRATE_DATABASE``, else ``DATABASE``, else a ``SQLALCHEMY_DATABASE_URI``
    that selfmigrate has a backend for. Each may be a path or a SQLAlchemy URL
    (a string or a ``sqlalchemy.engine.URL``), resolved to the file
    SQLAlchemy opens for it (see ``selfmigrate.sqlite.database_path``). A
    relative path is taken from ``app.instance_path``, whose folder is created
    if missing, as Flask-SQLAlchemy does for ``SQLALCHEMY_DATABASE_URI``.

    :param origins: filled in with the config key the database came from.
    """
    from ..backends.select import database_location, handles

    config = app.config
    keys = ("SELFMIGRATE_DATABASE", "DATABASE", "SQLALCHEMY_DATABASE_URI")
    passed_over: str | None = None
    for key in keys:
        value = config.get(key)
        if not value:
            continue
        if not isinstance(value, (str, os.PathLike)):
            # A sqlalchemy.engine.URL (never imported here): its text form parses back to it.
            render = getattr(value, "render_as_string", None)
            value = render(hide_password=False) if callable(render) else str(value)
        if key == "SQLALCHEMY_DATABASE_URI" and not handles(str(value)):
            passed_over = str(value)
            continue
        try:
            path = database_location(value, app.instance_path, flask_sqlalchemy=key == "SQLALCHEMY_DATABASE_URI")
        except _config_error_class() as e:
            raise _config_error(f"{key}: {e}") from e
        if origins is not None:
            origins["database"] = f"app.config[{key!r}]"
        if isinstance(path, str):
            return path  # a server's URL
        if path.parent == Path(app.instance_path) or Path(app.instance_path) in path.parents:
            os.makedirs(app.instance_path, exist_ok=True)
        return path
    if passed_over is not None:
        raise _config_error(
            f"App {app.import_name!r} has SQLALCHEMY_DATABASE_URI = {hide_password(passed_over)!r}, a"
            " database selfmigrate has no backend for (it migrates SQLite: sqlite:///FILE), and no"
            " SELFMIGRATE_DATABASE or DATABASE. Set SELFMIGRATE_DATABASE to the database selfmigrate"
            " should migrate, or use a SQLite URI."
        )
    raise _config_error(
        f"No SQLite database is configured for app {app.import_name!r}; selfmigrate looked"
        f" at {', '.join(keys)}. Set SELFMIGRATE_DATABASE (or DATABASE) to a file path, for"
        " example app.config['DATABASE'] = 'app.sqlite' (relative to the instance folder)."
    )


def hide_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (for messages)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"


def migrations_for(app: Flask, origins: dict[str, str] | None = None, *, deferred: bool = False) -> LocationsSpec:
    """The migrations locations from the app's config.

    ``SELFMIGRATE_MIGRATIONS``, else the package ``<app.import_name>.migrations``,
    else the folder ``<app.root_path>/migrations``. In ``SELFMIGRATE_MIGRATIONS``,
    a relative directory path (a :class:`os.PathLike`, or a string with a path
    separator) is taken from ``app.root_path``, not from the working directory,
    which differs between ``flask run``, gunicorn and a container.

    :param origins: filled in with where the locations came from.
    :param deferred: the app is loaded for a ``flask selfmigrate`` command: when
        there are no migrations yet, the folder is where ``create`` writes the first.
    """
    configured = app.config.get("SELFMIGRATE_MIGRATIONS")
    if configured:
        if origins is not None:
            origins["migrations"] = "app.config['SELFMIGRATE_MIGRATIONS']"
        if isinstance(configured, (str, os.PathLike)):
            return from_base(configured, app.root_path)
        return [from_base(location, app.root_path) for location in configured]
    package = f"{app.import_name}.migrations"
    folder = Path(app.root_path) / DEFAULT_MIGRATIONS_DIR
    found = default_location(package, folder)
    if found is None and deferred:
        found = folder
    if found is not None:
        if origins is not None:
            kind = "folder" if found == folder else "package"
            origins["migrations"] = f"default: the {kind} {found} (no SELFMIGRATE_MIGRATIONS)"
        return found
    raise _config_error(
        f"No migrations found for app {app.import_name!r}: there is no package {package} and no"
        f' folder {folder}. Create one of them (flask selfmigrate create "first change" makes the'
        " folder), or set SELFMIGRATE_MIGRATIONS to a package name or a directory."
    )
