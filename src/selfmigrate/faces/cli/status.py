"""The commands that read: ``status`` (with its exit codes and JSON document) and ``history``.

Holds how a :class:`~selfmigrate.Status` is shown and what ``status`` exits with.
Must not write to the database, nor know an engine.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

import click

from ...core.tracker import APPLIED as APPLIED_STATE
from ...core.tracker import STARTED as STARTED_STATE
from ...errors import SelfMigrateError
from .settings import Settings, pass_settings, sibling

if t.TYPE_CHECKING:
    from ...core.status import Status


@click.command(short_help="Show each migration's state; exit code 0 when up to date.")
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
        click.echo(f"{len(result.pending)} migration(s) pending. Run '{sibling(ctx, 'apply')}' or restart the app.")
    else:
        click.echo(f"Needs attention: see the states above. Run '{sibling(ctx, 'verify')}' for details.")



@click.command(short_help="Show what was applied, when and by whom, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as a JSON list.")
@pass_settings
def history(settings: Settings, as_json: bool) -> None:
    """Show what was applied, when, how long it took and by whom, newest first.

    Reads the tracker table only; needs no migration files.
    """
    from ...core.runner import Runner

    # The history needs no migration files: the registry is never read here.
    runner = Runner.from_options(settings.require_database(), list(settings.migrations) or ".", settings.options)
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
