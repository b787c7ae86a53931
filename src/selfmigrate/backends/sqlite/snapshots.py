"""SQLite snapshots: a copy of the database before it is migrated, and restoring one.

Holds :func:`take_snapshot`, :func:`list_snapshots`, :func:`restore`, the identity key that
ties a snapshot to one database in a shared folder, and the choice the runner's first change
makes (:func:`snapshot_for_run`). Must not know the runner or the tracker's code; the why
(online backup API, names, keys, permission bits) is in docs/design.rst.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
from pathlib import Path

from ...config import DEFAULT_BACKUP_KEEP, DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE
from ...errors import BackupError, ConfigError, DatabaseError, LockTimeout
from ...logs import Logger
from ..base import Snapshot
from .connection import check_idle, connect, database_path
from .lock import give_to_owner, lock_for

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

    PathArg = str | os.PathLike[str]

# The logger keeps the name it had before the package had layers: users configure it.
logger = Logger("selfmigrate.backup")

#: The suffix of snapshot files.
SUFFIX = ".bak"
#: Seconds by which a database file must predate a snapshot for the snapshot to
#: count as current: file systems stamp times from a coarse clock.
MTIME_MARGIN = 0.05

_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_PARTIAL = ".partial"
_NAME_TAIL = r"\.(?P<stamp>[0-9]{8}T[0-9]{12}Z)\.v(?P<version>[0-9]+)" + re.escape(SUFFIX)
_KEY_LENGTH = 16
# <any name>.<key>.<stamp>.v<version>.bak; a file of the older format has no key.
_KEYED_NAME = re.compile(rf".+\.(?P<key>[0-9a-f]{{{_KEY_LENGTH}}})" + _NAME_TAIL)


__all__ = ["Snapshot", "find_snapshot", "list_snapshots", "prune", "restore", "snapshot_for_run", "take_snapshot"]


def snapshot_folder(database: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the snapshots of ``database`` go: ``directory``, or the database's folder."""
    if directory is not None:
        return Path(directory)
    return Path(database).parent


def lineage(version: int, applied_at: str, applied_by: str) -> str:
    """The lineage of a database whose oldest tracker row is this one (see ``identity_key``)."""
    return f"{version}|{applied_at}|{applied_by}"


def read_lineage(conn: sqlite3.Connection, table: str = DEFAULT_TABLE) -> str | None:
    """The lineage recorded in the tracker ``table`` read through ``conn``; ``None`` if it has no row."""
    try:
        row = conn.execute(f'SELECT version, applied_at, applied_by FROM "{table}" ORDER BY version LIMIT 1').fetchone()
    except sqlite3.Error:  # no tracker (yet), or one of another layout
        return None
    return None if row is None else lineage(int(row[0]), str(row[1]), str(row[2]))


def identity_key(database: str | os.PathLike[str], lineage: str | None) -> str:
    """The key in the names of the snapshots of ``database``, whose lineage is ``lineage``.

    A hash of the resolved absolute path and of the lineage: two databases at one
    path (one replacing the other, or one per container volume) differ in their
    lineage; two copies of one database differ in their path.
    """
    digest = hashlib.sha256(os.fsencode(Path(database).resolve()))
    digest.update(b"\\0" + (lineage or "").encode())
    return digest.hexdigest()[:_KEY_LENGTH]


def _lineage_of_file(path: Path, table: str) -> str | None:
    """The lineage inside a database or snapshot file; ``None`` if none or unreadable."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return None
    try:
        return read_lineage(conn, table)
    finally:
        conn.close()


def _keys_of(database: Path, table: str) -> tuple[str | None, set[str]]:
    """A database's lineage and the keys of its snapshots: with that lineage, and from before any."""
    found = _lineage_of_file(database, table) if database.exists() else None
    return found, {identity_key(database, found), identity_key(database, None)}


