"""The commands that migrate: ``create``, ``plan``, ``apply``, ``rollback``, ``verify``.

Each is a few lines around a library call; results to stdout, diagnostics to stderr.
Must not hold migration logic (the core and ops do), nor know an engine.
"""

from __future__ import annotations

import typing as t

import click

from ...config import DEFAULT_MIGRATIONS_DIR
from ...errors import ConfigError
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
    help="The directory or package to write into (default: the group's first --migrations, else ./migrations).",
)
@pass_settings
def create(settings: Settings, message: str, sql: bool, edit: bool, into: str | None) -> None:
    """Write the next numbered migration, named after MESSAGE, from a template.

    It goes into --migrations, else the (first) migrations location of the
    group, else ./migrations. Prints the new file's path.
    """
    from ...ops.create import create as create_migration

    location = into or (settings.migrations[0] if settings.migrations else DEFAULT_MIGRATIONS_DIR)
    path = create_migration(location, message, sql=sql)
    click.echo(str(path))
    if edit:
        click.edit(filename=str(path))


@click.command(short_help="Show what 'apply' would run, with its SQL; change nothing.")
@click.option("--to", "target", type=int, metavar="VERSION", help="Apply only up to this version.")
@pass_settings
@click.pass_context
def plan(ctx: click.Context, settings: Settings, target: int | None) -> None:
    """Show what 'apply' would run, in order, with the SQL of .sql migrations.

    Makes every check 'apply' makes before its first change, and changes
    nothing. Exit code 0, or that of the error 'apply' would meet.
    """
    runner = settings.runner()
    todo = runner.plan(target=target)
    current = runner.status().current_version
    _echo_plan(runner.backend.describe(), current, todo)


def _echo_plan(database: str, current: int | None, todo: t.Sequence[LoadedMigration]) -> None:
    at = "has no migrations applied" if current is None else f"is at version {current}"
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
@click.option("--dry-run", is_flag=True, help="Only show what would run (the same as 'plan').")
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
    """
    if allow_out_of_order:
        settings.options = settings.options.replace(allow_out_of_order=True)
    runner = settings.runner()
    if target is not None and runner.registry.get(target) is None:
        raise ConfigError(f"Target version {target} is not the version of any migration file. Nothing was applied.")
    if dry_run:
        todo = runner.plan(target=target)
        _echo_plan(runner.backend.describe(), runner.status().current_version, todo)
        return
    report = runner.apply(target=target)
    for result in report.applied:
        click.echo(f"Applied {result.id} in {result.duration_ms:.1f} ms")
    version = "none" if report.current_version is None else report.current_version
    if report.applied:
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
    Refuses before changing anything when a migration in the range has no
    down, is edited, or has no file. Shows what it will undo and asks for
    confirmation unless --yes.
    """
    runner = settings.runner()
    todo = runner.rollback_plan(target=target, steps=steps)
    database = runner.backend.describe()
    if not todo:
        click.echo(f"Nothing to roll back: database {database} is at version {target}.")
        return
    remaining = runner.status().current_version
    click.echo(f"Database {database} is at version {remaining}. Rolling back will undo, newest first:")
    for body in todo:
        click.echo(f"  {body.migration.id}  ({body.migration.location})")
    if not yes:
        click.confirm(f"Roll back {len(todo)} migration(s)?", abort=True, err=True)
    report = runner.rollback(target=target, steps=steps)
    if report.snapshot is not None:
        click.echo(f"Snapshot of the data from before: {report.snapshot}")
    for result in report.applied:
        click.echo(f"Rolled back {result.id} in {result.duration_ms:.1f} ms")
    version = "none (no migrations applied)" if report.current_version is None else report.current_version
    click.echo(f"Database {database} is at version {version}.")


@click.command("verify")
@click.option("--strict", is_flag=True, help="Fail on warnings too (gaps in the numbering, missing files).")
@pass_settings
def verify_command(settings: Settings, strict: bool) -> None:
    """Check everything startup checks, for CI; changes nothing.

    Without a database: file names, duplicate versions (two branches that both
    added 0007), every file loads, gaps in the numbering. With --database also
    edited, out-of-order, interrupted and missing migrations. Exit code 0 when
    nothing is wrong, 2 for a problem in the files, 3 for a database that
    disagrees with them.
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
        click.echo(f"{problem.severity}: {problem.message}")
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
