"""The commands that repair: ``baseline``, ``adopt``, ``rehash``, ``resolve``, ``snapshots``, ``restore``.

Each shows what it will do, asks unless ``--yes``, and calls one operator task.
Must not hold the tasks' logic (ops does), nor know an engine (the backend does).
"""

from __future__ import annotations

import typing as t

import click

from ...errors import ConfigError
from .settings import Settings, pass_settings


@click.command("baseline")
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
    from ...ops.adopt import baseline, baseline_plan

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


@click.command("adopt", short_help="Import a home-made migration table's history.")
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
    from ...ops.adopt import adopt, adoption_plan

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


@click.command(short_help="Record the new checksum of a cosmetically edited migration.")
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


@click.command(short_help="List the database's snapshots, newest first.")
@_backup_dir_option
@pass_settings
def snapshots(settings: Settings, backup_dir: str | None) -> None:
    """List the snapshots of the database taken before migrating, newest first.

    One line each: file name, when it was taken (UTC), the version it holds,
    its size. Only this database's, even in a backup folder that several
    databases share.
    """
    database = settings.require_database()
    found = settings.backend().list_snapshots(
        directory=backup_dir or settings.options.backup_dir, table=settings.options.table
    )
    if not found:
        click.echo(f"No snapshots of database {database}.", err=True)
        return
    for snap in found:
        click.echo(f"{snap.name}  {snap.created:%Y-%m-%d %H:%M:%S} UTC  version {snap.version}  {snap.size} bytes")


@click.command(short_help="Put a snapshot's data back into the database.")
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
    database = settings.require_database()
    backend = settings.backend()
    directory = backup_dir or settings.options.backup_dir
    chosen = backend.find_snapshot(snapshot, directory=directory, table=settings.options.table)
    click.echo(
        f"Database {database} will get the contents of snapshot {chosen.path}"
        f" ({chosen.created:%Y-%m-%d %H:%M:%S} UTC, version {chosen.version})."
    )
    if not yes:
        click.confirm("Replace the database's current contents?", abort=True, err=True)
    before = backend.restore(
        chosen.path, directory=directory, wait=min(settings.options.lock_timeout, 2.0), table=settings.options.table
    )
    click.echo(f"Restored. The contents it replaced are in {before.path}.")


@click.command(short_help="Mark an interrupted migration done, or retry it.")
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
    from ...ops.maintenance import resolve as resolve_migration

    if action is None:
        raise ConfigError("Say how to resolve it: --done (its change is complete) or --retry (run it again).")
    row = resolve_migration(
        settings.require_database(),
        version,
        t.cast("t.Literal['done', 'retry']", action),
        table=settings.options.table,
        lock_timeout=settings.options.lock_timeout,
    )
    if action == "done":
        click.echo(f"Migration {row.id} is recorded as applied.")
    else:
        click.echo(f"Migration {row.id} is forgotten; the next start applies it again.")
