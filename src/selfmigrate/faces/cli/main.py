"""The command line: ``python -m selfmigrate <command>``: the group, its options, :func:`main`.

Holds the ``cli`` group (settings from the options, the environment and pyproject.toml), the table of its
commands, and :func:`main`, the only place that configures logging. Must not hold a
command's work (commands, status, repair do) nor know Flask (faces.flask uses this).
"""

from __future__ import annotations

import logging
import sys
import typing as t

import click

from . import commands, configuration, repair, status, trial
from .settings import SelfMigrateGroup, Settings, accept_global_options, apply_given, global_options

#: ``-h`` as well as ``--help``, for the group and every command (click passes it down).
CONTEXT_SETTINGS: dict[str, t.Any] = {"help_option_names": ["-h", "--help"]}


@click.group(
    cls=SelfMigrateGroup,
    context_settings=CONTEXT_SETTINGS,
    help="Apply and manage selfmigrate migrations.\n\nSettings come from the options (before or after"
    " the command), else SELFMIGRATE_* environment variables, else the [tool.selfmigrate] table of the"
    " nearest pyproject.toml, else the defaults; 'config' shows each one and where it came from.",
    epilog="Exit codes: 0 done (status: up to date); 1 status: migrations pending, lint: findings, or a"
    " confirmation declined; 2 bad input or configuration; 3 a problem that needs a person (edited,"
    " out-of-order, missing or interrupted migrations, a pending file that cannot load); 4 the write lock"
    " was not obtained in time; 5 a migration failed (and was rolled back), or would fail (dry run);"
    " 6 a snapshot could not be taken or restored; 7 the database is ahead of this code by a migration"
    " not marked compatible.",
    params=global_options(),
)
@click.version_option(package_name="selfmigrate", prog_name="selfmigrate", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """The ``python -m selfmigrate`` group: settings from the options, the environment, pyproject.toml."""
    from ..project_settings import load

    ctx.obj = apply_given(ctx, Settings.from_project(load()))


for _command in (
    configuration.config_command,
    commands.create,
    status.status,
    commands.plan,
    commands.apply_command,
    commands.rollback,
    status.history,
    trial.lint_command,
    commands.verify_command,
    repair.baseline_command,
    repair.adopt_command,
    repair.rehash,
    repair.snapshots,
    repair.restore,
    repair.resolve,
):
    cli.add_command(accept_global_options(_command))


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
