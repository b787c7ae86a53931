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

from ..config import TRACKER_LAYOUT
from .locations import examine_folder, list_folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

    from .locations import Seen, Stat

    #: A tracker row as the fingerprint sees it: version, checksum, state.
    Row = tuple[int, str, str]
    #: What a stored key's text certifies (see :func:`certified`).
    Certifies = tuple[dict[tuple[str, str], Stat], dict[int, str]]
    #: A folder as its digest takes it: absolute path, names (sorted), then size, mtime, ctime of each.
    Folder = tuple[str, list[str], list[int]]
    #: A key's content as its digest takes it: the folders, the rows' versions, checksums and states.
    Content = tuple[list[Folder], str, str, str]

    class TrackerRow(t.Protocol):
        """What :meth:`Certified.known` reads of a tracker row (an ``AppliedMigration``)."""

        @property
        def checksum(self) -> str: ...
        @property
        def state(self) -> str: ...

#: Changes whenever what the fingerprint covers changes.
FORMAT = f"selfmigrate fingerprint 5, tracker layout {TRACKER_LAYOUT}"


def fingerprint(folders: t.Sequence[str]) -> str:
    """The fingerprint text of the migration files in ``folders``.

    Each file's name, size, modification time and change time. Equal texts mean
    no file was added, removed, renamed or written to since: an edit changes at
    least the change time, which no tool can set back.

    The text of :class:`Files` for the folders as :func:`examine_all` examines them
    (a run never needs it: its key is made of the same content, see :class:`Key`).

    :raises DiscoveryError: as :func:`~.locations.list_folder`.
    """
    seen = examine_all(folders)
    if seen is None:  # something list_folder refuses: it says what
        return fingerprint_of((f, ((name, stat) for name, _, stat in list_folder(f))) for f in folders)
    return Files([(folder, names, numbers) for folder, (names, numbers, _) in seen]).text()


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
    ``group_concat`` builds without a string per row). Each folder is examined as
    :func:`~.locations.examine_folder` does (one ``stat`` per candidate relative to
    the open folder), its sizes and times kept as integers, never formatted.

    ``None`` means "look properly": a folder that cannot be listed, a candidate
    that is not a plain file or cannot be examined (:func:`~.locations.list_folder`
    says what is wrong in the full run), a time that does not fit in 64 bits.
    """
    seen = examine_all(folders)
    return None if seen is None else seen_digest(seen, versions, checksums, states)


def examine_all(folders: t.Sequence[str]) -> Seen | None:
    """Each folder's absolute path and :func:`~.locations.examine_folder`, or ``None`` if one gives ``None``."""
    seen: Seen = []
    for folder in folders:
        found = examine_folder(folder)
        if found is None:
            return None
        seen.append((os.path.abspath(folder), found))
    return seen


def seen_digest(seen: Seen, versions: str, checksums: str, states: str) -> str | None:
    """:func:`quick_digest` of folders already examined (see :func:`examine_all`)."""
    listed = []
    for folder, (names, numbers, _) in seen:
        try:
            listed.append((folder, names, _packed(numbers)))
        except OverflowError:
            return None
    return _digest_of(_hasher(), listed, versions, checksums, states)


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


def certified(key: str | None) -> Certifies:
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


# --- the key as content, and its compact certificate (issue 10, round 3) -------------------


class Files:
    """The migration files on disk as discovery listed them: what a key's files part is made of.

    Each folder as ``(absolute path, names sorted, size, mtime and ctime of each)``.
    Its fingerprint text (:meth:`text`) is never needed by a run: the key's digest and
    its certificate are made from the names and the times packed once (:meth:`packed`).
    """

    __slots__ = ("_packed", "folders")

    def __init__(self, folders: list[Folder]) -> None:
        self.folders = folders
        self._packed: list[tuple[str, list[str], bytes]] | None = None

    def __repr__(self) -> str:
        return f"Files({[(folder, len(names)) for folder, names, _ in self.folders]!r})"

    def packed(self) -> list[tuple[str, list[str], bytes]]:
        """Each folder with its sizes and times as 64-bit words (see :func:`_packed`), made once.

        :raises OverflowError: a size or time does not fit in 64 bits.
        """
        if self._packed is None:
            self._packed = [(folder, names, _packed(numbers)) for folder, names, numbers in self.folders]
        return self._packed

    def text(self) -> str:
        """The fingerprint text of these files (what :func:`fingerprint_of` gives for them)."""
        return fingerprint_of(
            (folder, zip(names, _stats(numbers), strict=True)) for folder, names, numbers in self.folders
        )


def _stats(numbers: list[int]) -> t.Iterator[Stat]:
    """``(size, mtime, ctime)`` of each file, from the flat list of a folder's numbers."""
    each = iter(numbers)
    return zip(each, each, each, strict=True)


