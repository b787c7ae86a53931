"""What the commands work on: :class:`Settings`, built from options, the environment or a Flask app.

Holds the settings object every command receives, the group class that turns a
:class:`SelfMigrateError` into its exit code, and small helpers the commands share.
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


@dataclass
class Settings:
    """What the commands work on, from options, the environment or the Flask app."""

    #: The database file (or URL), if one was given.
    database: str | None
    #: The migrations locations given (may be empty).
    migrations: tuple[LocationSpec, ...]
    #: Every other setting (tracker table, lock timeout, snapshots…).
    options: Options = field(default_factory=Options)

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

    def runner(self) -> Runner:
        """A :class:`~selfmigrate.Runner` for the database and migrations given."""
        from ...core.runner import Runner

        return Runner.from_options(self.require_database(), list(self.require_migrations()), self.options)

    def backend(self) -> Backend:
        """The backend of the database given (for commands that need no migrations)."""
        from ...backends.select import open_backend

        return open_backend(self.require_database(), lock_timeout=self.options.lock_timeout)


class SelfMigrateGroup(click.Group):
    """A command group that turns :class:`SelfMigrateError` into an exit code."""

    def invoke(self, ctx: click.Context) -> t.Any:
        try:
            return super().invoke(ctx)
        except SelfMigrateError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)


pass_settings = click.make_pass_decorator(Settings)


def sibling(ctx: click.Context, name: str) -> str:
    """The full command line of another command of this group (``python -m selfmigrate apply``)."""
    parent = ctx.parent
    return f"{parent.command_path} {name}" if parent is not None else name
