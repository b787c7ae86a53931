"""The migration files' fingerprint, and its key against the tracker rows: computed here only.

Holds :func:`fingerprint` and :func:`fingerprint_key`, which the runner stores after a run
and the quick check compares at the next start. Must not know databases or engines; it is
on the no-op start, so it imports only :mod:`os` (the why is in docs/startup.rst).
"""

from __future__ import annotations

import os

from .locations import list_folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    from .locations import Stat

    #: A tracker row as the fingerprint sees it: version, checksum, state.
    Row = tuple[int, str, str]
    #: What a stored key certifies (see :func:`certified`).
    Certificate = tuple[dict[tuple[str, str], Stat], dict[int, str]]

#: Changes whenever what the fingerprint covers changes.
FORMAT = "selfmigrate fingerprint 4"


def fingerprint(folders: t.Sequence[str]) -> str:
    """The fingerprint text of the migration files in ``folders``.

    Each file's name, size, modification time and change time. Equal texts mean
    no file was added, removed, renamed or written to since: an edit changes at
    least the change time, which no tool can set back.
    """
    return fingerprint_of((folder, ((name, stat) for name, _, stat in list_folder(folder))) for folder in folders)


def fingerprint_of(listings: t.Iterable[tuple[str, t.Iterable[tuple[str, Stat]]]]) -> str:
    """The fingerprint text of folders already listed: ``(folder, [(name, stat), ...])``
    each, names sorted (as :func:`~.locations.list_folder` gives them)."""
    parts = [FORMAT]
    for folder, files in listings:
        parts.append(os.path.abspath(folder))
        for name, (size, mtime, ctime) in files:
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
        if len(parts) == 1:
            folder = line
        elif len(parts) == 4 and all(part.isdigit() for part in parts[1:]):
            files[(folder, parts[0])] = (int(parts[1]), int(parts[2]), int(parts[3]))
        elif len(parts) == 3 and parts[0].isdigit():
            rows[int(parts[0])] = parts[1]
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
    for version, path, stat in files:
        if stat is None:
            continue
        entry = (os.path.abspath(os.path.dirname(path)), os.path.basename(path))
        now = checksums.get(version)
        if now is not None and listed.get(entry) == stat and rows.get(version) == now:
            known.add(version)
    return known
