"""The command line: ``python -m selfmigrate <command>``: the group, its options, :func:`main`.

Holds the ``cli`` group (settings from options and the environment), the table of its
commands, and :func:`main`, the only place that configures logging. Must not hold a
command's work (commands, status, repair do) nor know Flask (faces.flask uses this).
"""

from __future__ import annotations

import logging
import sys
import typing as t

import click

from ...config import DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE, Options
from . import commands, repair, status
from .settings import SelfMigrateGroup, Settings


@click.group(
    cls=SelfMigrateGroup,
    help="Apply and manage selfmigrate migrations.",
    epilog="Exit codes: 0 done (status: up to date); 1 status: migrations pending, or a confirmation"
    " declined; 2 bad input or configuration; 3 a problem that needs a person (edited, out-of-order,"
    " missing or interrupted migrations); 4 the write lock was not obtained in time; 5 a migration"
    " failed (and was rolled back); 6 a snapshot could not be taken or restored.",
)
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
    default=DEFAULT_TABLE,
    show_default=True,
    metavar="NAME",
    help="The tracker table's name. Env: SELFMIGRATE_TABLE.",
)
@click.option(
    "--lock-timeout",
    envvar="SELFMIGRATE_LOCK_TIMEOUT",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the database's write lock. Env: SELFMIGRATE_LOCK_TIMEOUT.",
)
@click.option(
    "--backup-dir",
    envvar="SELFMIGRATE_BACKUP_DIR",
    metavar="DIR",
    help="Where apply/rollback put snapshots and snapshots/restore look for them (default: the"
    " database's folder). Env: SELFMIGRATE_BACKUP_DIR.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    database: str | None,
    migrations: tuple[str, ...],
    table: str,
    lock_timeout: float,
    backup_dir: str | None,
) -> None:
    """The ``python -m selfmigrate`` group: settings from options and the environment."""
    options = Options(table=table, lock_timeout=lock_timeout, backup_dir=backup_dir)
    ctx.obj = Settings(database=database, migrations=migrations, options=options)


for _command in (
    commands.create,
    status.status,
    commands.plan,
    commands.apply_command,
    commands.rollback,
    status.history,
    commands.verify_command,
    repair.baseline_command,
    repair.adopt_command,
    repair.rehash,
    repair.snapshots,
    repair.restore,
    repair.resolve,
):
    cli.add_command(_command)


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