def take_snapshot(
    database: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    keep: int | None = DEFAULT_BACKUP_KEEP,
    version: int | None = None,
    table: str = DEFAULT_TABLE,
) -> Snapshot:
    """Copy ``database`` into a new snapshot file with the online backup API.

    The copy is written under a temporary name and renamed when complete, so a
    process killed half-way never leaves something that looks like a snapshot.
    Its name carries the database's identity key, computed from the copy itself
    (see ``identity_key``). Afterwards the oldest snapshots with that key
    beyond ``keep`` are deleted; other databases' snapshots are never touched.

    :param directory: where to write (default: the database's folder); created,
        readable by its owner only, if missing.
    :param keep: how many snapshots of this database to keep, newest first;
        ``None`` keeps all.
    :param version: the version the database is at, for the file name.
    :param table: the tracker table, whose oldest row is the database's lineage.
    :raises BackupError: the snapshot could not be written (no space, no
        permission); nothing was changed.
    """
    _check_keep(keep)
    db = database_path(database)
    folder = snapshot_folder(db, directory)
    try:
        stat = db.stat()
    except OSError as e:
        raise DatabaseError(f"Cannot snapshot database {db}: {e}.") from e
    mode = stat.st_mode & 0o660
    import datetime as dt  # not at import: the no-op start never takes a snapshot

    created = dt.datetime.now(dt.UTC)
    stamp = f"{created.strftime(_STAMP_FORMAT)}.v{version or 0:04d}{SUFFIX}"
    # The partial file carries the key too: pruning another database's snapshots
    # in a shared folder never deletes this one half-written.
    expected = identity_key(db, _lineage_of_file(db, table))
    partial = folder / f".{db.name}.{expected}.{stamp}{_PARTIAL}"
    try:
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY)
            try:
                give_to_owner(fd, stat)  # root's new backup folder is the app's, as its snapshots
            finally:
                os.close(fd)
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
        key = identity_key(db, _lineage_of_file(partial, table))
        final = folder / f"{db.name}.{key}.{stamp}"
        os.chmod(partial, mode | 0o400)
        # Root's snapshot of the app's database is the app's, so that it may restore it.
        fd = os.open(partial, os.O_RDONLY)
        try:
            give_to_owner(fd, stat)
        finally:
            os.close(fd)
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
    snapshot = Snapshot(final, created, version or 0, final.stat().st_size, key)
    logger.info("Took snapshot %s of database %s (%d bytes).", final, db, snapshot.size)
    if keep is not None:
        _prune(db, folder, key, keep)
    return snapshot


def keyed_snapshots(directory: str | os.PathLike[str], keys: t.Collection[str]) -> list[Snapshot]:
    """The snapshots in ``directory`` whose identity key is one of ``keys``, newest first."""
    return _scan(Path(directory), lambda entry: entry.key in keys)


def list_snapshots(
    database: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    table: str = DEFAULT_TABLE,
) -> list[Snapshot]:
    """The snapshots of ``database``, newest first; never another database's.

    Those whose key is the database's (taken of it at its path, with its
    lineage or before it had any), and those of the older format, whose name has
    no key, when nothing contradicts: in the database's own folder (where the
    older release put them by default), their file name and a lineage that is
    the database's or none; in any other folder, only a lineage that is the
    database's own.
    """
    db = database_path(database)
    folder = snapshot_folder(db, directory)
    own_lineage, keys = _keys_of(db, table)
    in_own_folder = _same_folder(folder, db.absolute().parent)
    older = re.compile(re.escape(db.name) + _NAME_TAIL)

    def belongs(entry: Snapshot) -> bool:
        if entry.key is not None:
            return entry.key in keys
        if older.fullmatch(entry.name) is None:
            return False
        found = _lineage_of_file(entry.path, table)
        if in_own_folder:
            return found is None or found == own_lineage
        return found is not None and found == own_lineage

    return _scan(folder, belongs, database=db)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _scan(folder: Path, belongs: t.Callable[[Snapshot], bool], *, database: Path | None = None) -> list[Snapshot]:
    """The snapshot files in ``folder`` for which ``belongs`` holds, newest first."""
    import datetime as dt

    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        of = f" of database {database}" if database is not None else ""
        raise BackupError(f"Cannot list the snapshots{of} in {folder}: {e}.") from e
    found = []
    for entry in entries:
        keyed = _KEYED_NAME.fullmatch(entry.name)
        match = keyed or re.search(_NAME_TAIL + "$", entry.name)
        if match is None or entry.name.startswith("."):
            continue
        created = dt.datetime.strptime(match["stamp"], _STAMP_FORMAT).replace(tzinfo=dt.UTC)
        key = keyed["key"] if keyed else None
        try:
            size = entry.stat().st_size
        except FileNotFoundError:  # pruned by another process meanwhile
            continue
        snapshot = Snapshot(entry, created, int(match["version"]), size, key)
        if belongs(snapshot):
            found.append(snapshot)
    found.sort(key=lambda s: s.created, reverse=True)
    return found


