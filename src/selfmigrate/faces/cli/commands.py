"""The commands that migrate: ``create``, ``plan``, ``apply``, ``rollback``, ``verify``.

Each is a few lines around a library call; results to stdout, diagnostics to stderr.
Must not hold migration logic (the core and ops do), nor know an engine.
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import click

from ...config import DEFAULT_MIGRATIONS_DIR
from ...core.plan import version_label
from ...errors import ConfigError
from . import trial
from .settings import Settings, pass_settings

if t.TYPE_CHECKING:
    from ...core.migration import LoadedMigration


@click.command(short_help="Write the next numbered migration from a template.")
@click.argument("message")
@click.option("--sql", is_flag=True, help="Write a .sql migration instead of a .py one.")
@click.option("--edit", is_flag=True, help="Open the new file in $VISUAL or $EDITOR.")
@click.option(
    "--migrations",
    "-m",
    "into",
    metavar="LOCATION",
    help="The directory or package to write into (default: the first migrations location of the settings).",
)
@pass_settings
def create(settings: Settings, message: str, sql: bool, edit: bool, into: str | None) -> None:
    """Write the next numbered migration, named after MESSAGE, from a template.

    It goes into --migrations, else the first migrations location of the
    settings (the group's --migrations, SELFMIGRATE_MIGRATIONS, the
    [tool.selfmigrate] table; under 'flask', the app's), else an existing
    ./migrations folder. A folder it creates inside a package gets an
    __init__.py. Prints the new file's path.
    """
    from ...ops.create import create as create_migration
    from ...ops.create import slugify

    slugify(message)  # a bad message is the first thing to say
    location = into or (settings.migrations[0] if settings.migrations else None)
    if location is None:
        if not os.path.isdir(DEFAULT_MIGRATIONS_DIR):
            raise ConfigError(
                "No migrations location is configured, and there is no ./migrations folder to write"
                ' into. Say where the app reads its migrations: add migrations = "myapp/migrations"'
                " to [tool.selfmigrate] in pyproject.toml (every command then finds it), or pass"
                " --migrations DIR. In a Flask app, 'flask selfmigrate create' writes where"
                " selfmigrate.apply(app) reads."
            )
        location = DEFAULT_MIGRATIONS_DIR
    path = create_migration(location, message, sql=sql)
    here = Path.cwd()
    click.echo(str(path.relative_to(here) if path.is_absolute() and path.is_relative_to(here) else path))
    if edit:
        click.edit(filename=str(path))


@click.command(short_help="Show what 'apply' would run, with its SQL; change nothing.")
@click.option("--to", "target", type=int, metavar="VERSION", help="Apply only up to this version.")
@trial.dry_run_option
@pass_settings
@click.pass_context
def plan(ctx: click.Context, settings: Settings, target: int | None, dry_run: bool) -> None:
    """Show what 'apply' would run, in order, with the SQL of .sql migrations.

    Makes every check 'apply' makes before its first change, and changes
    nothing. Exit code 0, or that of the error 'apply' would meet. With
    --dry-run, applies them to a copy of the database instead (see 'apply').
    """
    if dry_run:
        trial.dry_run(settings, target)
        return
    runner = settings.runner()
    todo = runner.plan(target=target)
    current = runner.status().current_version
    _echo_plan(runner.backend.describe(), current, todo)


def _echo_plan(database: str, current: int | None, todo: t.Sequence[LoadedMigration]) -> None:
    at = f"is at version {version_label(current)}"
    if not todo:
        click.echo(f"Nothing to apply: database {database} {at} and is up to date.")
        return
    click.echo(f"Database {database} {at}; 'apply' would run {len(todo)} migration(s), in this order:")
    for body in todo:
        migration = body.migration
        click.echo(f"\n{migration.id}  ({migration.location})")
        if body.up_sql is not None:
            for line in body.up_sql.text.strip("\n").splitlines():
                click.echo(f"    {line}")
        else:
            click.echo("    (Python: runs up(conn))")


@click.command("apply", short_help="Apply pending migrations, as startup does.")
@click.option("--to", "target", type=int, metavar="VERSION", help="Apply only up to this version.")
@trial.dry_run_option
@click.option(
    "--allow-out-of-order",
    is_flag=True,
    help="Apply pending migrations older than the newest applied one instead of refusing.",
)
@pass_settings
def apply_command(settings: Settings, target: int | None, dry_run: bool, allow_out_of_order: bool) -> None:
    """Apply every pending migration (up to --to VERSION), as startup does.

    Prints a line per migration with its duration. Creates the database file
    if it does not exist. Exit code 0, or 5 when a migration failed (it was
    rolled back, later ones were not attempted).

    With --dry-run, the database is copied (SQLite's backup API) to a
    temporary file where the snapshots go, the migrations are applied to the
    copy one by one, and each one's outcome, duration and rows changed per
    table are printed; the copy is deleted and the database never written.
    Exit code 0 when all would apply, 5 when one would fail.
    """
    if allow_out_of_order:
        settings.options = settings.options.replace(allow_out_of_order=True)
    if dry_run:
        trial.dry_run(settings, target)
        return
    runner = settings.runner()
    if target is not None and runner.registry.get(target) is None:
        raise ConfigError(f"Target version {target} is not the version of any migration file. Nothing was applied.")
    was_missing = runner.backend.missing()
    try:
        report = runner.apply(target=target)
    except BaseException:
        if was_missing:  # as a start does: no empty database file left by a failed run
            from ...startup import remove_if_still_empty

            remove_if_still_empty(settings.require_database())
        raise
    for result in report.rolled_back:
        click.echo(
            f"Rolled back {result.id} in {result.duration_ms:.1f} ms (ahead of this code, not compatible:"
            ' SELFMIGRATE_AHEAD = "rollback")'
        )
    for result in report.applied:
        click.echo(f"Applied {result.id} in {result.duration_ms:.1f} ms")
    version = version_label(report.current_version)
    if report.applied or report.rolled_back:
        click.echo(f"Database {report.database} is at version {version}.")
    else:
        click.echo(f"Nothing to apply: database {report.database} is at version {version}.")


@click.command(short_help="Undo the newest applied migrations by running their down.")
@click.option("--to", "target", type=int, metavar="VERSION", help="Undo every migration newer than VERSION (0: all).")
@click.option("--steps", type=int, metavar="N", help="Undo the N newest applied migrations (default: 1).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def rollback(settings: Settings, target: int | None, steps: int | None, yes: bool) -> None:
    """Undo the newest applied migrations by running their down, newest first.

    Each one runs in its own transaction with the removal of its tracker row.
    A migration whose file is gone (an older image on a newer database) is
    undone with the down the tracker stored when it was applied, and the output
    says so. Refuses before changing anything when a migration in the range has
    no down, is edited, or has neither a file nor a stored down (or a stored
    down whose checksum does not match). Shows what it will undo and asks for
    confirmation unless --yes.
    """
    runner = settings.runner()
    todo = runner.rollback_plan(target=target, steps=steps)
    database = runner.backend.describe()
    if not todo:
        click.echo(
            f"Nothing to roll back: database {database} is at version {version_label(runner.status().current_version)}."
        )
        return
    remaining = runner.status().current_version
    click.echo(f"Database {database} is at version {version_label(remaining)}. Rolling back will undo, newest first:")
    stored = {body.migration.version for body in todo if body.from_tracker}
    for body in todo:
        where = (
            "its file is not in the migrations: the down stored in the tracker runs"
            if body.from_tracker
            else body.migration.location
        )
        click.echo(f"  {body.migration.id}  ({where})")
    if not yes:
        click.confirm(f"Roll back {len(todo)} migration(s)?", abort=True, err=True)
    report = runner.rollback(target=target, steps=steps)
    if report.snapshot is not None:
        click.echo(f"Snapshot of the data from before: {report.snapshot}")
    for result in report.applied:
        how = " with the down stored in the tracker" if result.version in stored else ""
        click.echo(f"Rolled back {result.id}{how} in {result.duration_ms:.1f} ms")
    click.echo(f"Database {database} is at version {version_label(report.current_version)}.")


@click.command("verify")
@click.option("--strict", is_flag=True, help="Fail on warnings too (gaps in the numbering, missing files).")
@pass_settings
def verify_command(settings: Settings, strict: bool) -> None:
    """Check everything startup checks, for CI; changes nothing.

    Without a database: file names, duplicate versions (two branches that both
    added 0007), every file loads, gaps in the numbering. With --database also
    edited, out-of-order, interrupted and missing migrations. It runs 'lint'
    too: its errors fail, its warnings are warnings. Exit code 0 when nothing
    is wrong, 2 for a problem in the files, 3 for a database that disagrees
    with them.
    """
    from ...ops.verify import verify

    result = verify(
        list(settings.require_migrations()),
        settings.database,
        table=settings.options.table,
        allow_out_of_order=settings.options.allow_out_of_order,
        certify=True,
    )
    for problem in result.problems:
        # The one style of every command's diagnostics: "Error: …" on stderr.
        click.echo(f"{problem.severity.capitalize()}: {problem.message}", err=True)
    failing = [p for p in result.problems if p.severity == "error" or strict]
    checked = f"{len(result.migrations)} migration file(s)"
    if result.database is not None:
        checked += f" and database {result.database}"
    if not failing:
        warned = f" ({len(result.warnings)} warning(s))" if result.warnings else ""
        click.echo(f"OK: checked {checked}{warned}.")
        return
    click.echo(f"Checked {checked}: {len(failing)} problem(s).", err=True)
    raise click.exceptions.Exit(3 if any(p.area == "database" for p in failing) else 2)
