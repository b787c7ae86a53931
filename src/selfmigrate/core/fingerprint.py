"""The migration files' fingerprint, and its key against the tracker rows: computed here only.

Holds :func:`fingerprint` and :func:`fingerprint_key`, which the runner stores after a run,
and :func:`quick_digest`, which the quick check compares at the next start. Must not know
databases or engines; it is on the no-op start, so it imports only :mod:`os`, :mod:`sys` and
the import-free config, and when used hashlib's BLAKE2 module (and :mod:`array` for thousands
of files): the why is in docs/startup.rst.
"""

from __future__ import annotations

import os
import sys
from stat import S_ISREG

from ..config import TRACKER_LAYOUT
from .locations import candidate_names, is_candidate, list_folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    from .locations import Stat

    #: A tracker row as the fingerprint sees it: version, checksum, state.
    Row = tuple[int, str, str]
    #: What a stored key certifies (see :func:`certified`).
    Certificate = tuple[dict[tuple[str, str], Stat], dict[int, str]]
    #: A folder as its digest takes it: absolute path, names (sorted), then size, mtime, ctime of each.
    Folder = tuple[str, list[str], list[int]]
    #: A key's content as its digest takes it: the folders, the rows' versions, checksums and states.
    Content = tuple[list[Folder], str, str, str]

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
    each, names sorted (as :func:`~.locations.list_folder` gives them).

    The text keeps what it was made of (the names and the integers), so that
    :func:`digest` of a key made from it needs no parsing.
    """
    parts = [FORMAT]
    folders: list[Folder] = []
    for folder, files in listings:
        path = os.path.abspath(folder)
        parts.append(path)
        names: list[str] = []
        numbers: list[int] = []
        for name, (size, mtime, ctime) in files:
            parts.append(f"{name}\0{size}\0{mtime}\0{ctime}")
            names.append(name)
            numbers.extend((size, mtime, ctime))
        folders.append((path, names, numbers))
    text = _Made("\n".join(parts))
    text.folders = folders
    return text


class _Made(str):
    """A fingerprint or key text made here, with the content it was made of (see :func:`digest`).

    Plain text to everything else: ``str()`` of it, as the tracker stores it, is a plain :class:`str`.
    """

    folders: list[Folder] | None = None
    content: Content | None = None


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
    rows = list(rows)
    key = files + "\n" + rows_text(rows)
    folders = getattr(files, "folders", None)
    if folders is None:
        return key
    made = _Made(key)
    made.content = (
        folders,
        " ".join([str(version) for version, _, _ in rows]),
        "\n".join([checksum for _, checksum, _ in rows]),
        "\n".join([state for _, _, state in rows]),
    )
    return made


def digest(*parts: str) -> str:
    """The digest the quick check compares for a key (``"\\n".join(parts)``): BLAKE2b, 256 bits.

    Taken over the key's content in the form :func:`quick_digest` reads it at a
    start (the names, each file's size and two times as 64-bit integers, the
    rows' columns as three texts), so that the start builds no line per file or per row: at 10 000
    migrations the key's text is over a megabyte. A text that is not a key of
    :data:`FORMAT` gets a digest no start computes.
    """
    key = "\n".join(parts)
    content = parts[0].content if len(parts) == 1 and isinstance(parts[0], _Made) else None
    if content is None:
        content = _content(key)
    if content is not None:
        folders, versions, checksums, states = content
        try:
            packed = [(folder, names, _packed(numbers)) for folder, names, numbers in folders]
        except OverflowError:  # a time beyond 64 bits: no start computes it either
            pass
        else:
            return _digest_of(_hasher(), packed, versions, checksums, states)
    h = _hasher()
    h.update(b"selfmigrate key text\0")
    h.update(key.encode("utf-8", "surrogateescape"))
    text: str = h.hexdigest()
    return text


def quick_digest(folders: t.Sequence[str], versions: str, checksums: str, states: str) -> str | None:
    """:func:`digest` of the key of the files in ``folders`` now and the tracker rows given, or ``None``.

    The rows as three texts, in version order: the versions separated by spaces,
    the checksums and the states each separated by newlines (what SQLite's
    ``group_concat`` builds without a string per row). Each folder is listed by name
    and each candidate examined with one ``stat`` relative to the open folder
    (:func:`os.stat` with ``dir_fd``: no path to build or resolve per file), its
    size and times kept as integers, never formatted.

    ``None`` means "look properly": a folder that cannot be listed, a candidate
    that is not a plain file or cannot be examined (:func:`~.locations.list_folder`
    says what is wrong in the full run), a time that does not fit in 64 bits.
    """
    listed = []
    for folder in folders:
        found = _examine(folder)
        if found is None:
            return None
        names, numbers = found
        try:
            listed.append((os.path.abspath(folder), names, _packed(numbers)))
        except OverflowError:
            return None
    return _digest_of(_hasher(), listed, versions, checksums, states)


def _examine(folder: str) -> tuple[list[str], list[int]] | None:
    """A folder's candidate names, sorted, and the size, mtime and ctime of each; ``None``
    if it cannot be listed or a candidate is not a plain file that can be examined."""
    names: list[str]
    numbers: list[int] = []
    add = numbers.extend
    stat = os.stat
    if os.listdir in os.supports_fd and stat in os.supports_dir_fd:
        try:
            fd = os.open(folder, _DIRECTORY)
        except OSError:
            return None
        try:
            names = candidate_names(os.listdir(fd))
            names.sort()
            for name in names:
                st = stat(name, dir_fd=fd)
                if st.st_mode & 0o170000 != 0o100000:  # not S_ISREG
                    return None
                add((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError:
            return None
        finally:
            os.close(fd)
        return names, numbers
    # Where a folder cannot be opened to list and examine relative to it (Windows).
    lines = _lines(folder)
    if lines is None:
        return None
    lines.sort()
    names = []
    for line in lines:
        name, size, mtime, ctime = line.split("\0")
        names.append(name)
        add((int(size), int(mtime), int(ctime)))
    return names, numbers


#: How :func:`quick_digest` opens a folder to list it and examine its files.
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _hasher() -> t.Any:
    """A BLAKE2b of 256 bits, from hashlib's own C module: it loads in a fraction of a
    millisecond (:mod:`hashlib` itself starts OpenSSL)."""
    try:
        from _blake2 import blake2b
    except ImportError:  # another Python: the same function through hashlib
        from hashlib import blake2b
    return blake2b(digest_size=32)


def _packed(numbers: list[int]) -> bytes:
    """Integers as signed 64-bit little-endian words, one after another.

    A few thousand through a :class:`memoryview` of machine words (importing
    :mod:`array` costs a start more than packing the times of a thousand files);
    more through :mod:`array`, which packs them in one call. The same bytes.

    :raises OverflowError: one does not fit.
    """
    try:
        if sys.byteorder != "little":
            return b"".join([number.to_bytes(8, "little", signed=True) for number in numbers])
        if len(numbers) >= _ARRAY_FROM:
            from array import array

            return array("q", numbers).tobytes()
        packed = bytearray(8 * len(numbers))
        words = memoryview(packed).cast("q")
        for index, number in enumerate(numbers):
            words[index] = number
        return bytes(packed)
    except (ValueError, OverflowError) as e:
        raise OverflowError(f"A size or time does not fit in 64 bits: {e}") from None


#: From how many integers :func:`_packed` imports :mod:`array` (1000 files' worth of times).
_ARRAY_FROM = 3000


def _digest_of(
    h: t.Any, folders: t.Iterable[tuple[str, list[str], bytes]], versions: str, checksums: str, states: str
) -> str:
    """The digest of a key's content: each part preceded by its length, so that parts cannot run into each other."""

    def part(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    part(_DOMAIN)
    for folder, names, numbers in folders:
        part(folder.encode("utf-8", "surrogateescape"))
        part("\0".join(names).encode("utf-8", "surrogateescape"))
        part(numbers)
    part(b"\0rows")
    for text in (versions, checksums, states):
        part(text.encode("utf-8", "surrogateescape"))
    hexdigest: str = h.hexdigest()
    return hexdigest


#: What :func:`_digest_of` hashes first: changes whenever the key's content or its form changes.
_DOMAIN = f"selfmigrate quick digest 1\0{FORMAT}".encode()


def _content(key: str) -> Content | None:
    """A key's text (see :func:`fingerprint_key`) as its folders (path, names, sizes and
    times) and its rows as :func:`quick_digest` takes them; ``None`` if it is not one."""
    lines = key.split("\n")
    if lines[0] != FORMAT:
        return None
    if lines[-1] == "":
        lines.pop()  # no rows: the key ends with the newline after the files
    # The rows, "version checksum state" each, come last; a folder's line is an
    # absolute path (it never starts with a digit or a minus sign).
    end = len(lines)
    while end > 1 and _is_row(lines[end - 1]):
        end -= 1
    cells = " ".join(lines[end:]).split(" ") if end < len(lines) else []
    folders: list[Folder] = []
    start = 1
    while start < end:
        folder = lines[start]
        stop = start + 1
        while stop < end and "\0" in lines[stop]:
            stop += 1
        files = lines[start + 1 : stop]
        if "\0" in folder or not all(line.count("\0") == 3 for line in files):
            return None
        # "name\0size\0mtime\0ctime" each: split all at once, the names every fourth.
        fields = "\0".join(files).split("\0") if files else []
        names = fields[0::4]
        del fields[0::4]
        try:
            numbers = [int(field) for field in fields]
        except ValueError:
            return None
        folders.append((folder, names, numbers))
        start = stop
    return folders, " ".join(cells[0::3]), "\n".join(cells[1::3]), "\n".join(cells[2::3])


def _is_row(line: str) -> bool:
    """Whether a key's line is a tracker row (``version checksum state``), not a folder or a file."""
    version, space, _ = line.partition(" ")
    return bool(space) and line.count(" ") == 2 and "\0" not in line and version.lstrip("-").isdigit()


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