def prune(
    database: PathArg, *, directory: PathArg | None = None, keep: int, table: str = DEFAULT_TABLE
) -> list[Path]:
    """Delete all but the ``keep`` newest snapshots of ``database``; return what was deleted.

    Only snapshots with the key of the database as it is now (its path and
    lineage) are counted and deleted: never another database's, nor one of the
    older format, nor one taken before the database had a lineage (the copy of
    its data from before its first migration; delete those by hand). Leftovers
    of this database's interrupted snapshots (a killed process) are deleted too.
    """
    _check_keep(keep)
    db = database_path(database)
    own_lineage, _ = _keys_of(db, table)
    return _prune(db, snapshot_folder(db, directory), identity_key(db, own_lineage), keep)


def _prune(db: Path, folder: Path, key: str, keep: int) -> list[Path]:
    deleted = [s.path for s in keyed_snapshots(folder, {key})[keep:]]
    # A snapshot cut short while the database had no lineage yet (killed during its
    # first migration) is this database's too.
    prefixes = (f".{db.name}.{key}.", f".{db.name}.{identity_key(db, None)}.")
    with contextlib.suppress(OSError):
        # The partial file, and the -journal/-wal/-shm files SQLite may have left beside it.
        deleted += [p for p in folder.iterdir() if p.name.startswith(prefixes) and f"{SUFFIX}{_PARTIAL}" in p.name]
    for path in deleted:
        _unlink(path)
        logger.info("Deleted old snapshot %s.", path)
    return deleted


def find_snapshot(
    database: PathArg, snapshot: PathArg, *, directory: PathArg | None = None, table: str = DEFAULT_TABLE
) -> Snapshot:
    """The snapshot of ``database`` named ``snapshot`` (a file name or a path).

    Only one that :func:`list_snapshots` lists (in ``directory``, or in the
    folder of the path given) is accepted: a snapshot of another database, or
    one taken of this file while it was at another path, is refused.

    :raises BackupError: there is no such snapshot of this database; the
        message lists those there are.
    """
    db = database_path(database)
    wanted = Path(snapshot)
    folder = directory if len(wanted.parts) == 1 else wanted.parent
    snapshots = list_snapshots(db, directory=folder, table=table)
    for candidate in snapshots:
        if candidate.name == wanted.name:
            _check_taken_of(db, candidate, table)
            return candidate
    if (snapshot_folder(db, folder) / wanted.name).is_file() and re.search(_NAME_TAIL + "$", wanted.name):
        raise BackupError(
            f"Snapshot {snapshot} was not taken of database {database}: it is another database's,"
            " or was taken of this file at another path (a snapshot names the path it was taken at)."
            " selfmigrate restores a database only from its own snapshots ('python -m selfmigrate"
            " snapshots' lists them); to use this one anyway, copy it over the database by hand"
            " with the app stopped."
        )
    names = "\n  ".join(s.name for s in snapshots) or "(none)"
    raise BackupError(
        f"No snapshot named {snapshot} of database {database}. The snapshots there are:\n  {names}\n"
        "Give one of these names ('python -m selfmigrate snapshots' lists them)."
    )


