"""SQLite snapshots: a copy of the database before it is migrated, and restoring one.

Holds :func:`take_snapshot`, :func:`list_snapshots`, :func:`restore` and the choice the
runner's first change makes (:func:`snapshot_for_run`). Must not know the runner or the
tracker. The why (online backup API, names, permission bits) is in docs/design.rst.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import typing as t
from pathlib import Path

from ...config import DEFAULT_BACKUP_KEEP
from ...errors import BackupError, ConfigError, DatabaseError, LockTimeout
from ..base import Snapshot
from .connection import check_idle, connect
from .lock import lock_for

# The logger keeps the name it had before the package had layers: users configure it.
logger = logging.getLogger("selfmigrate.backup")

#: The suffix of snapshot files.
SUFFIX = ".bak"
#: Seconds by which a database file must predate a snapshot for the snapshot to
#: count as current: file systems stamp times from a coarse clock.
MTIME_MARGIN = 0.05

_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_PARTIAL = ".partial"
_NAME_TAIL = r"\.(?P<stamp>[0-9]{8}T[0-9]{12}Z)\.v(?P<version>[0-9]+)" + re.escape(SUFFIX)
PathArg = t.Union[str, "os.PathLike[str]"]

__all__ = ["Snapshot", "find_snapshot", "list_snapshots", "prune", "restore", "snapshot_for_run", "take_snapshot"]


def snapshot_folder(database: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the snapshots of ``database`` go: ``directory``, or the database's folder."""
    if directory is not None:
        return Path(directory)
    return Path(database).parent


def take_snapshot(
    database: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    keep: int | None = DEFAULT_BACKUP_KEEP,
    version: int | None = None,
) -> Snapshot:
    """Copy ``database`` into a new snapshot file with the online backup API.

    The copy is written under a temporary name and renamed when complete, so a
    process killed half-way never leaves something that looks like a snapshot.
    Afterwards the oldest snapshots beyond ``keep`` are deleted.

    :param directory: where to write (default: the database's folder); created,
        readable by its owner only, if missing.
    :param keep: how many snapshots of this database to keep, newest first;
        ``None`` keeps all.
    :param version: the version the database is at, for the file name.
    :raises BackupError: the snapshot could not be written (no space, no
        permission); nothing was changed.
    """
    _check_keep(keep)
    db = Path(database)
    folder = snapshot_folder(db, directory)
    try:
        mode = db.stat().st_mode & 0o660
    except OSError as e:
        raise DatabaseError(f"Cannot snapshot database {db}: {e}.") from e
    import datetime as dt  # not at import: the no-op start never takes a snapshot

    created = dt.datetime.now(dt.UTC)
    name = f"{db.name}.{created.strftime(_STAMP_FORMAT)}.v{version or 0:04d}{SUFFIX}"
    final = folder / name
    partial = folder / f".{name}{_PARTIAL}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created owner-only, before any data is in it; widened to the database's
        # group bits (never "other") once complete.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise BackupError(
            f"Cannot write a snapshot of database {db} into {folder}: {e}. Make the folder"
            " writable by the app, point the backup directory elsewhere (SELFMIGRATE_BACKUP_DIR),"
            " or turn snapshots off (SELFMIGRATE_BACKUP = False). Nothing was migrated."
        ) from e
    try:
        _copy(db, partial)
        os.chmod(partial, mode | 0o400)
        os.replace(partial, final)
    except (OSError, sqlite3.Error) as e:
        _unlink(partial)
        raise BackupError(
            f"Taking a snapshot of database {db} into {folder} failed: {e}. Free some space"
            " or point the backup directory elsewhere (SELFMIGRATE_BACKUP_DIR). Nothing was"
            " migrated."
        ) from e
    except BaseException:
        _unlink(partial)
        raise
    snapshot = Snapshot(final, created, version or 0, final.stat().st_size)
    logger.info("Took snapshot %s of database %s (%d bytes).", final, db, snapshot.size)
    if keep is not None:
        prune(db, directory=directory, keep=keep)
    return snapshot


def list_snapshots(
    database: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None
) -> list[Snapshot]:
    """The snapshots of ``database``, newest first."""
    db = Path(database)
    folder = snapshot_folder(db, directory)
    pattern = re.compile(re.escape(db.name) + _NAME_TAIL)
    found = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise BackupError(f"Cannot list the snapshots of database {db} in {folder}: {e}.") from e
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            size = entry.stat().st_size
        except FileNotFoundError:  # pruned by another process meanwhile
            continue
        import datetime as dt

        created = dt.datetime.strptime(match["stamp"], _STAMP_FORMAT).replace(tzinfo=dt.UTC)
        found.append(Snapshot(entry, created, int(match["version"]), size))
    found.sort(key=lambda s: s.created, reverse=True)
    return found


