"""The SQLite side of a dry run: a backup-API copy of the database, and its rows read as digests.

Holds :class:`ScratchCopy` (a temporary copy of the database, only read from, deleted on
close), :func:`changes` (rows inserted, deleted and updated between two readings, rows
keyed by rowid). Must not know migrations or the runner: ops/dryrun.py applies them to
the copy with the runner.
"""

from __future__ import annotations

import array
import contextlib
import os
import shutil
import sqlite3
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackupError, DatabaseError
from .connection import database_path
from .lock import LOCK_SUFFIX

#: Room the copy needs beyond the database's own size (its journal), as a factor.
SPACE_FACTOR = 1.1
_COPY_SUFFIXES = ("", "-wal", "-shm", "-journal", LOCK_SUFFIX)
#: One table's change: (table, rows before or ``None``, rows after or ``None``,
#: inserted, deleted, updated).
Change = tuple[str, int | None, int | None, int, int, int]


class ScratchCopy:
    """A temporary copy of a SQLite database made with the online backup API.

    The real database is only read: through a read-only connection, or, for a
    database in WAL mode whose ``-wal`` file does not exist, through a connection
    that only reads and removes on closing the empty ``-wal`` and ``-shm`` files it
    had to create (a read-only connection would leave them behind).

    :param directory: where the copy goes (default: the database's folder, which
        has room for the snapshots ``apply`` takes anyway; the system's temporary
        folder is often a small in-memory file system).
    :raises BackupError: the copy cannot be written (no room, no permission).
    :raises DatabaseError: the database cannot be read.
    """

    def __init__(
        self, database: str | os.PathLike[str], directory: str | os.PathLike[str] | None, *, lock_timeout: float
    ) -> None:
        real = database_path(database)
        folder = Path(directory) if directory is not None else real.parent
        #: The copy, a database file the runner can migrate.
        self.location = _temporary(real, folder)
        try:
            _copy(real, self.location, lock_timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> t.Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the copy and whatever SQLite left beside it."""
        for suffix in _COPY_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.location}{suffix}")

    def size(self) -> int:
        """The copy's size in bytes."""
        try:
            return self.location.stat().st_size
        except FileNotFoundError:
            return 0

    def tables(self, exclude: t.Collection[str], before: dict[str, TableState] | None = None) -> dict[str, TableState]:
        """Every table of the copy but ``exclude``, its rows as digests.

        A table also in ``before`` (an earlier reading) is digested over the columns
        it had then, so that :func:`changes` compares like with like.
        """
        return _tables(self.location, exclude, before)


def _temporary(real: Path, folder: Path) -> Path:
    """A new, empty, owner-only file in ``folder`` for the copy, after checking there is room."""
    need = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            need += os.stat(f"{real}{suffix}").st_size
    try:
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise BackupError(
            f"Cannot write the dry run's copy of database {real} into {folder}: {e}. Point the backup"
            " directory elsewhere (SELFMIGRATE_BACKUP_DIR)."
        ) from e
    if free < need * SPACE_FACTOR:
        raise BackupError(
            f"Not enough room for the dry run's copy of database {real} in {folder}: it needs about"
            f" {int(need * SPACE_FACTOR)} bytes, {free} are free. Free some space or point the backup"
            " directory elsewhere (SELFMIGRATE_BACKUP_DIR). Nothing was changed."
        )
    try:
        fd, name = tempfile.mkstemp(prefix=f".{real.name}.dry-run-", suffix=".sqlite", dir=folder)
    except OSError as e:
        raise BackupError(
            f"Cannot write the dry run's copy of database {real} into {folder}: {e}. Make the folder"
            " writable, or point the backup directory elsewhere (SELFMIGRATE_BACKUP_DIR)."
        ) from e
    os.close(fd)
    return Path(name)


def _is_wal(path: Path) -> bool:
    """Whether the database file's header says WAL mode (read and write versions 2)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def _copy(real: Path, copy: Path, lock_timeout: float) -> None:
    # Read-only, except for a WAL database without a -wal file: a read-only
    # connection would create -wal and -shm and leave them; a read-write one
    # removes them when it closes, and with an empty WAL it has nothing to write.
    mode = "rw" if _is_wal(real) and not os.path.exists(f"{real}-wal") else "ro"
    try:
        source = sqlite3.connect(f"{real.resolve().as_uri()}?mode={mode}", uri=True, timeout=lock_timeout)
        try:
            target = sqlite3.connect(str(copy), isolation_level=None)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as e:
        name = getattr(e, "sqlite_errorname", "")
        if name == "SQLITE_FULL" or "full" in str(e):
            raise BackupError(
                f"The dry run's copy of database {real} did not fit into {copy.parent}: {e}. Free some"
                " space or point the backup directory elsewhere (SELFMIGRATE_BACKUP_DIR)."
            ) from e
        raise DatabaseError(f"Cannot copy database {real} for a dry run: {e}. Is it a SQLite database?") from e


@dataclass
class TableState:
    """A table's rows as keys (sorted) and hashes of their values."""

    #: The columns whose values were hashed.
    columns: tuple[str, ...]
    keys: array.array[int]
    hashes: array.array[int]


def _tables(
    path: Path, exclude: t.Collection[str], before: dict[str, TableState] | None = None
) -> dict[str, TableState]:
    """Every table of the copy; a table also in ``before`` is hashed over the columns it had then."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [
            name
            for (name, sql) in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
            and name not in exclude
            and not (sql or "").upper().startswith("CREATE VIRTUAL")
        ]
        found = {}
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
            columns = tuple(row[1] for row in info)
            compared = before[name].columns if before is not None and name in before else columns
            # What ADD COLUMN gave every row of a column added since: a row that holds
            # something else there was updated (an UPDATE after the ADD COLUMN). A default of
            # the time or an expression (a table rebuilt by hand) may differ row by row: not compared.
            defaults = {
                i: conn.execute(f"SELECT {row[4] or 'NULL'}").fetchone()[0]
                for i, row in enumerate(info)
                if row[1] not in compared and not _varies(row[4])
            }
            found[name] = TableState(compared, *_rows(conn, quoted, columns, compared, defaults))
        return found
    finally:
        conn.close()


def _varies(default: str | None) -> bool:
    """Whether a column default may give each row another value (CURRENT_TIME…, an expression)."""
    return default is not None and ("CURRENT_" in default.upper() or "(" in default)


def _rows(
    conn: sqlite3.Connection,
    quoted: str,
    columns: tuple[str, ...],
    compared: tuple[str, ...],
    defaults: t.Mapping[int, object],
) -> tuple[array.array[int], array.array[int]]:
    """The rows' keys, sorted, and the hash of each row's values in the ``compared`` columns.

    ``defaults``: the columns not in ``compared`` (by index in ``columns``) and the
    value ADD COLUMN gave them; a row whose value there differs has it hashed too.
    """
    # A column gone since is a value no row had before: it reads as this marker.
    gone = object()
    picks = [columns.index(c) if c in columns else -1 for c in compared]
    added = [(i, value, type(value)) for i, value in defaults.items()]

    def hashed(row: tuple[object, ...], offset: int) -> int:
        values = tuple(row[i + offset] if i >= 0 else gone for i in picks)
        moved = tuple(
            (i, row[i + offset], type(row[i + offset]))
            for i, value, kind in added
            if row[i + offset] != value or type(row[i + offset]) is not kind
        )
        return hash((values, tuple(map(type, values)), moved) if moved else (values, tuple(map(type, values))))
    select = ", ".join('"' + c.replace('"', '""') + '"' for c in columns) or "NULL"
    keys: array.array[int] = array.array("q")
    hashes: array.array[int] = array.array("q")
    try:
        cursor = conn.execute(f"SELECT rowid, {select} FROM {quoted} ORDER BY rowid")
    except sqlite3.OperationalError:
        cursor = None  # WITHOUT ROWID: keyed by its primary key, below
    if cursor is not None:
        if compared == columns:  # the common case, without picking values one by one
            for row in cursor:
                keys.append(row[0])
                values = row[1:]
                hashes.append(hash((values, tuple(map(type, values)))))
            return keys, hashes
        for row in cursor:
            keys.append(row[0])
            hashes.append(hashed(row, 1))
        return keys, hashes
    pk = [row[1] for row in sorted(conn.execute(f"PRAGMA table_info({quoted})"), key=lambda r: r[5]) if row[5]]
    pk_picks = [columns.index(c) for c in pk]
    pairs = []
    for row in conn.execute(f"SELECT {select} FROM {quoted}"):
        pairs.append((hash(tuple(row[i] for i in pk_picks)), hashed(row, 0)))
    pairs.sort()
    keys.extend(k for k, _ in pairs)
    hashes.extend(h for _, h in pairs)
    return keys, hashes


def changes(before: dict[str, TableState], after: dict[str, TableState]) -> list[Change]:
    """Per table, rows inserted, deleted and updated between two readings; unchanged tables left out."""
    found: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None:
            assert now is not None
            found.append((name, None, len(now.keys), len(now.keys), 0, 0))
        elif now is None:
            found.append((name, len(was.keys), None, 0, len(was.keys), 0))
        else:
            inserted, deleted, updated = _merge(was, now)
            if inserted or deleted or updated:
                found.append((name, len(was.keys), len(now.keys), inserted, deleted, updated))
    return found


def _merge(was: TableState, now: TableState) -> tuple[int, int, int]:
    """Inserted, deleted and updated rows, walking both sorted key lists once."""
    inserted = deleted = updated = 0
    i = j = 0
    a, b = was.keys, now.keys
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            updated += was.hashes[i] != now.hashes[j]
            i += 1
            j += 1
        elif a[i] < b[j]:
            deleted += 1
            i += 1
        else:
            inserted += 1
            j += 1
    return inserted + len(b) - j, deleted + len(a) - i, updated
