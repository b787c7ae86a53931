"""The command line: ``python -m selfmigrate <command>``.

Each command is a few lines around a library call. Results go to stdout,
diagnostics (log records, errors) to stderr. An expected error ends the
command with a one-line-per-fact message and the error's exit code, never a
traceback. Only :func:`main` configures logging; the library never does.
"""

from __future__ import annotations

import logging
import sys
import typing as t
from dataclasses import dataclass

import click

from .create import create as create_migration
from .errors import ConfigError, SelfMigrateError
from .registry import LocationSpec

#: Where ``create`` writes when no migrations location is given.
DEFAULT_MIGRATIONS_DIR = "migrations"


@dataclass
class Settings:
    """What the commands work on, from options, the environment or the Flask app."""

    #: The database file, if one was given.
    database: str | None
    #: The migrations locations given (may be empty).
    migrations: tuple[LocationSpec, ...]

    def require_database(self) -> str:
        """The database, or a usage error saying how to give one."""
        if not self.database:
            raise ConfigError("No database given. Pass --database PATH or set SELFMIGRATE_DATABASE.")
        return self.database

    def require_migrations(self) -> tuple[LocationSpec, ...]:
        """The migrations locations, or a usage error saying how to give them."""
        if not self.migrations:
            raise ConfigError(
                "No migrations location given. Pass --migrations PACKAGE_OR_DIR or set"
                " SELFMIGRATE_MIGRATIONS."
            )
        return self.migrations


class SelfMigrateGroup(click.Group):
    """A command group that turns :class:`SelfMigrateError` into an exit code."""

    def invoke(self, ctx: click.Context) -> t.Any:
        try:
            return super().invoke(ctx)
        except SelfMigrateError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)


pass_settings = click.make_pass_decorator(Settings)


@click.group(cls=SelfMigrateGroup, help="Apply and manage selfmigrate migrations.")
@click.option(
    "--database",
    "-d",
    envvar="SELFMIGRATE_DATABASE",
    metavar="PATH",
    help="The SQLite database file (or sqlite:/// URL). Env: SELFMIGRATE_DATABASE.",
)
@click.option(
    "--migrations",
    "-m",
    envvar="SELFMIGRATE_MIGRATIONS",
    metavar="LOCATION",
    multiple=True,
    help="A migrations package (myapp.migrations) or directory; repeat for several."
    " Env: SELFMIGRATE_MIGRATIONS (several separated by spaces).",
)
@click.pass_context
def cli(ctx: click.Context, database: str | None, migrations: tuple[str, ...]) -> None:
    ctx.obj = Settings(database=database, migrations=migrations)


@cli.command()
@click.argument("message")
@click.option("--sql", is_flag=True, help="Write a .sql migration instead of a .py one.")
@pass_settings
def create(settings: Settings, message: str, sql: bool) -> None:
    """Write the next numbered migration, named after MESSAGE, from a template.

    It goes into the (first) migrations location, by default ./migrations.
    Prints the new file's path.
    """
    location = settings.migrations[0] if settings.migrations else DEFAULT_MIGRATIONS_DIR
    path = create_migration(location, message, sql=sql)
    click.echo(str(path))


def configure_logging(level: int = logging.INFO) -> None:
    """Send selfmigrate's log records to stderr, one message per line."""
    logger = logging.getLogger("selfmigrate")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run the command line (``python -m selfmigrate``)."""
    configure_logging()
    cli.main(args=argv, prog_name="python -m selfmigrate")
