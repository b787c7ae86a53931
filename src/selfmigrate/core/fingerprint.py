"""The migration files' fingerprint, and its key against the tracker rows: computed here only.

Holds :func:`fingerprint` and :func:`fingerprint_key`, which the runner stores after a run
and the quick check compares at the next start. Must not know databases or engines; it is
on the no-op start, so it imports only :mod:`os` and the import-free config (the why is in docs/startup.rst).
"""

from __future__ import annotations

import os
from stat import S_ISREG

from ..config import TRACKER_LAYOUT
from .locations import is_candidate, list_folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    from .locations import Stat

    #: A tracker row as the fingerprint sees it: version, checksum, state.
    Row = tuple[int, str, str]
    #: What a stored key certifies (see :func:`certified`).
    Certificate = tuple[dict[tuple[str, str], Stat], dict[int, str]]

#: Changes whenever what the fingerprint covers changes.
FORMAT = f"selfmigrate fingerprint 5, tracker layout {TRACKER_LAYOUT}"


def fingerprint(folders: t.Sequence[str]) -> str:
    """The fingerprint text of the migration files in ``folders``.

    Each file's name, size, modification time and change time. Equal texts mean
    no file was added, removed, renamed or written to since: an edit changes at
    least the change time, which no tool can set back.

    The same text as :func:`fingerprint_of` gives for :func:`~.locations.list_folder`'s
    listing, made with no object per file but its line (at 10 000 files, the
    listing's tuples and paths were most of a start's memory).

    :raises DiscoveryError: as :func:`~.locations.list_folder`.
    """
    parts = [FORMAT]
    for folder in folders:
        lines = _lines(folder)
        if lines is None:  # something list_folder refuses: it says what
            return fingerprint_of((f, ((name, stat) for name, _, stat in list_folder(f))) for f in folders)
        parts.append(os.path.abspath(folder))
        # A name is followed by "\0", lower than any character of a name: sorting the
        # lines sorts by name, as list_folder does.
        lines.sort()
        parts.extend(lines)
    return "\n".join(parts)


def _lines(folder: str) -> list[str] | None:
    """The fingerprint lines of a folder's candidate files, unsorted; ``None`` if one is not a plain file."""
    lines = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if not is_candidate(name):
                    continue
                st = entry.stat()
                if not S_ISREG(st.st_mode):
                    return None
                lines.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}")
    except OSError:
        return None
    return lines


def fingerprint_of(listings: t.Iterable[tuple[str, t.Iterable[tuple[str, Stat]]]]) -> str:
    """The fingerprint text of folders already listed: ``(folder, [(name, stat), ...])``
    each, names sorted (as :func:`~.locations.list_folder` gives them)."""
    parts = [FORMAT]
    for folder, files in listings:
        parts.append(os.path.abspath(folder))
        for name, (size, mtime, ctime) in files:
            parts.append(f"{name}\0{size}\0{mtime}\0{ctime}")
    return "\n".join(parts)


def rows_text(rows: t.Iterable[Row]) -> str:
    """The tracker rows as the key holds them: ``version checksum state``, one a line.

    A backend's quick reader may build the same text in the database (SQLite's
    ``group_concat``), so that a start reads one value instead of a row object per migration.
    """
    return "\n".join(f"{version} {checksum} {state}" for version, checksum, state in rows)


def fingerprint_key(files: str, rows: t.Iterable[Row]) -> str:
    """Combine a files fingerprint with the tracker rows it was checked against.

    Any change to the files or to the rows (a migration applied, a rollback, a
    rehash, an interrupted run) gives another key. The key's text is kept as
    the certificate of what was verified (:func:`certified`); the quick check
    compares its :func:`digest`.
    """
    return files + "\n" + rows_text(rows)


def digest(*parts: str) -> str:
    """The digest (BLAKE2b, 256 bits) of ``"\\n".join(parts)``: of a key, or of its files and rows text.

    A digest, not the text, is compared at every start: at 10 000 migrations the
    text is over a megabyte. BLAKE2b comes from hashlib's own C module, which
    loads in a fraction of a millisecond (:mod:`hashlib` itself starts OpenSSL).
    """
    try:
        from _blake2 import blake2b
    except ImportError:  # another Python: the same function through hashlib
        from hashlib import blake2b
    h = blake2b(digest_size=32)
    for i, part in enumerate(parts):
        if i:
            h.update(b"\n")
        h.update(part.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def certified(key: str | None) -> Certificate:
    """What a stored key certifies: each file's ``(folder, name)`` → stat, each row's version → checksum.

    Read back from the key's text (see :func:`fingerprint_of` and :func:`fingerprint_key`):
    a file listed with a stat was verified against the row of its version with that
    checksum. Empty for ``None`` or a key in another format.
    """
    files: dict[tuple[str, str], Stat] = {}
    rows: dict[int, str] = {}
    lines = [] if key is None else key.split("\n")
    if not lines or lines[0] != FORMAT:
        return files, rows
    folder = ""
    for line in lines[1:]:
        parts = line.split("\0")
        if len(parts) == 4 and all(part.isdigit() for part in parts[1:]):
            files[(folder, parts[0])] = (int(parts[1]), int(parts[2]), int(parts[3]))
        elif len(parts) == 1 and line[:1].isdigit() and line.count(" ") == 2:
            version, checksum, _ = line.split(" ")  # a row (a folder line is an absolute path)
            if version.isdigit():
                rows[int(version)] = checksum
        elif len(parts) == 1:
            folder = line
    return files, rows


def unchanged_since(
    certificate: Certificate,
    files: t.Iterable[tuple[int, str, Stat | None]],
    checksums: t.Mapping[int, str],
) -> set[int]:
    """The versions whose file needs no reading: same name, size and times as when certified,
    and certified against the checksum the tracker holds for it now.

    :param files: ``(version, path, stat)`` of each migration file on disk.
    :param checksums: the tracker's checksum of each applied version now.
    """
    listed, rows = certificate
    known = set()
    folders: dict[str, str] = {}
    for version, path, stat in files:
        if stat is None:
            continue
        where, _, name = path.rpartition(os.sep)
        folder = folders.get(where)
        if folder is None:
            folder = folders[where] = os.path.abspath(os.path.dirname(path))
        entry = (folder, name)
        now = checksums.get(version)
        if now is not None and listed.get(entry) == stat and rows.get(version) == now:
            known.add(version)
    return known
