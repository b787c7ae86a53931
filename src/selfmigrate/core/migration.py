"""Migration value objects, and loading a migration's body when it must run.

Holds :class:`Migration` (what discovery knows of a file; its checksum read on first use)
and :class:`LoadedMigration` (its up and down, parsed or imported by :meth:`Migration.load`
only when it is about to run). Must not know databases, engines or the tracker.
"""

from __future__ import annotations

import functools
import hashlib
import os
import traceback
import types
import typing as t
from dataclasses import dataclass, field

from ..backends.base import MigrationFunction as MigrationFunction
from ..backends.base import SQLScript as SQLScript
from ..errors import DiscoveryError

if t.TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The line that separates the up script from the down script in a ``.sql`` file.
DOWN_MARKER = "-- migrate:down"
#: A comment line among the first lines of a ``.sql`` file (before its first
#: statement) that makes the migration run outside a transaction.
NO_TRANSACTION_MARKER = "-- migrate:no-transaction"
#: The module attribute that makes a ``.py`` migration run outside a transaction
#: when it is ``False``.
TRANSACTIONAL_ATTRIBUTE = "transactional"

Kind = t.Literal["sql", "py"]


def checksum(data: bytes) -> str:
    """Return the SHA-256 hex digest of ``data`` with line endings normalised.

    ``\\r\\n`` and ``\\r`` count as ``\\n``, so a checkout on Windows or an editor
    that changes line endings does not look like an edit.
    """
    normalised = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return hashlib.sha256(normalised).hexdigest()


def decode(data: bytes, location: str) -> str:
    """Decode a migration file's bytes as UTF-8 (a leading BOM is dropped)."""
    # Not the "utf-8-sig" codec: its Python-level decoder is several times
    # slower, and every file is decoded at every start.
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DiscoveryError(
            f"Migration file {location} is not valid UTF-8 (byte {e.start + len(data) - len(body)}: {e.reason})."
            " Save it as UTF-8 and start again.",
            paths=[location],
        ) from e


@dataclass(frozen=True)
class Migration:
    """One migration file, as discovery found it.

    Two migrations compare equal when version, name, kind and location are
    equal. The :attr:`checksum` is read from the file on first use, so that a
    start whose files are known to be unchanged reads none of them.
    """

    #: The decimal version from the file name (``0002_x.sql`` → ``2``).
    version: int
    #: The slug from the file name (``0002_add_column.sql`` → ``"add_column"``).
    name: str
    #: ``"sql"`` or ``"py"``.
    kind: Kind
    #: Where the file is, for messages: a path, or a path inside a zip file.
    location: str
    #: The file, as an :mod:`importlib.resources` traversable, for a file inside a
    #: zip file; ``None`` for a file on disk, which is read from :attr:`location`.
    resource: Traversable | None = field(default=None, compare=False, repr=False)
    #: The package the file was found in, if it came from a package (used for
    #: relative imports in Python migrations).
    package: str | None = field(default=None, compare=False, repr=False)
    #: ``(size, mtime_ns, ctime_ns)`` of a file on disk when it was listed;
    #: ``None`` inside a zip file. Feeds :meth:`MigrationRegistry.fingerprint`.
    stat: tuple[int, int, int] | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        """The file name without extension, e.g. ``"0002_add_column"``."""
        return self.filename.rsplit(".", 1)[0]

    @property
    def filename(self) -> str:
        """The file name, e.g. ``"0002_add_column.sql"``."""
        return os.path.basename(self.location)

    @functools.cached_property
    def checksum(self) -> str:
        """SHA-256 of the content with normalised line endings (see :func:`checksum`).

        :raises DiscoveryError: the file cannot be read.
        """
        return checksum(self._read_bytes())

    def _read_bytes(self) -> bytes:
        try:
            if self.resource is not None:
                return self.resource.read_bytes()
            with open(self.location, "rb") as f:
                return f.read()
        except OSError as e:
            raise DiscoveryError(
                f"Migration file {self.location} cannot be read: {e}. Check that it exists"
                " and that the app's user may read it.",
                paths=[self.location],
            ) from e

    def read_text(self) -> str:
        """Read and decode the file, checking it still has the checksum first seen."""
        data = self._read_bytes()
        digest = checksum(data)
        # cached_property keeps its value in the instance's __dict__ (a frozen
        # dataclass does not stop that): the first read fixes the checksum.
        if self.__dict__.setdefault("checksum", digest) != digest:
            raise DiscoveryError(
                f"Migration file {self.location} changed while selfmigrate was running."
                " Start again once the files are in place.",
                paths=[self.location],
            )
        return decode(data, self.location)

    def load(self) -> LoadedMigration:
        """Read, parse or import the migration so that it can run.

        A ``.sql`` file is split at the ``-- migrate:down`` line; a ``.py`` file is
        executed as a fresh module (never cached in :data:`sys.modules`, so what
        runs is exactly what was checksummed) and must define ``up(conn)``.

        :raises DiscoveryError: the file is empty, has no ``up``, or cannot be
            imported.
        """
        text = self.read_text()
        if not text.strip():
            raise DiscoveryError(
                f"Migration file {self.location} is empty. Write the change it should make,"
                " or delete the file if it was created by mistake.",
                paths=[self.location],
            )
        if self.kind == "sql":
            return _load_sql(self, text)
        return _load_python(self, text)


