"""Migration value objects, and loading a migration's body when it must run.

Holds :class:`Migration` (what discovery knows of a file; its checksum read on first use)
and :class:`LoadedMigration` (its up and down, parsed or imported by :meth:`Migration.load`
only when it is about to run), and the ``.sql`` marker lines. Must not know databases or engines.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import types

from ..backends.base import SQLScript as SQLScript
from ..backends.base import Value
from ..backends.tokens import SQL_WHITESPACE, line_of, marker_chunks, sql_chunks
from ..errors import DiscoveryError

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t
    from importlib.resources.abc import Traversable

#: The line that separates the up script from the down script in a ``.sql`` file.
DOWN_MARKER = "-- migrate:down"
#: A comment line among the first lines of a ``.sql`` file (before its first
#: statement) that makes the migration run outside a transaction.
NO_TRANSACTION_MARKER = "-- migrate:no-transaction"
#: The module attribute that makes a ``.py`` migration run outside a transaction
#: when it is ``False``.
TRANSACTIONAL_ATTRIBUTE = "transactional"
#: A comment line among the first lines of a ``.sql`` file (before its first
#: statement) that declares the migration compatible: code written before it
#: still works after it (an expand-only change).
COMPATIBLE_MARKER = "-- migrate:compatible"
#: The module attribute that declares a ``.py`` migration compatible when it is ``True``.
COMPATIBLE_ATTRIBUTE = "compatible"

#: The line of the ``.py`` template's ``up()`` (``python -m selfmigrate create``): a file
#: whose ``up()`` still does nothing but this is unedited.
PY_TEMPLATE_MARK = 'raise NotImplementedError("write this migration\'s up()")'

if TYPE_CHECKING:
    from ..backends.base import MigrationFunction as MigrationFunction

    Kind = t.Literal["sql", "py"]

#: The linter's accept directive (``-- migrate:accept SM103 reason``, see ops/lint.py):
#: a comment line anywhere in a ``.sql`` file, for ``lint``; the marker check lets it
#: through and the migration ignores it.
ACCEPT_MARKER = re.compile(r"--\s*migrate:accept\b", re.IGNORECASE)


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


class Migration(Value):
    """One migration file, as discovery found it.

    Two migrations compare equal when version, name, kind and location are
    equal. The :attr:`checksum` is read from the file on first use, so that a
    start whose files are known to be unchanged reads none of them.
    """

    _fields = ("version", "name", "kind", "location", "resource", "package", "stat")
    _hidden = frozenset({"resource", "package", "stat"})

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
    resource: Traversable | None
    #: The package the file was found in, if it came from a package (used for
    #: relative imports in Python migrations).
    package: str | None
    #: ``(size, mtime_ns, ctime_ns)`` of a file on disk when it was listed;
    #: ``None`` inside a zip file. Feeds :meth:`MigrationRegistry.fingerprint`.
    stat: tuple[int, int, int] | None

    def __init__(
        self,
        version: int,
        name: str,
        kind: Kind,
        location: str,
        resource: Traversable | None = None,
        package: str | None = None,
        stat: tuple[int, int, int] | None = None,
    ) -> None:
        self.__dict__.update(
            version=version, name=name, kind=kind, location=location, resource=resource, package=package, stat=stat
        )

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
        return decode(self._read_checked(), self.location)

    def _read_checked(self) -> bytes:
        """The file's bytes, checked to have the checksum first seen."""
        data = self._read_bytes()
        digest = checksum(data)
        # cached_property keeps its value in the instance's __dict__ (a frozen
        # value does not stop that): the first read fixes the checksum.
        if self.__dict__.setdefault("checksum", digest) != digest:
            raise DiscoveryError(
                f"Migration file {self.location} changed while selfmigrate was running."
                " Start again once the files are in place.",
                paths=[self.location],
            )
        return data

    def load(self) -> LoadedMigration:
        """Read, parse or import the migration so that it can run.

        A ``.sql`` file is split at the ``-- migrate:down`` line; a ``.py`` file is
        executed as a fresh module (never cached in :data:`sys.modules`, so what
        runs is exactly what was checksummed) and must define ``up(conn)``.

        :raises DiscoveryError: the file is empty, has no ``up``, cannot be
            imported, has an ``up``/``down`` that would not run its body
            (``async``, a generator, a signature that does not take the
            connection), or a line that looks like a marker and is not one
            (see ``parse_markers``).
        """
        data = self._read_checked()
        text = decode(data, self.location)
        if not text.strip():
            raise DiscoveryError(
                f"Migration file {self.location} is empty. Write the change it should make,"
                " or delete the file if it was created by mistake; for a migration that"
                " deliberately does nothing here, write 'SELECT 1;' (.sql).",
                paths=[self.location],
            )
        if self.kind == "sql":
            return _load_sql(self, text)
        return _load_python(self, text, data)