def prune(database: PathArg, *, directory: PathArg | None = None, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest snapshots of ``database``; return what was deleted.

    Leftovers of snapshots that were interrupted (a killed process) are deleted too.
    """
    _check_keep(keep)
    db = Path(database)
    deleted = [s.path for s in list_snapshots(db, directory=directory)[keep:]]
    folder = snapshot_folder(db, directory)
    prefix = f".{db.name}."
    with contextlib.suppress(OSError):
        # The partial file, and the -journal/-wal/-shm files SQLite may have left beside it.
        deleted += [p for p in folder.iterdir() if p.name.startswith(prefix) and f"{SUFFIX}{_PARTIAL}" in p.name]
    for path in deleted:
        _unlink(path)
        logger.info("Deleted old snapshot %s.", path)
    return deleted


def find_snapshot(database: PathArg, snapshot: PathArg, *, directory: PathArg | None = None) -> Snapshot:
    """The snapshot of ``database`` named ``snapshot`` (a file name or a path).

    :raises BackupError: there is no such snapshot; the message lists those there are.
    """
    wanted = Path(snapshot)
    snapshots = list_snapshots(database, directory=directory if len(wanted.parts) == 1 else wanted.parent)
    for candidate in snapshots:
        if candidate.name == wanted.name:
            return candidate
    names = "\n  ".join(s.name for s in snapshots) or "(none)"
    raise BackupError(
        f"No snapshot named {snapshot} of database {database}. The snapshots there are:\n  {names}\n"
        "Give one of these names ('python -m selfmigrate snapshots' lists them)."
    )


def restore(
    database: str | os.PathLike[str],
    snapshot: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    wait: float = 0.5,
) -> Snapshot:
    """Replace the contents of ``database`` with those of a snapshot.

    Refuses while another process uses the database: the migration lock must be
    free, and ``BEGIN EXCLUSIVE`` must succeed within ``wait`` seconds. The
    current contents are first saved as a snapshot of their own (returned, and
    never pruned by this call), so a restore can itself be undone.

    :raises LockTimeout: another process holds the database or its migration lock.
    :raises BackupError: no such snapshot, or the snapshot is damaged.
    """
    chosen = find_snapshot(database, snapshot, directory=directory)
    _verify(chosen.path)
    lock = lock_for(Path(database))
    if not lock.try_acquire():
        raise LockTimeout(
            f"Database {database} is being migrated by another process (it holds {lock.path})."
            " Stop the app and try again."
        )
    with lock:
        conn = connect(Path(database), lock_timeout=wait, create=False)
        try:
            check_idle(conn, Path(database), wait=wait, lock_timeout=wait)
            journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            version = _version_of(conn)
            before = take_snapshot(database, directory=directory, keep=None, version=version)
            source = sqlite3.connect(f"{chosen.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                source.backup(conn)
            except sqlite3.Error as e:
                raise BackupError(
                    f"Restoring snapshot {chosen.path} into database {database} failed: {e}. The"
                    f" database's contents before the attempt are in {before.path}."
                ) from e
            finally:
                source.close()
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != journal_mode:
                conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        finally:
            conn.close()
    logger.warning(
        "Restored database %s from snapshot %s; its previous contents are in %s.", database, chosen.path, before.path
    )
    return before


def snapshot_for_run(
    database: Path,
    *,
    since: float,
    version: int | None,
    directory: str | os.PathLike[str] | None,
    keep: int | None,
) -> Snapshot:
    """The snapshot of ``database`` before a run's first change, taken or reused.

    Called holding the write lock. Workers that start together apply the
    migrations between them; the first to change the database took a snapshot
    of it after ``since`` (when this run began): that one is reused. So is one
    of the same data (see :func:`unchanged_since`). Otherwise a new one is taken.
    """
    try:
        newest = list_snapshots(database, directory=directory)[:1]
    except BackupError:
        newest = []  # take_snapshot says what is wrong with the folder
    if newest and (newest[0].created.timestamp() >= since or unchanged_since(database, newest[0], version)):
        return newest[0]
    return take_snapshot(database, directory=directory, keep=keep, version=version)


def unchanged_since(database: Path, snapshot: Snapshot, version: int | None) -> bool:
    """Whether ``database`` was not written since ``snapshot`` was taken of it.

    A start that fails again (a container restarting in a loop on a broken
    migration) then reuses the snapshot instead of taking one more per
    restart and pruning the older ones. Judged by the version and by the
    modification times of the database and its WAL file, with a margin for
    the file system's coarse clock: when in doubt, a new snapshot is taken.
    """
    if snapshot.version != (version or 0):
        return False
    taken = snapshot.created.timestamp() - MTIME_MARGIN
    for path in (database, database.with_name(database.name + "-wal")):
        try:
            if path.stat().st_mtime >= taken:
                return False
        except FileNotFoundError:
            continue
    return True


def _copy(database: Path, target: Path) -> None:
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0)
    try:
        copy = sqlite3.connect(str(target), isolation_level=None)
        try:
            # The partial file is nobody's database until it is renamed: no journal and
            # no syncing while it is written, one fsync at the end.
            copy.execute("PRAGMA synchronous = OFF")
            copy.execute("PRAGMA journal_mode = OFF")
            source.backup(copy)
            # One self-contained file, whatever the journal mode of the original.
            if copy.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
    finally:
        source.close()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _verify(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise BackupError(f"Snapshot {path} cannot be read as a SQLite database: {e}. Choose another.") from e
    if result != "ok":
        raise BackupError(f"Snapshot {path} is damaged (quick_check: {result}). Choose another.")


def _version_of(conn: sqlite3.Connection) -> int:
    """The newest version in a selfmigrate tracker named ``schema_migrations``, for file names only."""
    try:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def _check_keep(keep: int | None) -> None:
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ConfigError(f"The number of snapshots to keep must be 1 or more (or None for all), not {keep!r}.")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        logger.warning("Could not delete %s: %s.", path, e)
