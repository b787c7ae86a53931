"""The command line: ``python -m selfmigrate <command>``.

Each command is a few lines around a library call. Results go to stdout,
diagnostics (log records, errors) to stderr. An expected error ends the
command with a one-line-per-fact message and the error's exit code, never a
traceback. Only :func:`main` configures logging; the library never does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import typing as t
from dataclasses import dataclass

import click

from .errors import ConfigError, SelfMigrateError
from .registry import LocationSpec
from .tracker import APPLIED as APPLIED_STATE
from .tracker import STARTED as STARTED_STATE

if t.TYPE_CHECKING:
    from .migration import LoadedMigration
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
    #: Where snapshots go (``None``: the database's folder).
    backup_dir: str | None = None
    #: Whether ``apply`` snapshots a non-empty database before migrating it.
    backup: bool = True
    #: How many snapshots ``apply`` keeps (``None``: all).
    backup_keep: int | None = 5

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
            backup=self.backup,
            backup_dir=self.backup_dir,
            backup_keep=self.backup_keep,
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
    ctx.obj = Settings(
        database=database, migrations=migrations, table=table, lock_timeout=lock_timeout, backup_dir=backup_dir
    )


@cli.command(short_help="Write the next numbered migration from a template.")
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
    from .create import create as create_migration

    location = into or (settings.migrations[0] if settings.migrations else DEFAULT_MIGRATIONS_DIR)
    path = create_migration(location, message, sql=sql)
    click.echo(str(path))
    if edit:
        click.edit(filename=str(path))


@cli.command(short_help="Show each migration's state; exit code 0 when up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object (for monitoring).")
@pass_settings
@click.pass_context
def status(ctx: click.Context, settings: Settings, as_json: bool) -> None:
    """Show each migration's state and whether the database is up to date.

    States: applied (with date and duration), pending, out-of-order (pending
    but older than the newest applied one), missing (applied but its file is
    not in the code), edited (its file changed since it was applied),
    interrupted (a non-transactional migration that never finished), running
    (one that started and whose process is still at it).

    Exit code: 0 up to date, 1 migrations pending or running, 2 bad input or
    configuration, 3 a problem that needs a person (edited, out-of-order,
    missing or interrupted migrations). Never creates a database. With
    --json, an error is also printed as {"state": "error", "error": "..."}.
    """
    try:
        runner = settings.runner()
        result = runner.status()
    except SelfMigrateError as e:
        if as_json:  # a monitoring script still gets a JSON object to read
            click.echo(json.dumps({"database": settings.database, "state": "error", "error": str(e)}, indent=2))
        raise
    # A "started" row is a migration still running if its process holds the lock.
    running = bool(result.interrupted) and runner.backend.migration_lock().held_elsewhere()
    code = status_exit_code(result, running=running)
    if as_json:
        document = status_document(result, runner.backend.describe(), running=running)
        click.echo(json.dumps(document, indent=2))
    else:
        _echo_status(result, runner.backend.describe(), ctx, running=running)
    ctx.exit(code)


#: ``status`` exit codes.
UP_TO_DATE, PENDING, PROBLEM = 0, 1, 3


def status_exit_code(result: Status, *, running: bool = False) -> int:
    """0 up to date, 1 pending (or a migration running), 3 something needs a person.

    ``running``: the started rows belong to a migration whose process still
    holds the migration lock, not to one that died.
    """
    if result.edited or result.out_of_order or result.missing or (result.interrupted and not running):
        return PROBLEM
    if result.pending or result.interrupted:
        return PENDING
    return UP_TO_DATE


def migration_states(result: Status, *, running: bool = False) -> list[dict[str, t.Any]]:
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
            state = "running" if running else "interrupted"
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


def status_document(result: Status, database: str, *, running: bool = False) -> dict[str, t.Any]:
    """The ``status --json`` object."""
    code = status_exit_code(result, running=running)
    return {
        "database": database,
        "current_version": result.current_version,
        "head": result.head,
        "up_to_date": code == UP_TO_DATE,
        "state": {UP_TO_DATE: "up-to-date", PENDING: "pending", PROBLEM: "problem"}[code],
        "pending": [m.version for m in result.pending],
        "migrations": migration_states(result, running=running),
    }


def _echo_status(result: Status, database: str, ctx: click.Context, *, running: bool = False) -> None:
    click.echo(f"Database: {database}")
    entries = migration_states(result, running=running)
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
    code = status_exit_code(result, running=running)
    if code == UP_TO_DATE:
        click.echo("Up to date.")
    elif running:
        click.echo("A migration is running outside a transaction (its process holds the migration lock).")
    elif code == PENDING:
        click.echo(f"{len(result.pending)} migration(s) pending. Run '{_sibling(ctx, 'apply')}' or restart the app.")
    else:
        click.echo(f"Needs attention: see the states above. Run '{_sibling(ctx, 'verify')}' for details.")


def _sibling(ctx: click.Context, name: str) -> str:
    """The full command line of another command of this group (``python -m selfmigrate apply``)."""
    parent = ctx.parent
    return f"{parent.command_path} {name}" if parent is not None else name


@cli.command(short_help="Show what 'apply' would run, with its SQL; change nothing.")
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


@cli.command("apply", short_help="Apply pending migrations, as startup does.")
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
        settings.allow_out_of_order = True
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


@cli.command(short_help="Undo the newest applied migrations by running their down.")
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


@cli.command(short_help="Show what was applied, when and by whom, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as a JSON list.")
@pass_settings
def history(settings: Settings, as_json: bool) -> None:
    """Show what was applied, when, how long it took and by whom, newest first.

    Reads the tracker table only; needs no migration files.
    """
    from .runner import Runner

    # The history needs no migration files: the registry is never read here.
    runner = Runner(settings.require_database(), list(settings.migrations) or ".", table=settings.table)
    rows = runner.history()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return
    if not rows:
        click.echo(f"Database {runner.backend.describe()} has no migrations applied.")
        return
    width = max(len(row.id) for row in rows)
    for row in rows:
        state = "" if row.state == APPLIED_STATE else f"  [{row.state}]"
        click.echo(f"{row.applied_at}  {row.id.ljust(width)}  {row.duration_ms:>9.1f} ms  {row.applied_by}{state}")


@cli.command("verify")
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
    from .verify import verify

    result = verify(
        list(settings.require_migrations()),
        settings.database,
        table=settings.table,
        allow_out_of_order=settings.allow_out_of_order,
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


@cli.command("baseline")
@click.option("--version", "version", type=int, metavar="N", help="Record migrations 1..N as applied.")
@click.option("--from-legacy", is_flag=True, help="Import a home-made migration table instead (see 'adopt').")
@click.option("--force", is_flag=True, help="Allow a database that already has selfmigrate history.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
@click.pass_context
def baseline_command(
    ctx: click.Context, settings: Settings, version: int | None, from_legacy: bool, force: bool, yes: bool
) -> None:
    """Record migrations 1..N as applied without running them.

    For a database whose schema predates selfmigrate. Shows what it will
    record and asks for confirmation unless --yes; refuses on a database with
    selfmigrate history unless --force. With --from-legacy, does what 'adopt'
    does with its defaults.
    """
    from .adopt import baseline, baseline_plan

    if from_legacy:
        if version is not None or force:
            raise ConfigError("--from-legacy takes the history from the legacy table; drop --version and --force.")
        ctx.invoke(adopt_command, yes=yes)
        return
    if version is None:
        raise ConfigError("Give the version the database's schema is at: baseline --version N.")
    runner = settings.runner()
    plan = baseline_plan(runner, version, force=force)
    if not plan.record:
        click.echo(f"Nothing to record: database {plan.database} has every migration up to {version}.")
        return
    click.echo(f"Database {plan.database}: these migrations will be recorded as applied, without running them:")
    for migration in plan.record:
        click.echo(f"  {migration.id}  ({migration.location})")
    if not yes:
        click.confirm(f"Record {len(plan.record)} migration(s)?", abort=True, err=True)
    done = baseline(runner, version, force=force)
    click.echo(f"Recorded {len(done.record)} migration(s); database {done.database} is at version {version}.")


@cli.command("adopt", short_help="Import a home-made migration table's history.")
@click.option("--legacy-table", metavar="NAME", help="The home-made migration table (default: the tracker's name).")
@click.option("--rename-to", metavar="NAME", help="Its new name once moved aside (default: <legacy table>_legacy).")
@click.option("--name-column", metavar="COLUMN", help="Its column naming migrations (default: found by content).")
@click.option("--date-column", metavar="COLUMN", help="Its column of dates (default: found by name and content).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def adopt_command(
    settings: Settings,
    legacy_table: str | None = None,
    rename_to: str | None = None,
    name_column: str | None = None,
    date_column: str | None = None,
    yes: bool = False,
) -> None:
    """Import the history of a home-made migration table, then move it aside.

    Each row naming an applied migration (0002_add_users.sql, 0002_add_users
    or 2) is recorded as applied with its date; the old table is renamed —
    every row kept, nothing altered — all in one transaction. Shows what it
    will do and asks for confirmation unless --yes.
    """
    from .adopt import adopt, adoption_plan

    runner = settings.runner()
    options = {
        "legacy_table": legacy_table,
        "rename_to": rename_to,
        "name_column": name_column,
        "date_column": date_column,
    }
    plan = adoption_plan(runner, **options)
    dates = f"dates from column {plan.date_column}" if plan.date_column else "no date column"
    click.echo(
        f"Database {plan.database}: table {plan.legacy_table} ({plan.row_count} row(s); migrations named by"
        f" column {plan.name_column}, {dates}) will be renamed to {plan.rename_to}, and these"
        " migrations recorded as applied:"
    )
    for entry in plan.entries:
        click.echo(f"  {entry.migration.id}  {entry.applied_at}  (was {entry.legacy_name})")
    if plan.pending:
        click.echo(f"Pending after adoption: {', '.join(m.id for m in plan.pending)}.")
    for note in plan.notes:
        click.echo(f"Note: {note}")
    if not yes:
        click.confirm("Adopt this history?", abort=True, err=True)
    done = adopt(runner, **options)
    click.echo(
        f"Adopted {len(done.entries)} migration(s); {done.legacy_table} is now {done.rename_to}"
        f" with all {done.row_count} row(s)."
    )


@cli.command(short_help="Record the new checksum of a cosmetically edited migration.")
@click.argument("version", type=int)
@pass_settings
def rehash(settings: Settings, version: int) -> None:
    """Record the current checksum of applied migration VERSION's file.

    The sanctioned fix after a cosmetic edit (comments, whitespace) of an
    applied migration. Logs the change.
    """
    old, new = settings.runner().rehash(version)
    if old == new:
        click.echo(f"Migration {version} already has the checksum of its file ({new[:12]}…); nothing changed.")
    else:
        click.echo(f"Migration {version}: checksum {old[:12]}… replaced by {new[:12]}….")


_backup_dir_option = click.option(
    "--backup-dir",
    envvar="SELFMIGRATE_BACKUP_DIR",
    metavar="DIR",
    help="Where the snapshots are (default: the database's folder). Env: SELFMIGRATE_BACKUP_DIR.",
)


@cli.command(short_help="List the database's snapshots, newest first.")
@_backup_dir_option
@pass_settings
def snapshots(settings: Settings, backup_dir: str | None) -> None:
    """List the snapshots of the database taken before migrating, newest first.

    One line each: file name, when it was taken (UTC), the version it holds,
    its size. Only this database's, even in a backup folder that several
    databases share.
    """
    from .backup import list_snapshots

    database = settings.require_database()
    found = list_snapshots(database, directory=backup_dir or settings.backup_dir, table=settings.table)
    if not found:
        click.echo(f"No snapshots of database {database}.", err=True)
        return
    for snap in found:
        click.echo(f"{snap.name}  {snap.created:%Y-%m-%d %H:%M:%S} UTC  version {snap.version}  {snap.size} bytes")


@cli.command(short_help="Put a snapshot's data back into the database.")
@click.argument("snapshot")
@_backup_dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def restore(settings: Settings, snapshot: str, backup_dir: str | None, yes: bool) -> None:
    """Replace the database's contents with those of SNAPSHOT (a name from 'snapshots').

    Refuses while another process uses the database: stop the app first. The
    current contents are saved as a new snapshot before they are replaced.
    Only the database's own snapshots are accepted. Asks for confirmation
    unless --yes.
    """
    from .backup import find_snapshot
    from .backup import restore as restore_snapshot

    database = settings.require_database()
    directory = backup_dir or settings.backup_dir
    chosen = find_snapshot(database, snapshot, directory=directory, table=settings.table)
    click.echo(
        f"Database {database} will get the contents of snapshot {chosen.path}"
        f" ({chosen.created:%Y-%m-%d %H:%M:%S} UTC, version {chosen.version})."
    )
    if not yes:
        click.confirm("Replace the database's current contents?", abort=True, err=True)
    before = restore_snapshot(
        database, chosen.path, directory=directory, wait=min(settings.lock_timeout, 2.0), table=settings.table
    )
    click.echo(f"Restored. The contents it replaced are in {before.path}.")


@cli.command(short_help="Mark an interrupted migration done, or retry it.")
@click.argument("version", type=int)
@click.option("--done", "action", flag_value="done", help="Its change is complete: record it as applied.")
@click.option(
    "--retry", "action", flag_value="retry", help="Forget it, so that the next start runs it again."
)
@pass_settings
def resolve(settings: Settings, version: int, action: str | None) -> None:
    """Resolve migration VERSION, which ran outside a transaction and never finished.

    Look at the database first. --done records it as applied; --retry deletes
    its tracker row so that the next start runs it again (restore the snapshot
    first if it changed anything).
    """
    from .resolve import resolve as resolve_migration

    if action is None:
        raise ConfigError("Say how to resolve it: --done (its change is complete) or --retry (run it again).")
    row = resolve_migration(
        settings.require_database(),
        version,
        t.cast("t.Literal['done', 'retry']", action),
        table=settings.table,
        lock_timeout=settings.lock_timeout,
    )
    if action == "done":
        click.echo(f"Migration {row.id} is recorded as applied.")
    else:
        click.echo(f"Migration {row.id} is forgotten; the next start applies it again.")


class FlaskCommandGroup(SelfMigrateGroup):
    """The commands of :data:`cli` as a ``flask`` command group, set up from the app.

    It shares :data:`cli`'s table of commands (the same dict), so a command added
    to :data:`cli` is a ``flask`` command too.
    """

    def __init__(self, name: str, **attrs: t.Any) -> None:
        super().__init__(name, **attrs)
        self.commands = cli.commands


def flask_group(name: str) -> click.Group:
    """A ``flask`` command group named ``name`` running the same commands.

    The database, migrations, tracker table, lock timeout and out-of-order
    setting come from the app's ``app.extensions["selfmigrate"]``, which
    :func:`selfmigrate.apply` filled in. Registered by :func:`selfmigrate.apply`.
    """
    from flask import current_app
    from flask.cli import with_appcontext

    from .flask_ext import EXTENSION_KEY, FlaskState

    @with_appcontext
    @click.pass_context
    def settings_from_app(ctx: click.Context) -> None:
        state = current_app.extensions.get(EXTENSION_KEY)
        if not isinstance(state, FlaskState):
            raise ConfigError("The app has no selfmigrate settings; call selfmigrate.apply(app) in its factory.")
        migrations = state.migrations
        locations = (migrations,) if isinstance(migrations, (str, os.PathLike)) else tuple(migrations)
        ctx.obj = Settings(
            database=str(state.database),
            migrations=locations,
            table=state.table,
            lock_timeout=state.lock_timeout,
            allow_out_of_order=state.allow_out_of_order,
            backup_dir=state.backup_dir,
            backup=state.backup,
            backup_keep=state.backup_keep,
        )

    return FlaskCommandGroup(
        name=name,
        callback=settings_from_app,
        help="Apply and manage selfmigrate migrations of this app's database (settings from the app's config).",
    )


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
