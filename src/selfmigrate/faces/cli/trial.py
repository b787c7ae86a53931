"""Trying migrations before they run: the ``lint`` command, and ``--dry-run`` of ``apply`` and ``plan``.

Each is a few lines around ops/lint.py or ops/dryrun.py; results to stdout, diagnostics
to stderr. Must not hold the checks nor the copy (ops and the engine's modules do), nor
know an engine.
"""

from __future__ import annotations

import json
import typing as t

import click

from .settings import Settings, pass_settings

if t.TYPE_CHECKING:
    from ...ops.dryrun import TableChange

#: The ``--dry-run`` option of ``apply`` and ``plan``.
dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Apply the pending migrations to a temporary copy of the database and report each one.",
)


def dry_run(settings: Settings, target: int | None) -> None:
    """``apply --dry-run`` and ``plan --dry-run``: exit code 0 when all would apply, 5 when one would fail."""
    from ...ops.dryrun import dry_run as run

    options = settings.options
    report = run(
        settings.require_database(),
        list(settings.require_migrations()),
        target=target,
        table=options.table,
        lock_timeout=options.lock_timeout,
        allow_out_of_order=options.allow_out_of_order,
        directory=options.backup_dir,
    )
    at = "no migrations applied" if report.current_version is None else f"version {report.current_version}"
    if not report.steps:
        click.echo(f"Nothing to apply: database {report.database} is at {at} and is up to date.")
        return
    click.echo(
        f"Dry run on a copy of database {report.database} ({at}, {report.copy_size} bytes); the database"
        " itself is not written:"
    )
    width = max(len(step.migration.id) for step in report.steps)
    for step in report.steps:
        state = "ok    " if step.ok else "FAILED"
        changes = "; ".join(_table_change(change) for change in step.changes) or "no rows changed"
        detail = changes if step.ok else "(rolled back)"
        click.echo(f"  {state}  {step.migration.id.ljust(width)}  {step.duration_ms:9.1f} ms  {detail}")
    for migration in report.not_attempted:
        click.echo(f"  not attempted  {migration.id}")
    failed = report.failed
    if failed is None:
        click.echo(f"All {len(report.steps)} migration(s) would apply. The copy was deleted.")
        return
    assert failed.error is not None
    click.echo(f"Would fail: {failed.migration.id}. The copy was deleted; the database is unchanged.")
    click.echo(str(failed.error), err=True)
    raise click.exceptions.Exit(failed.error.exit_code)


def _table_change(change: TableChange) -> str:
    before = "new" if change.rows_before is None else str(change.rows_before)
    after = "dropped" if change.rows_after is None else str(change.rows_after)
    counts = [
        f"{n} {what}"
        for n, what in ((change.inserted, "inserted"), (change.deleted, "deleted"), (change.updated, "updated"))
        if n
    ]
    return f"{change.table}: {before} → {after} rows ({', '.join(counts)})"


@click.command("lint", short_help="Report SQLite pitfalls in the migration files.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON object.")
@click.option("--strict", is_flag=True, help="Fail on warnings too, not only on errors.")
@click.option("--since", type=int, metavar="VERSION", help="Report only on migrations newer than VERSION.")
@pass_settings
def lint_command(settings: Settings, as_json: bool, strict: bool, since: int | None) -> None:
    """Report the mistakes that bite SQLite users, in every migration file.

    Reads all migration files (applied and pending); needs no database (one
    given only chooses the engine's rules). Each finding is printed as
    'path:line: CODE message (fix: ...)'; accept one for its file with a
    comment line '-- migrate:accept CODE' ('# migrate:accept CODE' in a .py
    file). Exit code 0 when nothing fails (warnings are shown but fail only
    with --strict), 1 when something does, 2 when the files cannot be read.
    """
    from ...ops.lint import lint

    report = lint(list(settings.require_migrations()), since=since, database=settings.database)
    failing = report.failing(strict=strict)
    if as_json:
        document = {
            "ok": not failing,
            "migrations": len(report.migrations),
            "findings": [f.as_dict() for f in report.findings],
            "accepted": [f.as_dict() for f in report.accepted],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        for finding in report.findings:
            click.echo(str(finding))
        accepted = f", {len(report.accepted)} accepted" if report.accepted else ""
        click.echo(
            f"Linted {len(report.migrations)} migration file(s): {len(report.errors)} error(s),"
            f" {len(report.warnings)} warning(s){accepted}.",
            err=bool(failing),
        )
    if failing:
        raise click.exceptions.Exit(1)
