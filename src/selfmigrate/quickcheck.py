"""The files' fingerprint, and the quick check a start with nothing pending makes with it.

Every time migrations are applied, the runner's final transaction stores a
fingerprint of the migration files (each one's name, size, modification time and
change time) combined with the tracker's rows. A start whose fingerprint still
matches knows, without reading a single file, that nothing is pending, no
applied file was edited or removed, and every file name was already checked:
it is up to date. That is :func:`up_to_date`, which :func:`selfmigrate.migrate`
runs before anything else.

This module is the whole cost of such a start, so it imports only what that
check needs (:mod:`os` and :mod:`sqlite3`). It is also where
migrations locations are classified and folders listed, so that the registry
and the check can never disagree about which files there are.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from stat import S_ISDIR, S_ISREG

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    #: ``(size, mtime_ns, ctime_ns)`` of a file.
    Stat = tuple[int, int, int]
    #: A tracker row as the fingerprint sees it: version, checksum, state.
    Row = tuple[int, str, str]

#: Changes whenever what the fingerprint covers changes.
FORMAT = "selfmigrate fingerprint 4"


def is_candidate(filename: str) -> bool:
    """Whether a file in a migrations location is meant to be a migration.

    ``.sql`` and ``.py`` files are, except those whose name starts with ``_``
    (templates, helpers, ``__init__.py``) or ``.`` (editor and system files).
    The extension is compared without case, so that ``0003_x.SQL`` is reported
    as a bad name rather than silently skipped.
    """
    return filename.lower().endswith((".sql", ".py")) and not filename.startswith(("_", "."))


def classify(spec: str | os.PathLike[str]) -> tuple[str, str]:
    """Say how a migrations location is read: ``("package", name)``,
    ``("directory", path)``, or ``("unknown", spec)``.

    A :class:`os.PathLike` is a directory. A string is a package if it is a
    dotted name that imports as one, a directory if it contains a path separator
    or names an existing folder; a folder in the working directory is read as
    that folder even where it also imports as a namespace package (which would
    merge every same-named folder on :data:`sys.path`).
    """
    if isinstance(spec, os.PathLike):
        return "directory", os.fspath(spec)
    looks_like_path = "/" in spec or os.sep in spec or spec.startswith(".")
    if not looks_like_path and spec and all(part.isidentifier() for part in spec.split(".")):
        import importlib.util

        try:
            found = importlib.util.find_spec(spec)
        except (ImportError, ValueError):
            found = None
        namespace_in_cwd = found is not None and found.origin is None and os.path.isdir(spec)
        if found is not None and not namespace_in_cwd:
            return "package", spec
    if looks_like_path or (spec and os.path.isdir(spec)):
        return "directory", spec
    return "unknown", spec


def package_folder(name: str) -> str | None:
    """The folder of a regular package on disk, or ``None`` (zip file, namespace package)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return None
    folders = list(spec.submodule_search_locations)
    if len(folders) != 1 or not os.path.isdir(folders[0]):
        return None
    return folders[0]


