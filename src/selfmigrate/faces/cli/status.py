"""The commands that read: ``status`` (with its exit codes and JSON document) and ``history``.

Holds how a :class:`~selfmigrate.Status` is shown and what ``status`` exits with.
Must not write to the database, nor know an engine.
"""

from __future__ import annotations

import json
import typing as t

import click

from ...core.plan import NO_VERSION, version_label
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
    but older than the newest applied one), ahead (applied, newer than every
    file: a newer release applied it; compatible or not), missing (applied but
    its file is not in the code, with newer files present), edited (its file
    changed since it was applied), interrupted (a non-transactional migration
    that never finished), running (one that started and whose process is still
    at it). A pending file that cannot load (a syntax error, an unedited
    template) is "pending, cannot load" with the reason.

    Exit code: 0 this code can run on the database (up to date, or ahead only
    by compatible migrations), 1 migrations pending or running, 2 bad input or
    configuration, 3 a problem that needs a person (edited, out-of-order,
    missing or interrupted migrations, a pending file that cannot load), 7 ahead
    by a migration not marked compatible. Never creates a database. With
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
    problems = load_problems(result)
    code = status_exit_code(result, running=running, problems=problems)
    if as_json:
        document = status_document(result, runner.backend.describe(), running=running, problems=problems)
        click.echo(json.dumps(document, indent=2))
    else:
        _echo_status(result, runner.backend.describe(), ctx, running=running, problems=problems)
    ctx.exit(code)


def load_problems(result: Status) -> dict[int, str]:
    """Why each pending migration that would fail before it runs cannot: version → reason.

    Each pending file is loaded as ``apply`` would load it (a syntax error, an
    unedited template, a missing ``up``). Applied files are not loaded.
    """
    problems: dict[int, str] = {}
    for migration in result.pending:
        try:
            migration.load()
        except SelfMigrateError as e:
            problems[migration.version] = str(e).splitlines()[0]
    return problems


#: ``status`` exit codes. Ahead only by compatible migrations is 0: the code runs
#: on the database as it is, so a container health check stays healthy.
UP_TO_DATE, PENDING, PROBLEM, AHEAD_INCOMPATIBLE = 0, 1, 3, 7


def status_exit_code(result: Status, *, running: bool = False, problems: t.Mapping[int, str] | None = None) -> int:
    """0 up to date (or ahead only by compatible migrations), 1 pending (or a
    migration running), 3 something needs a person, 7 ahead by a migration not
    marked compatible.

    ``running``: the started rows belong to a migration whose process still
    holds the migration lock, not to one that died. ``problems``: pending
    migrations that cannot load (:func:`load_problems`); they need a person too.
    """
    missing = len(result.missing) > len(result.ahead)
    if result.edited or result.out_of_order or missing or (result.interrupted and not running) or problems:
        return PROBLEM
    if result.ahead_incompatible:
        return AHEAD_INCOMPATIBLE
    if result.pending or result.interrupted:
        return PENDING
    return UP_TO_DATE


def _state_name(result: Status, code: int) -> str:
    if code == UP_TO_DATE:
        return "ahead-compatible" if result.ahead else "up-to-date"
    return {PENDING: "pending", PROBLEM: "problem", AHEAD_INCOMPATIBLE: "ahead-incompatible"}[code]


def migration_states(
    result: Status, *, running: bool = False, problems: t.Mapping[int, str] | None = None
) -> list[dict[str, t.Any]]:
    """One entry per version in the files or the tracker, oldest first.

    ``problems`` gives the reason of a pending migration that cannot load: its
    entry's ``cannot_load`` (``None`` for every other).
    """
    problems = problems or {}
    files = {m.version: m for m in result.migrations}
    edited = {m.version for m, _ in result.edited}
    out_of_order = {m.version for m in result.out_of_order}
    ahead = {row.version for row in result.ahead}
    entries: list[dict[str, t.Any]] = []
    for version in sorted(set(files) | set(result.applied)):
        migration = files.get(version)
        row = result.applied.get(version)
        if row is None:
            state = "out-of-order" if version in out_of_order else "pending"
        elif row.state == STARTED_STATE:
            state = "running" if running else "interrupted"
        elif version in ahead:
            state = "ahead"
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
                # As stored with the row: None for a pending file, or a row from before layout 2.
                "compatible": row.compatible if row is not None else None,
                "down": row.down if row is not None else None,
                "cannot_load": problems.get(version) if row is None else None,
            }
        )
    return entries


