"""Snapshots of a PostgreSQL database: ``pg_dump -Fc`` files, only when a folder is given.

Holds :func:`snapshot_for_run` (off unless a snapshot folder is set; then ``pg_dump`` must be
on PATH, or nothing is migrated), :func:`list_snapshots`, :func:`find_snapshot`, and
:func:`restore`, which gives the ``pg_restore`` command rather than run it. Must never
claim a snapshot it did not take.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import typing as t
from pathlib import Path

from ...errors import BackupError
from ..base import Snapshot


class Database(t.Protocol):
    """What a snapshot needs of the backend: its libpq URL and its masked description."""

    conninfo: str

    def describe(self) -> str: ...


logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<db>.+)-(?P<stamp>\d{8}T\d{6}\d{6}Z)-v(?P<version>\d+)\.dump$")


def _dbname(backend: Database) -> str:
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(backend.conninfo).get("dbname") or os.environ.get("PGDATABASE") or "postgres"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))


def snapshot_for_run(
    backend: Database,
    *,
    since: float,
    version: int | None,
    directory: str | os.PathLike[str] | None,
    keep: int | None,
) -> Snapshot | None:
    """A ``pg_dump -Fc`` of the database into ``directory``, or ``None`` when no folder is set.

    A server has no "beside the database" folder, so the snapshot is off until
    one is chosen (``SELFMIGRATE_BACKUP_DIR``); one INFO line says so. One taken
    since ``since`` by another process of the same start is reused.

    :raises BackupError: a folder is set but ``pg_dump`` is not on PATH, or it failed;
        nothing is migrated then.
    """
    if directory is None:
        logger.info(
            "No snapshot of %s before migrating: on PostgreSQL selfmigrate takes one (pg_dump -Fc)"
            " only when a snapshot folder is set (SELFMIGRATE_BACKUP_DIR / backup_dir).",
            backend.describe(),
        )
        return None
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(
            f"A snapshot folder is set ({directory}) but pg_dump is not on PATH, so no snapshot of"
            f" {backend.describe()} can be taken; nothing was migrated. Install the PostgreSQL client"
            " (apt-get install postgresql-client) or unset the snapshot folder."
        )
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for existing in list_snapshots(backend, folder):
        if existing.created.timestamp() >= since:
            return existing
    now = dt.datetime.now(dt.UTC)
    path = folder / f"{_dbname(backend)}-{now:%Y%m%dT%H%M%S%f}Z-v{version or 0}.dump"
    partial = path.with_suffix(".partial")
    result = subprocess.run(
        [pg_dump, "-Fc", "--no-password", "-f", str(partial), "-d", backend.conninfo],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(
            f"pg_dump of {backend.describe()} failed (exit {result.returncode}): {result.stderr.strip()}."
            " Nothing was migrated. Fix the cause, or unset the snapshot folder to migrate without one."
        )
    partial.rename(path)
    logger.info("Snapshot of %s before migrating: %s.", backend.describe(), path)
    if keep is not None:
        for old in list_snapshots(backend, folder)[keep:]:
            old.path.unlink(missing_ok=True)
    return Snapshot(path, now, version or 0, path.stat().st_size)


def list_snapshots(backend: Database, directory: str | os.PathLike[str] | None) -> list[Snapshot]:
    """The database's snapshots in ``directory`` (none without one), newest first."""
    if directory is None or not Path(directory).is_dir():
        return []
    name = _dbname(backend)
    found = []
    for path in Path(directory).iterdir():
        match = _NAME.match(path.name)
        if match is None or match.group("db") != name:
            continue
        created = dt.datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
        found.append(Snapshot(path, created, int(match.group("version")), path.stat().st_size))
    return sorted(found, key=lambda s: s.created, reverse=True)


def find_snapshot(
    backend: Database, name: str | os.PathLike[str], directory: str | os.PathLike[str] | None
) -> Snapshot:
    """The snapshot called ``name`` (a file name or path)."""
    wanted = Path(name).name
    snapshots = list_snapshots(backend, directory if directory is not None else Path(name).parent)
    for snapshot in snapshots:
        if snapshot.name == wanted:
            return snapshot
    listed = ", ".join(s.name for s in snapshots) or "none"
    raise BackupError(f"No snapshot {wanted} of {backend.describe()} in {directory}; there are: {listed}.")


def restore(backend: Database, snapshot: str | os.PathLike[str], directory: str | os.PathLike[str] | None) -> Snapshot:
    """Refuse, with the command: restoring a server database is the operator's step.

    :raises BackupError: always; it names the ``pg_restore`` command to run.
    """
    chosen = find_snapshot(backend, snapshot, directory)
    raise BackupError(
        f"selfmigrate does not restore a PostgreSQL database itself (other sessions may be using it)."
        f" Stop the app, then run: pg_restore --clean --if-exists --single-transaction"
        f" -d '{backend.describe()}' {chosen.path}"
    )
