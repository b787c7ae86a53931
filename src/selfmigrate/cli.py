"""The command line: ``python -m selfmigrate <command>``.

Each command is a few lines around a library call. Results go to stdout,
diagnostics (log records, errors) to stderr. An expected error ends the
command with a one-line-per-fact message and the error's exit code, never a
traceback. Only :func:`main` configures logging; the library never does.
"""

from __future__ import annotations

import json
import logging
import sys
import typing as t
from dataclasses import dataclass

import click

from .create import create as create_migration
from .errors import ConfigError, SelfMigrateError
from .registry import LocationSpec
from .tracker import STARTED as STARTED_STATE

if t.TYPE_CHECKING:
    from .runner import Runner
    from .status import Status

#: Where ``create`` writes when no migrations location is given.
DEFAULT_MIGRATIONS_DIR = "migrations"


@dataclass
class Settings:
    """What the commands work on, from options, the environment or the Flask app."""

    #: The database file, if one was given.
    database: str | None
    #: The migrations locations given (may be empty).
    migrations: tuple[LocationSpec, ...]
    #: The tracker table's name.
    table: str = "schema_migrations"
    #: Seconds to wait for the database's write lock.
    lock_timeout: float = 60.0
    #: Whether pending migrations older than the newest applied one may run.
    allow_out_of_order: bool = False

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
        from .runner import Runner

        return Runner(
            self.require_database(),
            list(self.require_migrations()),
            table=self.table,
            lock_timeout=self.lock_timeout,
            allow_out_of_order=self.allow_out_of_order,
        )


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
@click.option(
    "--table",
    envvar="SELFMIGRATE_TABLE",
    default="schema_migrations",
    show_default=True,
    metavar="NAME",
    help="The tracker table's name. Env: SELFMIGRATE_TABLE.",
)
@click.option(
    "--lock-timeout",
    envvar="SELFMIGRATE_LOCK_TIMEOUT",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the database's write lock. Env: SELFMIGRATE_LOCK_TIMEOUT.",
)
@click.pass_context
def cli(
    ctx: click.Context, database: str | None, migrations: tuple[str, ...], table: str, lock_timeout: float
) -> None:
    ctx.obj = Settings(database=database, migrations=migrations, table=table, lock_timeout=lock_timeout)


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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object (for monitoring).")
@pass_settings
@click.pass_context
def status(ctx: click.Context, settings: Settings, as_json: bool) -> None:
    """Show each migration's state and whether the database is up to date.

    States: applied (with date and duration), pending, missing (applied but its
    file is not in the code), edited (its file changed since it was applied),
    interrupted (a non-transactional migration that never finished).

    Exit code: 0 up to date, 1 migrations pending, 2 bad input or
    configuration, 3 a problem that needs a person (edited, out-of-order,
    missing or interrupted migrations). Never creates a database.
    """
    runner = settings.runner()
    result = runner.status()
    code = status_exit_code(result)
    if as_json:
        document = status_document(result, runner.backend.describe())
        click.echo(json.dumps(document, indent=2))
    else:
        _echo_status(result, runner.backend.describe(), ctx)
    ctx.exit(code)


#: ``status`` exit codes.
UP_TO_DATE, PENDING, PROBLEM = 0, 1, 3


def status_exit_code(result: Status) -> int:
    """0 up to date, 1 pending, 3 something needs a person."""
    if result.edited or result.out_of_order or result.missing or result.interrupted:
        return PROBLEM
    if result.pending:
        return PENDING
    return UP_TO_DATE


def migration_states(result: Status) -> list[dict[str, t.Any]]:
    """One entry per version in the files or the tracker, oldest first."""
    files = {m.version: m for m in result.migrations}
    edited = {m.version for m, _ in result.edited}
    out_of_order = {m.version for m in result.out_of_order}
    entries: list[dict[str, t.Any]] = []
    for version in sorted(set(files) | set(result.applied)):
        migration = files.get(version)
        row = result.applied.get(version)
        if row is None:
            state = "out-of-order" if version in out_of_order else "pending"
        elif row.state == STARTED_STATE:
            state = "interrupted"
        elif migration is None:
            state = "missing"
        elif version in edited:
            state = "edited"
        else:
            state = "applied"
        entries.append(
            {
                "version": version,
                "name": migration.name if migration is not None else row.name if row is not None else "",
                "state": state,
                "file": migration.location if migration is not None else None,
                "applied_at": row.applied_at if row is not None else None,
                "duration_ms": row.duration_ms if row is not None else None,
            }
        )
    return entries


def status_document(result: Status, database: str) -> dict[str, t.Any]:
    """The ``status --json`` object."""
    code = status_exit_code(result)
    return {
        "database": database,
        "current_version": result.current_version,
        "head": result.head,
        "up_to_date": code == UP_TO_DATE,
        "state": {UP_TO_DATE: "up-to-date", PENDING: "pending", PROBLEM: "problem"}[code],
        "pending": [m.version for m in result.pending],
        "migrations": migration_states(result),
    }


def _echo_status(result: Status, database: str, ctx: click.Context) -> None:
    click.echo(f"Database: {database}")
    entries = migration_states(result)
    width = max((len(f"{e['version']:04d}_{e['name']}") for e in entries), default=0)
    for entry in entries:
        label = f"{entry['version']:04d}_{entry['name']}".ljust(width)
        detail = entry["state"]
        if entry["applied_at"] is not None:
            detail += f" {entry['applied_at']} ({entry['duration_ms']:g} ms)"
        click.echo(f"  {label}  {detail}")
    if not entries:
        click.echo("  (no migrations)")
    current = "none" if result.current_version is None else str(result.current_version)
    head = "none" if result.head is None else str(result.head)
    click.echo(f"Current version: {current}; newest migration file: {head}.")
    code = status_exit_code(result)
    if code == UP_TO_DATE:
        click.echo("Up to date.")
    elif code == PENDING:
        click.echo(f"{len(result.pending)} migration(s) pending. Run '{_sibling(ctx, 'apply')}' or restart the app.")
    else:
        click.echo(f"Needs attention: see the states above. Run '{_sibling(ctx, 'verify')}' for details.")


def _sibling(ctx: click.Context, name: str) -> str:
    """The full command line of another command of this group (``python -m selfmigrate apply``)."""
    parent = ctx.parent
    return f"{parent.command_path} {name}" if parent is not None else name


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