@dataclass(frozen=True)
class LoadedMigration:
    """A migration ready to run: its up and optional down, SQL or Python."""

    migration: Migration
    #: For ``.sql`` files: the up script.
    up_sql: SQLScript | None = None
    #: For ``.sql`` files: the down script, if the file has a ``-- migrate:down`` line.
    down_sql: SQLScript | None = None
    #: For ``.py`` files: the module's ``up``.
    up_function: MigrationFunction | None = None
    #: For ``.py`` files: the module's ``down``, if it has one.
    down_function: MigrationFunction | None = None
    #: ``False`` for a migration that runs outside a transaction (``VACUUM``,
    #: ``PRAGMA journal_mode``, a table rebuild with ``PRAGMA foreign_keys=OFF``):
    #: a ``-- migrate:no-transaction`` header line, or ``transactional = False``.
    transactional: bool = True

    @property
    def has_down(self) -> bool:
        """Whether the migration can be rolled back."""
        return self.down_sql is not None or self.down_function is not None


def _load_sql(migration: Migration, text: str) -> LoadedMigration:
    lines = text.splitlines(keepends=True)
    transactional = not _has_header(lines, NO_TRANSACTION_MARKER)
    loaded = LoadedMigration(migration, up_sql=SQLScript(text, 1), transactional=transactional)
    for index, line in enumerate(lines):
        if line.strip().lower() == DOWN_MARKER:
            up = SQLScript("".join(lines[:index]), 1)
            down = SQLScript("".join(lines[index + 1 :]), index + 2)
            loaded = LoadedMigration(migration, up_sql=up, down_sql=down, transactional=transactional)
            break
    assert loaded.up_sql is not None
    if not _has_statement(loaded.up_sql):
        # An unedited template is all comments: recording it as applied would hide
        # the change that was meant to be written.
        raise DiscoveryError(
            f"Migration file {migration.location} has no SQL statement to apply (only comments"
            " or blank lines before any '-- migrate:down'). Write the change it should make,"
            " or delete the file if it was created by mistake.",
            paths=[migration.location],
        )
    return loaded


def _has_header(lines: list[str], marker: str) -> bool:
    """Whether ``marker`` is a line of the comment header (the lines before the first statement)."""
    for line in lines:
        stripped = line.strip()
        if stripped.lower() == marker:
            return True
        if stripped and not stripped.startswith("--"):
            return False
    return False


def _has_statement(script: SQLScript) -> bool:
    """Whether ``script`` has any SQL outside comments, white space and lone semicolons.

    The same answer as "the backend's splitter finds a statement", without
    asking the engine: this runs for every file that loads.
    """
    text, i, n = script.text, 0, len(script.text)
    while i < n:
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif text[i].isspace() or text[i] == ";":
            i += 1
        else:
            return True
    return False


def _load_python(migration: Migration, text: str) -> LoadedMigration:
    location = migration.location
    if migration.package is not None:
        module_name = f"{migration.package}.{migration.id}"
    else:
        module_name = f"selfmigrate.migrations_{migration.id}"
    module = types.ModuleType(module_name)
    module.__file__ = location
    if migration.package is not None:
        module.__package__ = migration.package
    try:
        code = compile(text, location, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except Exception as e:
        line = line_in(e, location)
        where = f", line {line}" if line is not None else ""
        raise DiscoveryError(
            f"Migration file {location}{where} cannot be imported:"
            f" {type(e).__name__}: {e}. Fix the file (an import that fails at the top of"
            " a migration usually belongs inside up()).",
            paths=[location],
        ) from e
    up = getattr(module, "up", None)
    if not callable(up):
        raise DiscoveryError(
            f"Migration file {location} has no up(conn) function. Define"
            " 'def up(conn):' with the change to make (see 'python -m selfmigrate create').",
            paths=[location],
        )
    down = getattr(module, "down", None)
    if down is not None and not callable(down):
        raise DiscoveryError(
            f"Migration file {location} defines 'down' but it is not a function."
            " Define 'def down(conn):' or remove the name.",
            paths=[location],
        )
    transactional = getattr(module, TRANSACTIONAL_ATTRIBUTE, True)
    if not isinstance(transactional, bool):
        raise DiscoveryError(
            f"Migration file {location} sets '{TRANSACTIONAL_ATTRIBUTE} = {transactional!r}'; it must be"
            " True or False.",
            paths=[location],
        )
    return LoadedMigration(migration, up_function=up, down_function=down, transactional=transactional)


def line_in(error: BaseException, filename: str) -> int | None:
    """Return the line of ``filename`` where ``error`` was raised, if it was there."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line