class LoadedMigration(Value):
    """A migration ready to run: its up and optional down, SQL or Python."""

    _fields = (
        "migration",
        "up_sql",
        "down_sql",
        "up_function",
        "down_function",
        "transactional",
        "compatible",
        "down_source",
        "empty_down",
        "from_tracker",
    )

    migration: Migration
    #: For ``.sql`` files: the up script.
    up_sql: SQLScript | None
    #: For ``.sql`` files: the down script, if the file has a ``-- migrate:down`` line.
    down_sql: SQLScript | None
    #: For ``.py`` files: the module's ``up``.
    up_function: MigrationFunction | None
    #: For ``.py`` files: the module's ``down``, if it has one.
    down_function: MigrationFunction | None
    #: ``False`` for a migration that runs outside a transaction (``VACUUM``,
    #: ``PRAGMA journal_mode``, a table rebuild with ``PRAGMA foreign_keys=OFF``):
    #: a ``-- migrate:no-transaction`` header line, or ``transactional = False``.
    transactional: bool
    #: Code written before this migration still works after it: a
    #: ``-- migrate:compatible`` header line, or ``compatible = True``.
    compatible: bool
    #: What the tracker stores as the down: the SQL after ``-- migrate:down``, or
    #: the whole source of a ``.py`` module that has a ``down``; ``None`` without a down.
    down_source: str | None
    #: The file has a ``-- migrate:down`` line with no statement after it (dbmate's
    #: template leaves one): no down, so a rollback refuses instead of undoing nothing.
    empty_down: bool
    #: The down comes from the copy stored in the tracker, not from a file.
    from_tracker: bool

    def __init__(
        self,
        migration: Migration,
        up_sql: SQLScript | None = None,
        down_sql: SQLScript | None = None,
        up_function: MigrationFunction | None = None,
        down_function: MigrationFunction | None = None,
        transactional: bool = True,
        compatible: bool = False,
        down_source: str | None = None,
        empty_down: bool = False,
        from_tracker: bool = False,
    ) -> None:
        self.__dict__.update(
            migration=migration,
            up_sql=up_sql,
            down_sql=down_sql,
            up_function=up_function,
            down_function=down_function,
            transactional=transactional,
            compatible=compatible,
            down_source=down_source,
            empty_down=empty_down,
            from_tracker=from_tracker,
        )

    @property
    def has_down(self) -> bool:
        """Whether the migration can be rolled back."""
        return self.down_sql is not None or self.down_function is not None


def _load_sql(migration: Migration, text: str) -> LoadedMigration:
    # The checksum counts \r\n and a lone \r as \n; so does the SQL that runs. SQLite
    # itself knows only \n: a "--" comment in a file with \r line ends would run to the
    # end of the file and hide every statement after it.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\0" in text:
        # The sqlite3 module refuses a statement with a NUL, and only when it runs:
        # refused here, before the first migration is applied.
        raise DiscoveryError(
            f"Migration file {migration.location}, line {line_of(text, text.index(chr(0)))}: contains a NUL"
            " character (byte 0), which SQL text cannot hold; it is usually a file saved in another"
            " encoding (UTF-16) or a binary file. Save it as UTF-8 text without NUL characters.",
            paths=[migration.location],
        )
    markers = parse_markers(text, migration.location)
    if markers.down is None:
        up = SQLScript(text, 1)
        down = None
    else:
        up = SQLScript(text[: markers.down], 1)
        down = SQLScript(text[markers.down_body :], line_of(text, markers.down_body))
        if not _has_statement(down):
            down = None
    if not _has_statement(up):
        # An unedited template is all comments: recording it as applied would hide
        # the change that was meant to be written.
        raise DiscoveryError(
            f"Migration file {migration.location} has no SQL statement to apply (only comments"
            " or blank lines before any '-- migrate:down'). Write the change it should make,"
            " or delete the file if it was created by mistake; for a migration that deliberately"
            " does nothing here (kept so that versions match another engine's folder), write"
            " 'SELECT 1;'.",
            paths=[migration.location],
        )
    return LoadedMigration(
        migration,
        up_sql=up,
        down_sql=down,
        transactional=markers.transactional,
        compatible=markers.compatible,
        down_source=None if down is None else down.text,
        empty_down=markers.down is not None and down is None,
    )