def _check_taken_of(db: Path, snapshot: Snapshot, table: str) -> None:
    """Refuse a snapshot whose contents contradict its name: a key that its lineage and ``db``'s path do not give."""
    if not os.access(snapshot.path, os.R_OK):
        # Unreadable, its lineage would read as none: "another database's" would be wrong.
        owner = snapshot.path.stat()
        raise BackupError(
            f"Snapshot {snapshot.path} of database {db} cannot be read by this process (uid"
            f" {os.geteuid()}; the file is uid {owner.st_uid}'s, mode {owner.st_mode & 0o777:o}). Restore"
            " as the user that owns it, or let this user read it (chown or chmod the file)."
        )
    if snapshot.key is None:
        return  # the older format: list_snapshots already compared the lineage inside
    inside = _lineage_of_file(snapshot.path, table)
    if snapshot.key not in (identity_key(db, inside), identity_key(db, None)):
        raise BackupError(
            f"Snapshot {snapshot.path} is named as a snapshot of database {db}, but the history of"
            " migrations inside it is another database's (a renamed or copied file?). Choose another."
        )


def restore(
    database: str | os.PathLike[str],
    snapshot: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    wait: float = 0.5,
    table: str = DEFAULT_TABLE,
) -> Snapshot:
    """Replace the contents of ``database`` with those of one of its snapshots.

    Refuses while another process uses the database: the migration lock must be
    free, and ``BEGIN EXCLUSIVE`` must succeed within ``wait`` seconds. The
    current contents are first saved as a snapshot of their own (returned, and
    never pruned by this call), so a restore can itself be undone.

    :raises LockTimeout: another process holds the database or its migration lock.
    :raises BackupError: no such snapshot of this database (see
        ``find_snapshot``), or the snapshot is damaged.
    """
    database = database_path(database)
    chosen = find_snapshot(database, snapshot, directory=directory, table=table)
    _verify(chosen.path)
    lock = lock_for(database)
    if not lock.try_acquire():
        raise LockTimeout(
            f"Database {database} is being migrated by another process (it holds {lock.path})."
            " Stop the app and try again."
        )
    with lock:
        conn = connect(database, lock_timeout=wait, create=False)
        try:
            check_idle(conn, database, wait=wait, lock_timeout=wait)
            journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            version = _version_of(conn, table)
            before = take_snapshot(database, directory=directory, keep=None, version=version, table=table)
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
    oldest: tuple[int, str, str] | None,
    table: str,
    directory: str | os.PathLike[str] | None,
    keep: int | None,
) -> Snapshot:
    """The snapshot of ``database`` before a run's first change, taken or reused.

    Called holding the write lock; ``oldest`` is the tracker's oldest row
    (version, applied at, applied by) read inside it, the database's lineage.
    Workers that start together apply the migrations between them; the first to
    change the database took a snapshot of it after ``since`` (when this run
    began): that one is reused, as is one of the same unchanged data (see
    :func:`unchanged_since`) — only ever this database's own (its identity key).
    Otherwise a new one is taken.
    """
    # This database's key, from the tracker rows read inside the lock (the same
    # committed rows the snapshot will hold): only its own snapshots are reused.
    key = identity_key(database, None if oldest is None else lineage(*oldest))
    try:
        newest = keyed_snapshots(snapshot_folder(database, directory), {key})[:1]
    except BackupError:
        newest = []  # take_snapshot says what is wrong with the folder
    if newest and (newest[0].created.timestamp() >= since or unchanged_since(database, newest[0], version)):
        return newest[0]
    return take_snapshot(database, directory=directory, keep=keep, version=version, table=table)


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
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=DEFAULT_LOCK_TIMEOUT)
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


def _version_of(conn: sqlite3.Connection, table: str) -> int:
    """The newest version in the tracker ``table``, for file names only."""
    try:
        row = conn.execute(f'SELECT max(version) FROM "{table}"').fetchone()
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
