"""The quick check a start with nothing pending makes: :func:`up_to_date`, importing almost nothing.

Holds the check :func:`selfmigrate.migrate` runs before anything else: the files'
fingerprint against the one the runner stored, read through the backend's quick reader.
Must not import the runner, the registry, :mod:`logging` or any engine (see docs/startup.rst).
"""

from __future__ import annotations

import os

from ..backends.select import quick_read_rows
from .fingerprint import examine_all, seen_digest
from .locations import folders_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    from .locations import Seen


def up_to_date(
    database: str | os.PathLike[str],
    locations: str | os.PathLike[str] | t.Sequence[str | os.PathLike[str]],
    table: str,
    lock_timeout: float,
) -> int | None:
    """Return the database's version if it is known to be up to date, else ``None``.

    Known means: the stored fingerprint equals the one of the files and rows
    now. ``None`` is not an error; it means "look properly": the database does
    not exist, has no fingerprint yet, something changed, or a location is
    inside a zip file. The full run that follows finds and reports whatever is
    wrong. Nothing is written and no lock is taken.

    A database held exclusively by another process is waited for at most
    ``lock_timeout`` seconds; :func:`selfmigrate.migrate` charges that wait to
    the full run's budget, so that one start waits ``lock_timeout`` in all.
    """
    return look(database, locations, table, lock_timeout)[0]


def look(
    database: str | os.PathLike[str],
    locations: str | os.PathLike[str] | t.Sequence[str | os.PathLike[str]],
    table: str,
    lock_timeout: float,
) -> tuple[int | None, Seen | None]:
    """:func:`up_to_date`, and the folders as it examined them (``None`` if it did not).

    What was examined is what a full run that follows may take as its discovery's
    listing (see :class:`~selfmigrate.core.registry.MigrationRegistry`), instead of
    listing and examining every file a second time.
    """
    if isinstance(locations, (str, os.PathLike)):
        locations = [locations]
    if not (table.isidentifier() and table.isascii()):
        return None, None
    folders = folders_of(locations)
    if folders is None:
        return None, None
    read = quick_read_rows(database, table, lock_timeout)
    if read is None:
        return None, None
    stored, versions, checksums, states, newest = read
    if stored is None:
        return None, None
    seen = examine_all(folders)
    if seen is None or stored != seen_digest(seen, versions, checksums, states):
        # Also a folder or file the registry refuses (examine_all gives None): the
        # full run raises the DiscoveryError, where on_failure applies.
        return None, seen
    return newest, seen