def _has_statement(script: SQLScript) -> bool:
    """Whether ``script`` has a token that is not space, a comment or a lone semicolon.

    The same answer as "the SQLite splitter finds a statement", read with the
    shared tokenizer, without asking an engine.
    """
    text = script.text
    return any(
        kind == "quoted" or (kind == "code" and text[begin:end].strip(SQL_WHITESPACE))
        for kind, begin, end in sql_chunks(text)
    )


class Markers(Value):
    """Where a ``.sql`` file's marker lines are, as :func:`parse_markers` found them."""

    _fields = ("down", "down_body", "transactional", "compatible")

    #: Offset of the start of the ``-- migrate:down`` line, or ``None``.
    down: int | None
    #: Offset just after that line (where the down script starts).
    down_body: int
    #: ``False`` when the header has ``-- migrate:no-transaction`` (or dbmate's
    #: ``-- migrate:up transaction:false``).
    transactional: bool
    #: ``True`` when the header has ``-- migrate:compatible``.
    compatible: bool

    def __init__(self, down: int | None, down_body: int, transactional: bool, compatible: bool = False) -> None:
        self.__dict__.update(down=down, down_body=down_body, transactional=transactional, compatible=compatible)


def looks_like_marker(comment: str) -> bool:
    """Whether the text of a comment (without ``--``/``/* */``) looks meant as a marker.

    Generous on purpose: any case, any spacing, after dashes right after the
    ``--`` or any run of ``+@!#*/=`` (``--- migrate:down``, ``-- @migrate:down``;
    ``-- -- migrate:down`` is a marker commented out), ``migrate`` (or ``migration``,
    sql-migrate's ``+migrate``, goose's ``+goose``) followed by ``:`` or ``=``,
    or by ``up``, ``down``, ``(no-)transaction`` or ``compatible`` as a word; or a
    comment that is only the word ``up``, ``down``, ``undo`` or ``rollback`` (the
    ``-- Up`` / ``-- Down`` sections of node-sqlite's migrations, MyBatis'
    ``-- //@UNDO``). A line that looks like a marker and is not exactly one is an
    error, never a plain comment: a misspelt ``-- migrate:down`` would run the
    down script on the way up.
    """
    return _MARKER_LIKE.match(comment) is not None


_MARKER_LIKE = re.compile(
    # Dashes only right after the "--" ("--- migrate:down"): "-- -- migrate:down" is a
    # marker commented out on purpose (the .sql template shows one), a plain comment.
    r"-*[+@!#*/=]*\s*[+@!#*/=]*\s*(?:migrate|migrations?|goose)\s*"
    r"(?:[:=]|[-_.]?\s*(?:up|down|no[-_ ]?transaction|transaction|compat\w*)\b)"
    r"|-*[+@!#*/=]*\s*[+@!#*/=]*\s*(?:up|down|undo|rollback)[\s\-+@!#*/=:]*$",
    re.IGNORECASE,
)
#: dbmate's marker for the up script, accepted (and needed by nothing) at the top of a file.
UP_MARKER = "-- migrate:up"
#: dbmate's spelling of ``-- migrate:no-transaction``, accepted at the top of a file.
UP_MARKER_NO_TRANSACTION = "-- migrate:up transaction:false"
_EXACT = (DOWN_MARKER, NO_TRANSACTION_MARKER, UP_MARKER, UP_MARKER_NO_TRANSACTION, COMPATIBLE_MARKER)
#: Header settings with a duration, for engines that have them (PostgreSQL's ``SET LOCAL
#: lock_timeout`` / ``statement_timeout`` of the migration); the engine reads the value.
_SETTING = re.compile(r"-- migrate:(?:lock|statement)-timeout\s+\d+(?:\.\d+)?\s*(?:ms|s|min|h|d)?")


