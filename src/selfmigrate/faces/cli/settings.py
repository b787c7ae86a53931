"""What the commands work on: :class:`Settings`, from the project's settings or a Flask app, and the options.

Holds the settings object every command receives (with where each value came from),
the global options every command accepts before or after its name, the group class
that turns a :class:`SelfMigrateError` into its exit code, and small helpers the
commands share.
Must not define commands, nor know an engine (the backend comes from backends.select).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import click

from ...config import Options
from ...errors import ConfigError, SelfMigrateError

if t.TYPE_CHECKING:
    from ...backends.base import Backend
    from ...core.locations import LocationSpec
    from ...core.runner import Runner
    from ..project_settings import ProjectSettings

#: Where ``ctx.meta`` keeps the options given before :class:`Settings` exists.
_GIVEN_KEY = "selfmigrate.given"


@dataclass
class Settings:
    """What the commands work on, from options, the environment or the Flask app."""

    #: The database file (or URL), if one was given.
    database: str | None
    #: The migrations locations given (may be empty).
    migrations: tuple[LocationSpec, ...]
    #: Every other setting (tracker table, lock timeout, snapshots…).
    options: Options = field(default_factory=Options)
    #: Each setting's value and where it came from (what ``config`` shows).
    project: ProjectSettings | None = None

    @classmethod
    def from_project(cls, project: ProjectSettings) -> Settings:
        """The settings of a project (pyproject.toml, environment, defaults)."""
        from ..project_settings import BY_NAME, options_of

        options = options_of({name: project[name] for name in BY_NAME})
        return cls(
            database=project["database"], migrations=tuple(project["migrations"]), options=options, project=project
        )

    def given(self, name: str, value: t.Any, origin: str) -> None:
        """Record that the command line set ``name`` to ``value`` (it wins over every other source)."""
        if self.project is not None:
            self.project = self.project.given(name, value, origin)
        if name == "database":
            self.database = value
        elif name == "migrations":
            self.migrations = tuple(value)
        else:
            self.options = self.options.replace(**{name: value})

    def require_database(self) -> str:
        """The database, or a usage error saying how to give one."""
        if not self.database:
            raise ConfigError(
                "No database given. Pass --database PATH, set SELFMIGRATE_DATABASE, or add"
                ' database = "PATH" to [tool.selfmigrate] in pyproject.toml.'
            )
        return self.database

    def require_migrations(self) -> tuple[LocationSpec, ...]:
        """The migrations locations, or a usage error saying how to give them."""
        if not self.migrations:
            raise ConfigError(
                "No migrations location given. Pass --migrations PACKAGE_OR_DIR, set"
                ' SELFMIGRATE_MIGRATIONS, or add migrations = "PACKAGE_OR_DIR" to [tool.selfmigrate]'
                " in pyproject.toml."
            )
        return self.migrations

    def runner(self) -> Runner:
        """A :class:`~selfmigrate.Runner` for the database and migrations given."""
        from ...core.runner import Runner

        return Runner.from_options(self.require_database(), list(self.require_migrations()), self.options)

    def backend(self) -> Backend:
        """The backend of the database given (for commands that need no migrations)."""
        from ...backends.select import open_backend

        return open_backend(self.require_database(), self.options)


class SelfMigrateGroup(click.Group):
    """A command group that turns :class:`SelfMigrateError` into an exit code."""

    def invoke(self, ctx: click.Context) -> t.Any:
        try:
            return super().invoke(ctx)
        except SelfMigrateError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)


pass_settings = click.make_pass_decorator(Settings)


def record_option(ctx: click.Context, param: click.Parameter, value: t.Any) -> None:
    """Callback of a global option: the value given on the command line wins over every other source.

    Given before the command, it waits in ``ctx.meta`` until the group has built
    :class:`Settings` (:func:`apply_given`); given after it, it changes them at once.
    """
    if value is None or value == () or param.name is None:
        return
    origin = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
    settings = ctx.find_object(Settings)
    if settings is None:
        ctx.meta.setdefault(_GIVEN_KEY, {})[param.name] = (value, origin)
    else:
        settings.given(param.name, value, origin)


def apply_given(ctx: click.Context, settings: Settings) -> Settings:
    """``settings`` with the global options given before the command applied."""
    for name, (value, origin) in ctx.meta.pop(_GIVEN_KEY, {}).items():
        settings.given(name, value, origin)
    return settings


class GlobalOption(click.Option):
    """An option of the group that every command also accepts after its name.

    Documented once, with the group (docs/cli.rst, "Global options").
    """


def global_options() -> list[click.Option]:
    """The options every command accepts, before or after its name (``status --database X``)."""
    return [
        GlobalOption(
            ["--database", "-d"],
            metavar="PATH",
            expose_value=False,
            callback=record_option,
            help="The database file (or sqlite:/// URL). Env: SELFMIGRATE_DATABASE.",
        ),
        GlobalOption(
            ["--migrations", "-m"],
            metavar="LOCATION",
            multiple=True,
            expose_value=False,
            callback=record_option,
            help="A migrations package (myapp.migrations) or directory; repeat for several."
            " Env: SELFMIGRATE_MIGRATIONS (several separated by spaces).",
        ),
        GlobalOption(
            ["--table"],
            metavar="NAME",
            expose_value=False,
            callback=record_option,
            help="The tracker table's name (default: schema_migrations). Env: SELFMIGRATE_TABLE.",
        ),
        GlobalOption(
            ["--lock-timeout"],
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            expose_value=False,
            callback=record_option,
            help="How long to wait for the database's write lock (default: 60). Env: SELFMIGRATE_LOCK_TIMEOUT.",
        ),
        GlobalOption(
            ["--backup-dir"],
            metavar="DIR",
            expose_value=False,
            callback=record_option,
            help="Where apply/rollback put snapshots and snapshots/restore look for them (default: the"
            " database's folder). Env: SELFMIGRATE_BACKUP_DIR.",
        ),
    ]


def accept_global_options(command: click.Command) -> click.Command:
    """Let ``command`` take the global options after its name too (those it has no own option for), and ``-h``."""
    # -h on the command itself, not only through the group's context: click builds
    # (and keeps) a command's help option from the first context it is used in.
    command.context_settings.setdefault("help_option_names", ["-h", "--help"])
    own = {opt for param in command.params for opt in param.opts}
    for option in global_options():
        if not own.intersection(option.opts):
            command.params.append(option)
    return command


def sibling(ctx: click.Context, name: str) -> str:
    """The full command line of another command of this group (``python -m selfmigrate apply``)."""
    parent = ctx.parent
    return f"{parent.command_path} {name}" if parent is not None else name