class Key:
    """A fingerprint key as its content: the files, and the tracker rows they were verified against.

    The rows as three texts in version order (see :func:`quick_digest`). :meth:`digest`
    equals :func:`digest` of the key's text (:meth:`text`), which is never built unless
    a time does not fit in 64 bits; :meth:`certificate` is what the tracker stores to say
    what was verified.
    """

    __slots__ = ("_digest", "checksums", "files", "states", "versions")

    def __init__(self, files: Files, versions: str, checksums: str, states: str) -> None:
        self.files = files
        self.versions = versions
        self.checksums = checksums
        self.states = states
        self._digest: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return (self.versions, self.checksums, self.states) == (other.versions, other.checksums, other.states) and (
            self.files is other.files or self.files.folders == other.files.folders
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Key({self.files!r}, {self.versions.count(' ') + 1 if self.versions else 0} rows)"

    def rows(self) -> list[Row]:
        """The rows, ``(version, checksum, state)`` each."""
        if not self.versions:
            return []
        versions = [int(version) for version in self.versions.split(" ")]
        return list(zip(versions, self.checksums.split("\n"), self.states.split("\n"), strict=True))

    def text(self) -> str:
        """The key's text, as :func:`fingerprint_key` makes it."""
        return fingerprint_key(self.files.text(), self.rows())

    def digest(self) -> str:
        """:func:`digest` of the key (what the quick check compares), computed once."""
        if self._digest is None:
            try:
                packed = self.files.packed()
            except OverflowError:  # no start computes it: digest() of the text says so
                self._digest = digest(self.text())
            else:
                self._digest = _digest_of(_hasher(), packed, self.versions, self.checksums, self.states)
        return self._digest

    def certificate(self) -> str:
        """What the tracker stores to say what was verified: read back with :func:`read_certificate`.

        A header, then length-prefixed fields (``<length>:<text>``): the number of
        folders; each folder's path, its names joined by ``/`` (which no file name
        holds) and its sizes and times as the hexadecimal of their 64-bit words; the
        rows' versions and checksums. A start reads it with a few slices,
        :meth:`str.split` and :meth:`bytes.fromhex`, with no parsing per line (the key's
        text, what was stored before, is over a megabyte at 10 000 files). Where a time does
        not fit in 64 bits, the key's text, which :func:`read_certificate` reads too.
        """
        try:
            packed = self.files.packed()
        except OverflowError:
            return self.text()
        fields = [str(len(packed))]
        for folder, names, numbers in packed:
            fields.extend((folder, "/".join(names), numbers.hex()))
        fields.extend((self.versions, self.checksums))
        return _CERTIFICATE + "".join([f"{len(field)}:{field}" for field in fields])


#: How a compact certificate starts (see :meth:`Key.certificate`): changes with :data:`FORMAT`.
_CERTIFICATE = f"selfmigrate certificate 1, {FORMAT}\n"


class Certificate:
    """What a stored certificate says was verified: each folder's names with their sizes and
    times, and the rows' versions and checksums (texts as in :class:`Key`).

    A folder's numbers are 64-bit words (bytes) as :meth:`Key.certificate` stores them, or
    integers (a certificate read from a key's text that did not pack).
    """

    __slots__ = ("checksums", "folders", "versions")

    def __init__(self, folders: dict[str, tuple[list[str], bytes | list[int]]], versions: str, checksums: str) -> None:
        self.folders = folders
        self.versions = versions
        self.checksums = checksums

    def rows(self) -> dict[int, str]:
        """The certified checksum of each version."""
        if not self.versions:
            return {}
        return dict(zip(map(int, self.versions.split(" ")), self.checksums.split("\n"), strict=False))


def read_certificate(text: str | None) -> Certificate | None:
    """The :class:`Certificate` stored as ``text`` (see :meth:`Key.certificate`), or ``None``.

    Also reads what was stored before the compact form, a key's text (:func:`certified`:
    it costs a parse per line, once: the run that reads one stores the compact form).
    ``None`` for ``None``, damaged text or another format: then nothing is certified,
    which costs reading the files, never a missed edit.
    """
    if text is None:
        return None
    if text.startswith(_CERTIFICATE):
        return _parse_certificate(text, len(_CERTIFICATE))
    files, rows = certified(text)
    if not files and not rows:
        return None
    by_folder: dict[str, list[tuple[str, Stat]]] = {}
    for (folder, name), stat in files.items():
        by_folder.setdefault(folder, []).append((name, stat))
    folders: dict[str, tuple[list[str], bytes | list[int]]] = {}
    for folder, entries in by_folder.items():
        entries.sort()
        numbers = [number for _, stat in entries for number in stat]
        folders[folder] = ([name for name, _ in entries], numbers)
    order = sorted(rows)
    return Certificate(folders, " ".join(map(str, order)), "\n".join([rows[v] for v in order]))


def _parse_certificate(text: str, at: int) -> Certificate | None:
    """The fields of a compact certificate from position ``at`` (see :meth:`Key.certificate`)."""

    def field() -> str:
        nonlocal at
        colon = text.index(":", at)
        size = int(text[at:colon])
        start, at = colon + 1, colon + 1 + size
        if size < 0 or at > len(text):
            raise ValueError("a field runs past the end")
        return text[start:at]

    try:
        folders: dict[str, tuple[list[str], bytes | list[int]]] = {}
        for _ in range(int(field())):
            folder, names, numbers = field(), field(), bytes.fromhex(field())
            listed = names.split("/") if names else []
            if len(numbers) != 24 * len(listed):
                return None
            folders[folder] = (listed, numbers)
        versions, checksums = field(), field()
    except ValueError:
        return None
    if at != len(text):
        return None
    return Certificate(folders, versions, checksums)


class Certified:
    """What a :class:`Certificate` still certifies of the files listed now (:class:`Files`).

    :attr:`uncertain` holds the versions of the files that are not as certified (new,
    renamed, or with another size or time); every other file on disk is as it was when
    it was verified. :meth:`known` adds the rows' side.

    :param versions_of: the version of each of a list of migration files' names (the
        naming rule is the registry's).
    """

    __slots__ = ("certificate", "uncertain")

    def __init__(
        self, certificate: Certificate, files: Files, versions_of: t.Callable[[list[str]], list[int | None]]
    ) -> None:
        self.certificate = certificate
        uncertain: set[int] = set()
        for folder, names, numbers in files.folders:
            found = certificate.folders.get(folder)
            changed = names if found is None else _not_as_certified(names, numbers, *found)
            if changed:
                uncertain.update(version for version in versions_of(changed) if version is not None)
        self.uncertain = uncertain

    def known(self, applied: t.Mapping[int, TrackerRow], texts: tuple[str, str, str] | None = None) -> set[int]:
        """The applied versions whose file needs no reading: as certified, and certified against
        the checksum the tracker holds for it now (a row that is not ``started``).

        :param applied: the tracker's rows by version, in version order.
        :param texts: the versions, checksums and states of ``applied`` as :class:`Key` holds
            them, if made already: equal to the certified ones, no row is compared on its own.
        """
        certificate = self.certificate
        if texts is not None:
            versions, checksums, states = texts
            if versions == certificate.versions and checksums == certificate.checksums and "started" not in states:
                return set(applied).difference(self.uncertain)
        rows = certificate.rows()
        uncertain = self.uncertain
        return {
            version
            for version, row in applied.items()
            if row.state != "started" and rows.get(version) == row.checksum and version not in uncertain
        }


def _not_as_certified(
    names: list[str], numbers: list[int], certified_names: list[str], certified_numbers: bytes | list[int]
) -> list[str]:
    """The names of a folder's files that are not in the certificate with the same size and times.

    Both lists of names sorted. The usual cases are whole comparisons: nothing changed,
    or files were added and every certified one is still there as it was (a migration
    added to the tree); anything else compares file by file.
    """
    ours: bytes | list[int] = numbers
    if isinstance(certified_numbers, bytes):
        try:
            ours = _packed(numbers)
        except OverflowError:  # compare as integers
            certified_numbers = _unpacked(certified_numbers)
    width = 24 if isinstance(ours, bytes) else 3
    if names == certified_names:
        if ours == certified_numbers:
            return []
    else:
        added = set(names).difference(certified_names)
        if len(names) - len(added) == len(certified_names):
            # Every certified name is still there (names are unique): without the added
            # files, the names are the certified ones in the same order.
            from bisect import bisect_left

            cut = sorted(bisect_left(names, name) for name in added)
            ends = zip([-1, *cut], [*cut, len(names)], strict=True)
            rest: bytes | list[int]
            if isinstance(ours, bytes):
                rest = b"".join([ours[width * (a + 1) : width * b] for a, b in ends])
            else:
                rest = [n for a, b in ends for n in ours[width * (a + 1) : width * b]]
            if rest == certified_numbers:
                return [names[i] for i in cut]
    where = dict(zip(certified_names, range(len(certified_names)), strict=True))
    return [
        name
        for i, name in enumerate(names)
        if (j := where.get(name)) is None
        or ours[width * i : width * (i + 1)] != certified_numbers[width * j : width * (j + 1)]
    ]


def _unpacked(data: bytes) -> list[int]:
    """The integers :func:`_packed` packed into ``data``."""
    if sys.byteorder == "little":
        return memoryview(data).cast("q").tolist()
    return [int.from_bytes(data[i : i + 8], "little", signed=True) for i in range(0, len(data), 8)]