def parse_markers(text: str, location: str) -> Markers:
    """Find the marker lines of a ``.sql`` file's text (line ends already ``\\n``).

    A marker is a ``--`` comment on a line of its own, outside strings and
    ``/* */`` comments, spelt exactly as one of ``-- migrate:down``,
    ``-- migrate:no-transaction``, ``-- migrate:compatible``, ``-- migrate:up``
    or ``-- migrate:up transaction:false`` (case and the spaces around the line
    do not matter). All but ``-- migrate:down`` belong to the header (the
    comments before the first statement; ``/* */`` comments included),
    as do the settings ``-- migrate:lock-timeout 10s`` and ``-- migrate:statement-timeout 0``.

    :raises DiscoveryError: a comment looks like a marker (:func:`looks_like_marker`)
        but is not exactly one, or a marker is where it does nothing (a second
        ``-- migrate:down``, ``-- migrate:no-transaction`` after the first statement,
        ``transaction:false`` on the down marker, a marker after code on its line).
    """
    down: int | None = None
    down_body = len(text)
    down_line = 0
    transactional = True
    compatible = False
    in_header = True  # no statement seen yet
    line_start = 0  # offset where the current line starts
    code_on_line = False
    for kind, begin, end in marker_chunks(text):
        if kind == "code":
            # Space and code run together: the line it ends on, and whether code is on that line.
            piece = text[begin:end]
            has_code = bool(piece.strip(SQL_WHITESPACE))
            newline = piece.rfind("\n")
            if newline != -1:
                line_start = begin + newline + 1
                code_on_line = bool(piece[newline + 1 :].strip(SQL_WHITESPACE))
            elif has_code:
                code_on_line = True
            if has_code and down is None:
                in_header = False
            continue
        if kind == "block":
            if "\n" in text[begin:end]:
                line_start, code_on_line = text.rfind("\n", begin, end) + 1, True
            elif looks_like_marker(text[begin + 2 : end].removesuffix("*/")):
                raise _marker_error(location, text, begin, "is a /* */ comment; a marker is a '--' line comment")
            continue
        if kind != "line":
            code_on_line = True
            if down is None:
                in_header = False
            continue
        comment = text[begin:end]
        if not looks_like_marker(comment[2:]):
            continue
        if code_on_line or text[line_start:begin].strip(SQL_WHITESPACE):
            raise _marker_error(location, text, begin, "follows something else on its line")
        spelt = comment.strip(SQL_WHITESPACE).lower()
        if ACCEPT_MARKER.match(spelt):
            continue  # the linter's
        setting = _SETTING.fullmatch(spelt) is not None
        if spelt not in _EXACT and not setting:
            raise _marker_error(location, text, begin, "is not spelt exactly as a marker")
        line = line_of(text, begin)
        if spelt == DOWN_MARKER:
            if down is not None:
                raise DiscoveryError(
                    f"Migration file {location} has two '{DOWN_MARKER}' lines (lines {down_line} and"
                    f" {line}). Keep one: everything above it is the up script, everything below it"
                    " the down script.",
                    paths=[location],
                )
            down, down_line = line_start, line
            down_body = end + 1 if text.startswith("\n", end) else end
        elif not in_header or down is not None:
            raise DiscoveryError(
                f"Migration file {location}, line {line}: '{comment.strip()}' must come before the"
                " first statement of the file (among the comment lines at its top), where it applies"
                f" to the whole migration; here it does nothing. Move it to the top of the file, as"
                f" '{spelt}'.",
                paths=[location],
            )
        elif spelt == COMPATIBLE_MARKER:
            compatible = True
        elif spelt != UP_MARKER and not setting:
            transactional = False
    return Markers(down, down_body, transactional, compatible)