def is_package(name: str) -> bool:
    """Whether ``name`` imports as a package (anywhere: on disk, in a zip file, namespace)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.submodule_search_locations is not None


def list_folder(folder: str) -> list[tuple[str, str, Stat]]:
    """The candidate files of a folder (see :func:`is_candidate`), sorted by name.

    Each as ``(name, path, (size, mtime_ns, ctime_ns))``, from one
    :func:`os.scandir` and no object per file. A symbolic link counts as the
    file it points to.

    :raises DiscoveryError: the folder cannot be listed, or a candidate is not a
        regular file (a dangling or looping symbolic link, a directory, a file
        that cannot be examined). The registry lists folders with this function
        too, so the quick check and the full run never disagree on the files.
    """
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not is_candidate(entry.name):
                    continue
                try:
                    st = entry.stat()
                except OSError as e:
                    raise _unusable(entry.path, e) from e
                if not S_ISREG(st.st_mode):
                    raise _not_a_file(entry.path, st.st_mode)
                found.append((entry.name, entry.path, (st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
    except OSError as e:
        from .errors import DiscoveryError

        raise DiscoveryError(
            f"Migrations folder {folder} cannot be listed: {e.strerror or e}. Let the app's user"
            " read and enter it (chmod u+rx, or a+rx), or point the migrations setting at the"
            " right place.",
            paths=[folder],
        ) from e
    found.sort()
    return found


def _unusable(path: str, error: OSError) -> Exception:
    """The error for a candidate whose :func:`os.stat` fails."""
    from .errors import DiscoveryError

    if os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if isinstance(error, FileNotFoundError):
            problem = f"is a symbolic link to {target}, which does not exist"
        elif error.errno == 40:  # ELOOP
            problem = f"is a symbolic link to {target} that loops back on itself"
        else:
            problem = f"is a symbolic link to {target}, which cannot be examined ({error.strerror or error})"
        fix = "Point the link at the migration file, or remove it"
    elif isinstance(error, PermissionError):
        problem = "cannot be examined: entering its folder is not allowed"
        fix = f"Let the app's user enter the folder (chmod a+x {os.path.dirname(path) or '.'})"
    else:
        problem = f"cannot be examined ({error.strerror or error})"
        fix = "Check the file and the disk"
    return DiscoveryError(
        f"Migration file {path} {problem}. {fix}; start its name with '_' if it is not a migration.",
        paths=[path],
    )


def _not_a_file(path: str, mode: int) -> Exception:
    """The error for a candidate that is a directory, a FIFO, a device or a socket."""
    from .errors import DiscoveryError

    what = "a directory" if S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
    return DiscoveryError(
        f"{path} is named like a migration but is {what}. Rename or remove it; start its name"
        " with '_' if it is not a migration.",
        paths=[path],
    )


def fingerprint(folders: t.Sequence[str]) -> str:
    """The fingerprint text of the migration files in ``folders``.

    Equal texts mean no file was added, removed, renamed or written to since:
    an edit changes at least the change time, which no tool can set back.
    """
    parts = [FORMAT]
    for folder in folders:
        parts.append(os.path.abspath(folder))
        for name, _, (size, mtime, ctime) in list_folder(folder):
            parts.append(f"{name}\0{size}\0{mtime}\0{ctime}")
    return "\n".join(parts)


def fingerprint_key(files: str, rows: t.Iterable[Row]) -> str:
    """Combine a files fingerprint with the tracker rows it was checked against.

    Any change to the files or to the rows (a migration applied, a rollback, a
    rehash, an interrupted run) gives another key. The key is the text itself,
    compared whole: no digest to compute at every start (:mod:`hashlib` alone
    would cost a tenth of a bare start), and nothing to doubt about collisions.
    For 1000 migrations it is about 120 kB, in one row.
    """
    return files + "\n" + "\n".join(f"{version}\0{checksum}\0{state}" for version, checksum, state in rows)


def folders_of(locations: t.Sequence[str | os.PathLike[str]]) -> list[str] | None:
    """The folder on disk of each location, or ``None`` if one is not a plain folder."""
    folders = []
    for spec in locations:
        kind, name = classify(spec)
        folder = package_folder(name) if kind == "package" else name if kind == "directory" else None
        if folder is None or not os.path.isdir(folder):
            return None
        folders.append(folder)
    return folders


def up_to_date(
    database: str | os.PathLike[str],
    locations: str | os.PathLike[str] | t.Sequence[str | os.PathLike[str]],
    table: str,
    lock_timeout: float,
) -> int | None:
    """Return the database's version if it is known to be up to date, else ``None``.

    Known means: the stored fingerprint equals the one of the files and rows
    now. ``None`` is not an error; it means "look properly": the database does
    not exist, is not SQLite, has no fingerprint yet, something changed, or a
    location is inside a zip file. The full run that follows finds and reports
    whatever is wrong. Nothing is written and no lock is taken.

    A database held exclusively by another process is waited for at most
    ``lock_timeout`` seconds; :func:`selfmigrate.migrate` charges that wait to
    the full run's budget, so that one start waits ``lock_timeout`` in all.
    """
    if isinstance(locations, (str, os.PathLike)):
        locations = [locations]
    path = os.fspath(database)
    if path.startswith("sqlite") or not (table.isidentifier() and table.isascii()) or not os.path.isfile(path):
        return None
    folders = folders_of(locations)
    if folders is None:
        return None
    from .errors import DiscoveryError  # loaded already by the caller: costs nothing

    try:
        files = fingerprint(folders)
    except DiscoveryError:
        # A folder or file the registry refuses too: the full run raises it, where
        # on_failure applies.
        return None
    uri = "file:" + os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    try:
        conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=lock_timeout)
        try:
            stored = conn.execute(f"SELECT fingerprint FROM {table}_fingerprint WHERE id = 1").fetchone()
            rows = conn.execute(f"SELECT version, checksum, state FROM {table} ORDER BY version").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        # No fingerprint table yet, a file that is not SQLite, a busy database: the
        # full run meets the same thing and says what it is.
        return None
    if stored is None or not rows or stored[0] != fingerprint_key(files, rows):
        return None
    return int(rows[-1][0])


def log_info(name: str, message: str, *args: object) -> None:
    """Log at INFO on logger ``name``, without importing :mod:`logging` for nothing.

    If no code in the process has imported :mod:`logging`, nothing has
    configured a handler, and an INFO record would be dropped; importing the
    module just to drop it would be most of a no-op start's cost.
    """
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(name).info(message, *args)