def status_document(
    result: Status, database: str, *, running: bool = False, problems: t.Mapping[int, str] | None = None
) -> dict[str, t.Any]:
    """The ``status --json`` object."""
    code = status_exit_code(result, running=running, problems=problems)
    return {
        "database": database,
        "current_version": result.current_version,
        "head": result.head,
        "up_to_date": code == UP_TO_DATE and not result.ahead,
        "state": _state_name(result, code),
        "pending": [m.version for m in result.pending],
        "ahead": [row.version for row in result.ahead],
        "migrations": migration_states(result, running=running, problems=problems),
    }


def _echo_status(
    result: Status, database: str, ctx: click.Context, *, running: bool, problems: t.Mapping[int, str]
) -> None:
    click.echo(f"Database: {database}")
    entries = migration_states(result, running=running, problems=problems)
    width = max((len(f"{e['version']:04d}_{e['name']}") for e in entries), default=0)
    for entry in entries:
        label = f"{entry['version']:04d}_{entry['name']}".ljust(width)
        detail = entry["state"]
        if detail == "ahead":
            detail += ", compatible" if entry["compatible"] else ", not compatible"
        if entry["applied_at"] is not None:
            detail += f" {entry['applied_at']} ({entry['duration_ms']:g} ms)"
        if entry["cannot_load"] is not None:
            detail += f", cannot load: {entry['cannot_load']}"
        click.echo(f"  {label}  {detail}")
    if not entries:
        click.echo("  (no migrations)")
    current = version_label(result.current_version)
    head = "none" if result.head is None else str(result.head)
    click.echo(f"Current version: {current}; newest migration file: {head}.")
    code = status_exit_code(result, running=running, problems=problems)
    ahead = ", ".join(row.id for row in result.ahead)
    if code == UP_TO_DATE and result.ahead:
        click.echo(f"Ahead of this code by {ahead}, marked compatible: this code runs on the database as it is.")
    elif code == UP_TO_DATE:
        click.echo("Up to date.")
    elif code == AHEAD_INCOMPATIBLE:
        from ...core.ahead import undo_advice

        command = sibling(ctx, "").rstrip() or "python -m selfmigrate"
        click.echo(
            f"Ahead of this code by {ahead}, not all marked compatible: this code may not work with the"
            f" database. {undo_advice(result, command)}"
        )
    elif running:
        click.echo("A migration is running outside a transaction (its process holds the migration lock).")
    elif code == PENDING:
        click.echo(f"{len(result.pending)} migration(s) pending. Run '{sibling(ctx, 'apply')}' or restart the app.")
    elif problems and not (result.edited or result.out_of_order or result.missing or result.interrupted):
        click.echo(f"{len(problems)} pending migration(s) cannot load: fix them before the next start (it would fail).")
    else:
        click.echo(f"Needs attention: see the states above. Run '{sibling(ctx, 'verify')}' for details.")


@click.command(short_help="Show what was applied, when and by whom, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as a JSON list.")
@pass_settings
def history(settings: Settings, as_json: bool) -> None:
    """Show what was applied, when, how long it took and by whom, newest first.

    Reads the tracker table only; needs no migration files. A migration
    applied before the tracker stored downs (selfmigrate 0.1.0) is marked
    "down not stored": once its file is gone it cannot be rolled back.
    """
    from ...core.runner import Runner

    # The history needs no migration files: the registry is never read here.
    runner = Runner.from_options(settings.require_database(), list(settings.migrations) or ".", settings.options)
    rows = runner.history()
    if as_json:
        click.echo(json.dumps([{**row.as_dict(), "down": row.down} for row in rows], indent=2))
        return
    if not rows:
        click.echo(f"Database {runner.backend.describe()} is at version {NO_VERSION}.")
        return
    width = max(len(row.id) for row in rows)
    for row in rows:
        notes = [] if row.state == APPLIED_STATE else [row.state]
        if row.compatible:
            notes.append("compatible")
        if row.down != "stored":
            notes.append("down not stored" if row.down == "not stored" else "no down")
        state = f"  [{'; '.join(notes)}]" if notes else ""
        click.echo(f"{row.applied_at}  {row.id.ljust(width)}  {row.duration_ms:>9.1f} ms  {row.applied_by}{state}")