def _marker_error(location: str, text: str, begin: int, problem: str) -> DiscoveryError:
    end = text.find("\n", begin)
    written = text[begin : len(text) if end == -1 else end].strip()
    lowered = written.lower()
    if "down" in lowered and "transaction" in lowered:
        use = (
            f"'{DOWN_MARKER}' alone (a down always runs in a transaction; a migration that must run"
            f" outside one has '{NO_TRANSACTION_MARKER}' at the top of the file)"
        )
    elif "down" in lowered or "undo" in lowered or "rollback" in lowered:
        use = f"'{DOWN_MARKER}'"
    elif "compat" in lowered:
        use = f"'{COMPATIBLE_MARKER}' at the top of the file, before the first statement"
    elif "transaction" in lowered:
        use = f"'{NO_TRANSACTION_MARKER}' at the top of the file, before the first statement"
    elif "up" in lowered:
        use = f"'{UP_MARKER}' at the top of the file, or nothing (everything above '{DOWN_MARKER}' is the up)"
    else:
        use = f"one of '{DOWN_MARKER}', '{NO_TRANSACTION_MARKER}', '{COMPATIBLE_MARKER}'"
    return DiscoveryError(
        f"Migration file {location}, line {line_of(text, begin)}: {written!r} looks like a selfmigrate"
        f" marker but {problem}, so it would be read as an ordinary comment (a misspelt down marker"
        f" runs the down script on the way up). Write exactly {use}, on a line of its own; if it is"
        " an ordinary comment, reword it.",
        paths=[location],
    )


def _load_python(migration: Migration, text: str, data: bytes | None = None) -> LoadedMigration:
    """Execute ``text`` (the file's, or a down stored in the tracker) as a fresh module.

    ``data``: the file's bytes, as checksummed; with them the compiled code may come
    from (and go to) selfmigrate's bytecode cache (see :func:`_compiled`).
    """
    location = migration.location
    if migration.package is not None:
        module_name = f"{migration.package}.{migration.id}"
    else:
        # A top-level name with no package: named inside selfmigrate, the module's
        # relative imports ("from ._helpers import x") would import selfmigrate's own modules.
        module_name = f"_selfmigrate_migration_{migration.id}"
    module = types.ModuleType(module_name)
    module.__file__ = location
    module.__package__ = migration.package if migration.package is not None else ""
    try:
        cache = None if data is None or migration.resource is not None else _cache_path(location)
        code = _compiled(text, location, data, cache)
        exec(code, module.__dict__)
    except Exception as e:
        line = line_in(e, location)
        where = f", line {line}" if line is not None else ""
        fix = "Fix the file (an import that fails at the top of a migration usually belongs inside up())."
        if isinstance(e, ImportError) and migration.package is None and "relative import" in str(e):
            fix = (
                "Relative imports work only when the migrations are given as a package name"
                " (myapp.migrations), not as a directory path: give the package, or import absolutely."
            )
        raise DiscoveryError(
            f"Migration file {location}{where} cannot be imported: {type(e).__name__}: {e}. {fix}",
            paths=[location],
        ) from e
    up = getattr(module, "up", None)
    if not callable(up):
        raise DiscoveryError(
            f"Migration file {location} has no up(conn) function. Define"
            " 'def up(conn):' with the change to make (see 'python -m selfmigrate create').",
            paths=[location],
        )
    if PY_TEMPLATE_MARK in text and _only_raises(up):
        # Refused here, before the run's first change, as an unedited .sql template is:
        # run, it would fail after the migrations before it were applied.
        raise DiscoveryError(
            f"Migration file {location} is the unedited template: its up() only raises"
            " NotImplementedError. Write the change it should make, or delete the file if it"
            " was created by mistake.",
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
    compatible = getattr(module, COMPATIBLE_ATTRIBUTE, False)
    if not isinstance(compatible, bool):
        raise DiscoveryError(
            f"Migration file {location} sets '{COMPATIBLE_ATTRIBUTE} = {compatible!r}'; it must be"
            " True or False.",
            paths=[location],
        )
    for attribute in vars(module):
        if (
            attribute != COMPATIBLE_ATTRIBUTE
            and "compat" in attribute.lower()  # what the pattern asks first: most names stop here
            and re.fullmatch(_COMPATIBLE_LIKE, attribute, re.IGNORECASE)
        ):
            raise DiscoveryError(
                f"Migration file {location} sets '{attribute}', which selfmigrate does not read; the"
                f" attribute that declares a migration compatible is '{COMPATIBLE_ATTRIBUTE} = True'."
                " Rename it (or remove it).",
                paths=[location],
            )
    checked_down = None if down is None else _checked(down, location, "down")
    return LoadedMigration(
        migration,
        up_function=_checked(up, location, "up"),
        down_function=checked_down,
        transactional=transactional,
        compatible=compatible,
        down_source=None if down is None else text,
    )


def _only_raises(function: t.Any) -> bool:
    """Whether ``function`` names nothing but ``NotImplementedError`` (the template's ``up()``:
    it cannot touch the connection, so all it can do is raise)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_names == ("NotImplementedError",)


#: Names selfmigrate's bytecode files apart from Python's own (``__pycache__/x.cpython-311.opt-selfmigrate.pyc``):
#: Python's import never reads them, and they hold what selfmigrate compiles (see :func:`_compiled`).
_CACHE_OPTIMIZATION = "selfmigrate"


def _cache_path(location: str) -> str | None:
    """Where the compiled code of the ``.py`` file at ``location`` is kept, or ``None`` (no cache tag)."""
    from importlib.util import cache_from_source

    try:
        return cache_from_source(location, optimization=_CACHE_OPTIMIZATION)
    except (NotImplementedError, ValueError):  # no sys.implementation.cache_tag
        return None


def _compiled(text: str, location: str, data: bytes | None = None, cache: str | None = None) -> types.CodeType:
    """``compile(text, location)``, or the same code from the bytecode cache file ``cache``.

    A cache file is used only if it says it was compiled, by this Python's bytecode
    version, from these very bytes (``data``, whose checksum the tracker records;
    SHA-256 of them) at this very location (the code's file name): the code that
    runs is always the code of the bytes that were checksummed. Otherwise the text
    is compiled, and the cache written for the next time (as Python's import does:
    atomically, and not at all when the folder is read-only or
    ``sys.dont_write_bytecode`` is set).
    """
    import marshal
    import sys
    from importlib.util import MAGIC_NUMBER

    head = b""
    if data is not None and cache is not None:
        key = hashlib.sha256(data).digest() + location.encode("utf-8", "surrogateescape")
        head = MAGIC_NUMBER + len(key).to_bytes(4, "little") + key
        try:
            with open(cache, "rb") as f:
                stored = f.read()
        except OSError:
            stored = b""
        if stored.startswith(head):
            try:
                code = marshal.loads(memoryview(stored)[len(head) :])
            except (EOFError, ValueError, TypeError):
                code = None  # a damaged cache file: compiled again, and rewritten
            if isinstance(code, types.CodeType):
                return code
    code = compile(text, location, "exec", dont_inherit=True)
    if head and cache is not None and not sys.dont_write_bytecode:
        _write_cache(cache, head + marshal.dumps(code))
    return code


def _write_cache(path: str, content: bytes) -> None:
    """Write a bytecode cache file atomically; a folder that cannot take it is left as it is."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as f:
            f.write(content)
        os.replace(temporary, path)
    except OSError:
        # Only a cache: the next start compiles again (Python's import does the same).
        import contextlib  # only to write the cache

        with contextlib.suppress(OSError):
            os.remove(temporary)


#: Module attribute names meant as ``compatible`` but spelt otherwise (``COMPATIBLE``,
#: ``is_compatible``, ``compatable``): an error, never silently ignored. Compiled (and
#: cached by :mod:`re`) when a name has ``compat`` in it, not at every start.
_COMPATIBLE_LIKE = r"_*(?:is_?)?compat[ai]b(?:le|el)"


def load_stored_down(migration: Migration, source: str) -> LoadedMigration:
    """A migration whose down is ``source``, as the tracker stored it (:attr:`LoadedMigration.down_source`).

    ``migration`` names it (its :attr:`~Migration.location` says where the copy
    is); a ``.py`` source is executed as a fresh module, as its file would be.
    """
    if migration.kind == "sql":
        script = SQLScript(source.replace("\r\n", "\n").replace("\r", "\n"), 1)
        if not _has_statement(script):  # stored before empty downs counted as none
            return LoadedMigration(migration, empty_down=True, from_tracker=True)
        return LoadedMigration(migration, down_sql=script, down_source=source, from_tracker=True)
    body = _load_python(migration, source)
    if body.down_function is None:
        raise DiscoveryError(
            f"The down stored for {migration.location} defines no down(conn) function.",
            paths=[migration.location],
        )
    return LoadedMigration(
        body.migration,
        body.up_sql,
        body.down_sql,
        body.up_function,
        body.down_function,
        body.transactional,
        body.compatible,
        body.down_source,
        body.empty_down,
        from_tracker=True,
    )


def _checked(function: MigrationFunction, location: str, name: str) -> MigrationFunction:
    """Refuse an ``up``/``down`` that would not run its body when called with the connection.

    An ``async def``, a generator or an async generator returns an object when
    called and runs nothing: recorded as applied, it would change nothing. A
    function that cannot take exactly one argument fails only when it is its
    turn, after the migrations before it ran. Both are found here, when the
    pending files are loaded, before the first change. What is returned also
    refuses, when called, a result that is a coroutine, generator or other
    awaitable (a decorator can hide an ``async def``).
    """
    line = getattr(getattr(function, "__code__", None), "co_firstlineno", None)
    where = f"{location}, line {line}" if line is not None else location
    kind = _not_run_by_a_call(function)
    if kind is not None:
        raise DiscoveryError(
            f"Migration file {where}: {name}() is {kind}. Calling it would only create an object and"
            f" run none of its body, yet the migration would be recorded as applied. Make it a plain"
            f" 'def {name}(conn):' (no async, no yield); run any async code inside it with"
            " asyncio.run(...).",
            paths=[location],
        )
    if not _takes_the_connection(function):
        import inspect  # not for a plain def: its code object answers

        try:
            signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):  # a builtin without a signature: the call will tell
            signature = None
        if signature is not None:
            try:
                signature.bind(None)
            except TypeError as e:
                raise DiscoveryError(
                    f"Migration file {where}: {name}{signature} cannot be called with the connection as"
                    f" its one argument ({e}). Define it as 'def {name}(conn):'.",
                    paths=[location],
                ) from e

    def call(conn: t.Any) -> object:
        result = function(conn)
        if result is None:
            return None  # what a plain up or down returns
        import inspect

        if inspect.isawaitable(result) or inspect.isgenerator(result) or inspect.isasyncgen(result):
            close = getattr(result, "close", None)
            if callable(close):
                close()  # an unstarted coroutine: no "never awaited" warning
            raise TypeError(
                f"{name}(conn) of {location} returned {type(result).__name__} {result!r} instead of"
                f" running: its body did not run. Make {name} a plain function (no async, no yield)."
            )
        return result

    return functools.update_wrapper(call, function)


#: Code flags of what a call only creates an object for (CO_GENERATOR, CO_COROUTINE,
#: CO_ASYNC_GENERATOR), and how :func:`_checked` names each.
_NOT_RUN = ((0x200, "an async generator (async def with yield)"), (0x80, "an async function (async def)"),
            (0x20, "a generator (it contains yield)"))


def _not_run_by_a_call(function: object) -> str | None:
    """What ``function`` is if calling it would run none of its body (async, generator), else ``None``.

    A plain ``def`` answers from its code object's flags; anything else
    (a partial, a method, a function marked as a coroutine function) is asked of
    :mod:`inspect`.
    """
    if type(function) is types.FunctionType and not hasattr(function, "__wrapped__") and not any(
        hasattr(function, marker) for marker in ("_is_coroutine_marker", "_is_coroutine")
    ):
        flags = function.__code__.co_flags
        return next((kind for flag, kind in _NOT_RUN if flags & flag), None)
    import inspect

    if inspect.isasyncgenfunction(function):
        return _NOT_RUN[0][1]
    if inspect.iscoroutinefunction(function):
        return _NOT_RUN[1][1]
    if inspect.isgeneratorfunction(function):
        return _NOT_RUN[2][1]
    return None


def _takes_the_connection(function: object) -> bool:
    """Whether ``function`` is a plain ``def`` that can be called with one positional argument.

    Read from its code object, as :func:`inspect.signature` would find it, at a
    fraction of the cost; ``False`` also means "ask :func:`inspect.signature`"
    (anything wrapped, with a ``__signature__``, or not a plain function).
    """
    if type(function) is not types.FunctionType or hasattr(function, "__wrapped__"):
        return False
    if hasattr(function, "__signature__"):
        return False
    code = function.__code__
    positional = code.co_argcount  # positional-only ones included
    defaults = len(function.__defaults__ or ())
    keyword_only = code.co_varnames[positional : positional + code.co_kwonlyargcount]
    given = function.__kwdefaults__ or {}
    if any(name not in given for name in keyword_only):
        return False
    return positional - defaults <= 1 and (positional >= 1 or bool(code.co_flags & 0x04))  # 0x04: CO_VARARGS


def line_in(error: BaseException, filename: str) -> int | None:
    """Return the line of ``filename`` where ``error`` was raised, if it was there."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    line = None
    import traceback  # only for a failure's message

    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line
