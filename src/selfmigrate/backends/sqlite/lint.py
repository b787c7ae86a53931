"""The SQLite side of the migration linter: SQLite's pitfalls, found by replaying the migrations.

Holds the SQLite rules (:data:`RULES`: SM001, SM101–SM111) and :class:`Linter`, which
replays migrations in version order into an in-memory scratch database and checks each
statement against the schema it meets. Must not know the registry, accept directives or
reports (``ops/lint.py``): it gets each migration's scripts and functions, and returns
``(code, line, message)`` triples.
"""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import sys
import traceback
import typing as t
from dataclasses import dataclass, field

from ..base import SQLScript, Statement
from .backend import EMPTY_DATABASE_PRAGMAS, NO_TRANSACTION_PRAGMAS
from .schema import normalise_sql
from .sqltext import split_statements

if t.TYPE_CHECKING:
    from ..base import MigrationFunction, Step

#: One finding: its code, the line of the file (``None``: not known) and the message.
Hit = tuple[str, int | None, str]

#: Every rule of this engine: code → (level, title, fix). ``"error"``: the migration
#: fails or loses data on a real database; ``"warning"``: very likely a mistake.
RULES: dict[str, tuple[str, str, str]] = {
    rule[0]: rule[1:]
    for rule in (
        (
            "SM001",
            "warning",
            "the migration does not replay on the schema of the earlier migrations",
            "make it apply to what the earlier migrations create (for a database that predates"
            " them, baseline it); the schema checks of this and later migrations were skipped",
        ),
        (
            "SM002",
            "warning",
            "an accept directive names an unknown code",
            "name a code from docs/lint.rst (SM101 … SM111)",
        ),
        (
            "SM101",
            "error",
            "a pragma SQLite ignores (or refuses) inside a transaction",
            "move it into a migration of its own that runs outside a transaction: a first line"
            " '-- migrate:no-transaction' (.sql) or 'transactional = False' (.py)",
        ),
        (
            "SM102",
            "warning",
            "DROP TABLE of a table that other tables reference with ON DELETE CASCADE",
            "rebuild the table with selfmigrate.sqlite.transform() (it refuses to run with foreign"
            " keys enforced), or drop or re-point the children first",
        ),
        (
            "SM103",
            "error",
            "ADD COLUMN … NOT NULL without a default",
            "give it a constant default (ADD COLUMN c INTEGER NOT NULL DEFAULT 0), or add it"
            " nullable, fill it, then make it NOT NULL with selfmigrate.sqlite.transform()",
        ),
        (
            "SM104",
            "error",
            "ADD COLUMN with a default that is not a constant",
            "add the column with a constant default (or none) and fill it with an UPDATE, or"
            " rebuild the table with selfmigrate.sqlite.transform()",
        ),
        (
            "SM105",
            "error",
            "ADD COLUMN with PRIMARY KEY or UNIQUE",
            "add the column without it, then CREATE UNIQUE INDEX on it (or rebuild with"
            " selfmigrate.sqlite.transform(pk=...))",
        ),
        (
            "SM106",
            "error",
            "ALTER TABLE … DROP COLUMN of a column that something else uses",
            "drop (or rewrite) what uses it first in the same migration, or rebuild the table with"
            " selfmigrate.sqlite.transform(drop=...)",
        ),
        (
            "SM107",
            "error",
            "a table rebuild with PRAGMA foreign_keys=OFF inside the transaction",
            "the pragma does nothing there, so DROP TABLE cascades into the children; call"
            " selfmigrate.sqlite.transform() in a .py migration instead",
        ),
        (
            "SM108",
            "warning",
            "the down does not undo the up",
            "make the down drop (or restore) exactly what the up creates (or drops), so that"
            " a rollback leaves the schema as it was",
        ),
        (
            "SM109",
            "error",
            "a migration marked compatible that is not expand-only",
            "remove the compatible marker (an older image then refuses or rolls back, as"
            " SELFMIGRATE_AHEAD says), or split the change: expand now (new tables, nullable"
            " columns, indexes), contract in a later migration not marked compatible",
        ),
        (
            "SM111",
            "warning",
            "DROP TABLE IF EXISTS of a table no earlier migration creates",
            "remove the DROP: a migration runs once, on a database that does not have the table yet;"
            " a database that predates the migrations is baselined or adopted (docs/adopting.rst),"
            " not re-created",
        ),
        (
            "SM110",
            "error",
            "a hand-run script's BEGIN/COMMIT or PRAGMA foreign_keys in a migration that runs in a transaction",
            "delete the line: selfmigrate runs the migration in a transaction of its own, commits it with"
            " its tracker row, and its connection does not enforce foreign keys (SQLite's default), so a"
            " table rebuild there already runs with them off; enforce them where the app opens its"
            " connections",
        ),
    )
}

#: Pragmas that SQLite ignores (foreign_keys; page_size and auto_vacuum until a
#: VACUUM, which cannot run in a transaction; encoding of an existing database)
#: or refuses (journal_mode WAL, synchronous) when set inside a transaction: the
#: ones the backend refuses in a migration's transaction, and ``encoding``.
PRAGMAS_OUTSIDE_TRANSACTION = NO_TRANSACTION_PRAGMAS | EMPTY_DATABASE_PRAGMAS
_SKIP_ON_REPLAY = frozenset({"BEGIN", "COMMIT", "END", "VACUUM", "ATTACH", "DETACH"})


class Linter:
    """The scratch database the migrations are replayed into, one :meth:`check` per migration, in order.

    Use it as a context manager (or :meth:`close` it): it holds an in-memory connection.
    """

    def __init__(self) -> None:
        self._scratch = _Scratch()

    def __enter__(self) -> t.Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the scratch database."""
        self._scratch.close()

    def check(
        self,
        location: str,
        text: str,
        *,
        up: Step,
        down: Step | None = None,
        transactional: bool = True,
        compatible: bool = False,
    ) -> list[Hit]:
        """Replay one migration (the next in version order) and return what it finds, by line.

        :param location: the migration file (Python tracebacks name it).
        :param text: the file's text.
        :param up: its up: a ``.sql`` file's script or a ``.py`` file's function.
        :param down: its down, if it has one.
        :param transactional: ``False`` for a migration that runs outside a transaction.
        :param compatible: the migration is marked compatible (code written before it
            still works after it): its up must only add (SM109).
        """
        body = _Body(location, up, down, transactional, compatible)
        return [(f.code, f.line, f.message) for f in _lint_one(body, text, self._scratch)]


@dataclass(frozen=True)
class _Body:
    """One migration as the checks read it."""

    location: str
    up: Step
    down: Step | None
    transactional: bool
    compatible: bool = False

    @property
    def up_sql(self) -> SQLScript | None:
        return self.up if isinstance(self.up, SQLScript) else None

    @property
    def up_function(self) -> MigrationFunction | None:
        return None if isinstance(self.up, SQLScript) else self.up

    @property
    def down_sql(self) -> SQLScript | None:
        return self.down if isinstance(self.down, SQLScript) else None

    @property
    def down_function(self) -> MigrationFunction | None:
        return None if self.down is None or isinstance(self.down, SQLScript) else self.down

    @property
    def has_down(self) -> bool:
        return self.down is not None


@dataclass(frozen=True)
class _Found:
    code: str
    line: int | None
    message: str


def _line_in(error: BaseException, filename: str) -> int | None:
    """The line of ``filename`` where ``error`` was raised, if it was there."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


# --- Tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """A token of one SQL statement: ``kind`` is word, name (quoted), string, number, blob or punct."""

    kind: str
    text: str
    #: Offset in the statement's text.
    offset: int

    @property
    def upper(self) -> str:
        """The text in capitals (for keywords)."""
        return self.text.upper()

    @property
    def name(self) -> str:
        """The identifier it names, unquoted."""
        if self.kind == "name":
            body = self.text[1:-1]
            return body if self.text[0] == "[" else body.replace(self.text[0] * 2, self.text[0])
        if self.kind == "string":
            return self.text[1:-1].replace("''", "'")
        return self.text


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<name>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)
  | (?P<punct>\|\||<<|>>|<=|>=|==|!=|<>|.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(sql: str) -> list[_Token]:
    """Split one SQL statement into tokens; comments and white space are dropped."""
    found = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append(_Token(kind, match.group(), match.start()))
    return found


def _words(toks: t.Sequence[_Token], *expected: str) -> bool:
    return len(toks) >= len(expected) and all(
        tok.kind == "word" and tok.upper == word for tok, word in zip(toks, expected, strict=False)
    )


def _qualified_name(toks: t.Sequence[_Token], i: int) -> tuple[str, int]:
    """The (unqualified) object name at ``toks[i]`` (``main.t`` → ``t``) and the index after it."""
    name = toks[i].name if i < len(toks) else ""
    i += 1
    if i + 1 < len(toks) and toks[i].text == ".":
        name = toks[i + 1].name
        i += 2
    return name, i


# --- Statements -------------------------------------------------------------------------


@dataclass
class _Context:
    """What the checks of one migration share."""

    body: _Body
    scratch: _Scratch
    #: The database the schema checks look at (``None``: skipped): the scratch
    #: database for a ``.sql`` file, a copy from before its up for a ``.py`` one.
    schema: sqlite3.Connection | None = None
    findings: list[_Found] = field(default_factory=list)
    #: Whether the statements seen so far opened an explicit transaction (BEGIN without COMMIT).
    explicit_transaction: bool = False
    #: Lines of PRAGMA foreign_keys=OFF set inside a transaction.
    foreign_keys_off: list[int] = field(default_factory=list)
    drops_table: bool = False
    renames_table: bool = False
    #: Lines of statements with an error finding (a replay failure there is expected).
    error_lines: set[int] = field(default_factory=set)
    #: Object name → line of the up statement that creates it.
    created: dict[str, int] = field(default_factory=dict)

    @property
    def location(self) -> str:
        return self.body.location

    def add(self, code: str, line: int | None, message: str) -> None:
        self.findings.append(_Found(code, line, message))
        if RULES[code][0] == "error" and line is not None:
            self.error_lines.add(line)


def _line(statement: Statement, tok: _Token) -> int:
    return statement.line + statement.sql.count("\n", 0, tok.offset)


def _check_statement(ctx: _Context, statement: Statement) -> None:
    """Run the statement checks on one statement of an up."""
    toks = _tokens(statement.sql)
    if not toks or toks[0].kind != "word":
        return
    head = toks[0].upper
    if head == "PRAGMA":
        _check_pragma(ctx, statement, toks)
    elif head in ("BEGIN", "COMMIT", "END") or (head == "ROLLBACK" and not any(tok.upper == "TO" for tok in toks)):
        if ctx.body.transactional:
            # In a .py file the line often has no COMMIT in it: sqlite3 sends one for these calls.
            source = (
                " (in a .py migration, conn.commit(), 'with conn:' and conn.executescript(), which commits"
                " before its script, send it: run each statement with conn.execute() instead)"
                if head == "COMMIT" and ctx.body.up_function is not None
                else ""
            )
            ctx.add(
                "SM110",
                statement.line,
                f"{head} in a migration that runs in a transaction; selfmigrate refuses it when the migration"
                f" runs{source}",
            )
        ctx.explicit_transaction = head == "BEGIN"
    elif _words(toks, "ALTER", "TABLE"):
        _check_alter(ctx, statement, toks)
    elif _words(toks, "DROP", "TABLE"):
        ctx.drops_table = True
        if_exists = _words(toks[2:], "IF", "EXISTS")
        table, _ = _qualified_name(toks, 4 if if_exists else 2)
        if ctx.schema is not None and table:
            _check_drop_table(ctx, ctx.schema, statement, table)
            if if_exists and not _exists(ctx.schema, table):
                # An init-db script's "drop and re-create": a no-op on the migrations' own
                # database, the loss of the table's rows on one that predates them.
                ctx.add(
                    "SM111",
                    statement.line,
                    f"DROP TABLE IF EXISTS {table}: no earlier migration creates {table}, so this drops"
                    " it, with its rows, only on a database that predates the migrations",
                )
    elif head == "CREATE":
        _note_create(ctx, statement, toks)


def _check_pragma(ctx: _Context, statement: Statement, toks: list[_Token]) -> None:
    name, i = _qualified_name(toks, 1)
    if i >= len(toks) or toks[i].text not in ("=", "("):
        return  # reading a pragma is harmless
    name = name.lower()
    value = "".join(tok.text for tok in toks[i + 1 :] if tok.text not in ("(", ")", ";")).strip("'\"").lower()
    in_transaction = ctx.body.transactional or ctx.explicit_transaction
    if not in_transaction or name not in PRAGMAS_OUTSIDE_TRANSACTION:
        return
    if name == "foreign_keys" and ctx.body.transactional:
        # The envelope of a script written to be run by hand (sqlite3 .dump, Uptime Kuma's
        # patches, Go tools' rebuilds): SM110's fix (delete it) is the right one, not SM101's.
        ctx.add(
            "SM110",
            statement.line,
            "PRAGMA foreign_keys in a migration that runs in a transaction, where SQLite ignores it;"
            " selfmigrate refuses it when the migration runs",
        )
        return
    if name == "foreign_keys" and value in ("off", "0", "false", "no"):
        ctx.foreign_keys_off.append(statement.line)
        return  # SM101 or SM107, told once the whole migration is seen
    where = "in a migration that runs in a transaction" if ctx.body.transactional else "after BEGIN"
    ctx.add("SM101", statement.line, f"PRAGMA {name} is set {where}; SQLite ignores or refuses it there")


def _check_alter(ctx: _Context, statement: Statement, toks: list[_Token]) -> None:
    table, i = _qualified_name(toks, 2)
    if i < len(toks) and toks[i].upper == "RENAME":
        ctx.renames_table = True
        return
    if i < len(toks) and toks[i].upper == "ADD":
        i += 1
        if i < len(toks) and toks[i].upper == "COLUMN":
            i += 1
        _check_add_column(ctx, statement, table, toks[i:])
    elif i < len(toks) and toks[i].upper == "DROP":
        i += 1
        if i < len(toks) and toks[i].upper == "COLUMN":
            i += 1
        if i < len(toks) and ctx.schema is not None:
            _check_drop_column(ctx, ctx.schema, statement, table, toks[i].name)


def _check_add_column(ctx: _Context, statement: Statement, table: str, toks: list[_Token]) -> None:
    if not toks:
        return
    column = toks[0].name
    constraints = _constraints(toks[1:])
    not_null = next((c for c in constraints if _words(c, "NOT", "NULL")), None)
    default = next((c for c in constraints if _words(c, "DEFAULT")), None)
    generated = next((c for c in constraints if _words(c, "AS") or _words(c, "GENERATED")), None)
    for constraint in constraints:
        if _words(constraint, "PRIMARY", "KEY") or _words(constraint, "UNIQUE"):
            kind = "PRIMARY KEY" if constraint[0].upper == "PRIMARY" else "UNIQUE"
            ctx.add(
                "SM105",
                _line(statement, constraint[0]),
                f"ADD COLUMN {column} to {table} with {kind}: SQLite refuses it ('Cannot add a {kind} column')",
            )
    if generated is not None:
        if any(tok.upper == "STORED" for tok in generated):
            ctx.add(
                "SM104",
                _line(statement, generated[0]),
                f"ADD COLUMN {column} to {table} as a STORED generated column: SQLite refuses it once the"
                " table has rows ('cannot add a STORED column')",
            )
        return
    if default is not None and not _constant(default[1:]):
        shown = " ".join(tok.text for tok in default[1:])
        ctx.add(
            "SM104",
            _line(statement, default[0]),
            f"ADD COLUMN {column} to {table} with DEFAULT {shown}: passes on an empty table, fails once it"
            " has rows ('Cannot add a column with non-constant default')",
        )
    if not_null is not None and (default is None or _is_null(default[1:])):
        ctx.add(
            "SM103",
            _line(statement, not_null[0]),
            f"ADD COLUMN {column} to {table} is NOT NULL without a default: passes on an empty table, fails"
            " once it has rows ('Cannot add a NOT NULL column with default value NULL')",
        )


_CONSTRAINT_WORDS = frozenset(
    {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES", "GENERATED", "AS"}
)


def _constraints(toks: list[_Token]) -> list[list[_Token]]:
    """The column constraints after a column's name and type, each as its tokens."""
    groups: list[list[_Token]] = []
    depth = 0
    for index, tok in enumerate(toks):
        if tok.text == ";":
            break
        starts = (
            depth == 0
            and tok.kind == "word"
            and tok.upper in _CONSTRAINT_WORDS
            # NULL after NOT or DEFAULT, AS after GENERATED ALWAYS, and NOT NULL inside a
            # constraint do not start one.
            and not (tok.upper == "NULL" and index and toks[index - 1].upper in ("NOT", "DEFAULT"))
            and not (tok.upper == "AS" and index and toks[index - 1].upper == "ALWAYS")
        )
        if starts and not (groups and groups[-1][0].upper == "CONSTRAINT" and len(groups[-1]) < 2):
            groups.append([tok])
        elif groups:
            groups[-1].append(tok)
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
    return groups


def _constant(expr: list[_Token]) -> bool:
    """Whether a default is what SQLite accepts in ADD COLUMN: a literal, maybe signed and in parentheses."""
    inner = [tok for tok in expr if tok.text not in ("(", ")")]
    if inner and inner[0].text in ("+", "-"):
        inner = inner[1:]
    if len(inner) != 1:
        return False
    tok = inner[0]
    return tok.kind in ("number", "string", "blob") or (tok.kind == "word" and tok.upper in ("NULL", "TRUE", "FALSE"))


def _is_null(expr: list[_Token]) -> bool:
    inner = [tok for tok in expr if tok.text not in ("(", ")")]
    return len(inner) == 1 and inner[0].upper == "NULL"


def _exists(conn: sqlite3.Connection, table: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE", (table,))
    return found.fetchone() is not None


def _check_drop_table(ctx: _Context, conn: sqlite3.Connection, statement: Statement, table: str) -> None:
    children = []
    for (child,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if child == table or child.startswith("sqlite_"):
            continue
        for row in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (child,)):
            # (id, seq, table, from, to, on_update, on_delete, match)
            if row[2].lower() == table.lower() and str(row[6]).upper() == "CASCADE":
                children.append(f"{child}.{row[3]}")
    if children:
        ctx.add(
            "SM102",
            statement.line,
            f"DROP TABLE {table}: {', '.join(children)} reference(s) it ON DELETE CASCADE; with foreign keys"
            " enforced the drop deletes their rows",
        )


def _check_drop_column(ctx: _Context, conn: sqlite3.Connection, statement: Statement, table: str, column: str) -> None:
    word = re.compile(rf"(?<![\w$]){re.escape(column)}(?![\w$])", re.IGNORECASE)
    users: list[str] = []
    #: References from other tables: SQLite drops the column, and their foreign keys break.
    broken: list[str] = []
    for name, kind, tbl, sql in conn.execute("SELECT name, type, tbl_name, sql FROM sqlite_master ORDER BY name"):
        if kind == "index" and tbl.lower() == table.lower():
            columns = [r[2] for r in conn.execute("SELECT * FROM pragma_index_xinfo(?)", (name,)) if r[5]]
            uses = any(c is not None and c.lower() == column.lower() for c in columns)
            if uses or (sql is not None and word.search(sql.split("(", 1)[-1])):
                users.append(f"index {name}" if sql is not None else f"the {_auto_index_kind(conn, name)} of {table}")
        elif kind in ("view", "trigger") and sql is not None and word.search(sql):
            if re.search(rf"(?<![\w$]){re.escape(table)}(?![\w$])", sql, re.IGNORECASE):
                users.append(f"{kind} {name}")
        elif kind == "table" and tbl.lower() != table.lower():
            for row in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (name,)):
                if row[2].lower() == table.lower() and row[4] is not None and row[4].lower() == column.lower():
                    broken.append(f"{name}.{row[3]}")
    for row in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (table,)):
        if row[3].lower() == column.lower():
            users.append(f"its foreign key to {row[2]}")
    for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,)):
        if row[1].lower() == column.lower() and row[5]:
            users.append("the table's primary key")
    what = f"ALTER TABLE {table} DROP COLUMN {column}"
    referenced = f"{', '.join(broken)} reference(s) it"
    if users:
        also = f" (and {referenced})" if broken else ""
        ctx.add(
            "SM106", statement.line, f"{what}: used by {', '.join(dict.fromkeys(users))}{also}; SQLite refuses the drop"
        )
    elif broken:
        ctx.add(
            "SM106",
            statement.line,
            f"{what}: {referenced}; SQLite drops it and their foreign key breaks (with foreign keys enforced,"
            " 'foreign key mismatch' on their next write)",
        )


def _auto_index_kind(conn: sqlite3.Connection, index: str) -> str:
    for row in conn.execute(
        "SELECT * FROM pragma_index_list((SELECT tbl_name FROM sqlite_master WHERE name = ?))", (index,)
    ):
        if row[1] == index:
            return "primary key" if row[3] == "pk" else "UNIQUE constraint"
    return "index"


def _note_create(ctx: _Context, statement: Statement, toks: list[_Token]) -> None:
    i = 1
    while i < len(toks) and toks[i].upper in ("TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL"):
        i += 1
    if i >= len(toks) or toks[i].upper not in ("TABLE", "INDEX", "VIEW", "TRIGGER"):
        return
    i += 1
    if _words(toks[i:], "IF", "NOT", "EXISTS"):
        i += 3
    name, _ = _qualified_name(toks, i)
    if name:
        ctx.created.setdefault(name.lower(), statement.line)


def _finish(ctx: _Context) -> None:
    """The checks that need the whole up: a hand-written rebuild with foreign_keys=OFF."""
    rebuild = ctx.drops_table and ctx.renames_table
    for line in ctx.foreign_keys_off:
        if rebuild:
            ctx.add(
                "SM107",
                line,
                "a table rebuild (DROP TABLE, ALTER TABLE … RENAME) with PRAGMA foreign_keys=OFF inside the"
                " transaction, where SQLite ignores it",
            )
        else:
            ctx.add("SM101", line, "PRAGMA foreign_keys is set inside a transaction; SQLite ignores it there")


# --- Replay -----------------------------------------------------------------------------


class _Scratch:
    """The in-memory database the migrations are replayed into, and whether it still follows them."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        #: ``False`` once a migration failed to replay: the schema no longer matches.
        self.live = True
        #: ``CREATE`` statement → its normalised text (the schema is read twice per migration).
        self.normalised: dict[str, str] = {}

    def close(self) -> None:
        self.conn.close()

    def copy(self) -> sqlite3.Connection:
        """A copy of the scratch database, to try a down on."""
        other = sqlite3.connect(":memory:", isolation_level=None)
        self.conn.backup(other)
        return other


def _lint_one(body: _Body, text: str, scratch: _Scratch) -> list[_Found]:
    ctx = _Context(body, scratch)
    live = scratch.live
    before = _schema(scratch.conn, scratch.normalised) if live else None
    columns_before = _columns(scratch.conn) if live and body.compatible else {}
    if body.up_sql is not None:
        _up_sql(ctx, body.up_sql)
    elif live:
        _up_python(ctx)
    else:
        _scan_python(ctx, text)
    _finish(ctx)
    if body.compatible and live and scratch.live and before is not None:
        _check_expand_only(ctx, before, columns_before, text)
    if live and scratch.live and before is not None and body.has_down:
        _check_down(ctx, before, text)
    return sorted(ctx.findings, key=lambda f: (f.line or 0, f.code))


def _replayed(sql: str) -> bool:
    toks = _tokens(sql)
    if not toks:
        return False
    head = toks[0].upper
    if head in _SKIP_ON_REPLAY or (head == "ROLLBACK" and not any(tok.upper == "TO" for tok in toks)):
        return False
    if head == "PRAGMA":
        name, i = _qualified_name(toks, 1)
        return not (i < len(toks) and toks[i].text in ("=", "(") and name.lower() in PRAGMAS_OUTSIDE_TRANSACTION)
    return True


def _up_sql(ctx: _Context, script: SQLScript) -> None:
    scratch = ctx.scratch
    conn = scratch.conn
    if scratch.live:
        conn.execute("BEGIN")
    ctx.schema = conn if scratch.live else None
    for statement in split_statements(script):
        if not scratch.live:
            ctx.schema = None
        _check_statement(ctx, statement)
        if not scratch.live or not _replayed(statement.sql):
            continue
        try:
            conn.execute(statement.sql).fetchall()
        except sqlite3.Error as e:
            if statement.line in ctx.error_lines:
                continue  # the finding said it fails; replay goes on without it
            ctx.add("SM001", statement.line, f"replaying it on a scratch database failed: {e}")
            scratch.live = False
            conn.execute("ROLLBACK")
    if scratch.live:
        conn.execute("COMMIT")


def _up_python(ctx: _Context) -> None:
    body = ctx.body
    assert body.up_function is not None
    before = ctx.scratch.copy()
    try:
        error, seen, by_transform = _call_traced(ctx, body.up_function, body.transactional, ctx.scratch.conn)
        # The statements again, one by one on a copy from before the up, so that each
        # is checked against the schema it met.
        ctx.schema = before
        before.execute("BEGIN")
        for n, statement in enumerate(seen):
            if n not in by_transform:
                _check_statement(ctx, statement)
            if ctx.schema is None or not _replayed(statement.sql):
                continue
            try:
                before.execute(statement.sql).fetchall()
            except sqlite3.Error:
                ctx.schema = None  # the rest of this migration gets the text checks only
    finally:
        before.close()
        ctx.schema = None
    if error is not None:
        # Said even when an error finding explains it: the schema checks stop here.
        ctx.add("SM001", error[1], f"running its up(conn) on a scratch database failed: {error[0]}")
        ctx.scratch.live = False


def _scan_python(ctx: _Context, text: str) -> None:
    """The text checks on the SQL in a ``.py`` file's string literals, when it cannot be replayed."""
    tree = ast.parse(text, ctx.location)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for statement in split_statements(SQLScript(node.value, node.lineno)):
                _check_statement(ctx, statement)


#: The file of :func:`selfmigrate.sqlite.transform`: the statements it runs are its own
#: safe rebuild (its DROP TABLE runs with foreign keys off), not the migration's to lint.
_TRANSFORM_FILE = os.path.join(os.path.dirname(__file__), "transform.py")


def _call_traced(
    ctx: _Context,
    function: t.Callable[[sqlite3.Connection], object],
    transactional: bool,
    conn: sqlite3.Connection,
) -> tuple[tuple[str, int | None] | None, list[Statement], set[int]]:
    """Call a Python migration's function on ``conn``, seeing each statement it runs.

    Returns the error and the line it was raised on (``None`` if it succeeded),
    the statements it ran, each with the line of the file that ran it, and the
    indexes in that list of those that :func:`selfmigrate.sqlite.transform` ran
    (replayed for the schema, not checked).
    """
    location = ctx.location
    seen: list[Statement] = []
    by_transform: set[int] = set()

    def trace(sql: str) -> None:
        if sql.startswith("--"):
            return  # a statement of a trigger
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename != location:
            if frame.f_code.co_filename == _TRANSFORM_FILE:
                by_transform.add(len(seen))
            frame = frame.f_back  # type: ignore[assignment]
        seen.append(Statement(sql.strip(), frame.f_lineno if frame is not None else 0))

    factories = (conn.row_factory, conn.text_factory)
    try:
        if transactional:
            conn.execute("BEGIN")
        conn.set_trace_callback(trace)
        try:
            function(conn)
        finally:
            conn.set_trace_callback(None)
        if conn.in_transaction:
            conn.execute("COMMIT")
    except Exception as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return (f"{type(e).__name__}: {e}", _line_in(e, location)), seen, by_transform
    finally:
        conn.row_factory, conn.text_factory = factories
    return None, seen, by_transform


def _schema(conn: sqlite3.Connection, cache: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Object name (lower case) → (type, normalised SQL), SQLite's own objects left out."""
    found = {}
    for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"):
        if not name.startswith("sqlite_"):
            if sql not in cache:
                cache[sql] = normalise_sql(sql)
            found[name.lower()] = (kind, cache[sql])
    return found


#: A column as code written before a migration relies on it: declared type,
#: NOT NULL, default, place in the primary key, and whether it is generated.
Column = tuple[str, int, object, int, int]


def _columns(conn: sqlite3.Connection) -> dict[str, dict[str, Column]]:
    """Table name (lower case) → column name (lower case) → :data:`Column`, for every table."""
    tables = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    found: dict[str, dict[str, Column]] = {}
    for table in tables:
        found[table.lower()] = {
            str(name).lower(): (str(kind).upper(), notnull, default, pk, hidden)
            for _, name, kind, notnull, default, pk, hidden in conn.execute(
                "SELECT * FROM pragma_table_xinfo(?)", (table,)
            )
        }
    return found


def _check_expand_only(
    ctx: _Context, before: dict[str, tuple[str, str]], columns_before: dict[str, dict[str, Column]], text: str
) -> None:
    """SM109: a migration marked compatible must leave what code written before it uses as it was.

    Judged on the scratch schema before and after the up, so a rebuild (by hand, or
    ``selfmigrate.sqlite.transform``) is judged by what it leaves. Expand-only means:
    every table, view and column is still there, each column with its type, NOT NULL,
    default and key; a new column is nullable or has a default; no new CHECK or trigger
    (older code's writes could trip over them). New tables and indexes are fine.
    """
    conn = ctx.scratch.conn
    after = _schema(conn, ctx.scratch.normalised)
    columns_after = _columns(conn)
    line = ctx.body.up_sql.first_line if ctx.body.up_sql is not None else _def_line(text, "up")
    problems: list[str] = []
    for name, (kind, sql) in sorted(before.items()):
        if name not in after:
            problems.append(f"it drops (or renames) {kind} {name}")
        elif kind == "view" and after[name] != (kind, sql):
            problems.append(f"it changes view {name}")
    for table, old in sorted(columns_before.items()):
        new = columns_after.get(table)
        if new is None:
            continue  # told above
        for column, spec in old.items():
            if column not in new:
                problems.append(f"it drops (or renames) column {table}.{column}")
            elif new[column] != spec:
                problems.append(f"it changes column {table}.{column} (type, NOT NULL, default or key)")
        for column, (_, notnull, default, _pk, hidden) in new.items():
            if column not in old and notnull and default is None and not hidden:
                problems.append(f"it adds column {table}.{column} NOT NULL without a default")
        if _checks(after.get(table, ("", ""))[1]) > _checks(before.get(table, ("", ""))[1]):
            problems.append(f"it adds a CHECK constraint to table {table}")
    for name, (kind, _sql) in sorted(after.items()):
        if name not in before and kind == "trigger":
            problems.append(f"it adds trigger {name}, which older code's writes may trip over")
    if problems:
        ctx.add(
            "SM109",
            line,
            "it is marked compatible, but " + "; ".join(dict.fromkeys(problems)) + ": code written before it may fail",
        )


def _checks(sql: str) -> int:
    """How many CHECK constraints a ``CREATE TABLE`` statement has."""
    return sum(1 for tok in _tokens(sql) if tok.upper == "CHECK")


def _check_down(ctx: _Context, before: dict[str, tuple[str, str]], text: str) -> None:
    body = ctx.body
    down_line = body.down_sql.first_line - 1 if body.down_sql is not None else _def_line(text, "down")
    trial = ctx.scratch.copy()
    try:
        if body.down_sql is not None:
            trial.execute("BEGIN")
            for statement in split_statements(body.down_sql):
                if not _replayed(statement.sql):
                    continue
                try:
                    trial.execute(statement.sql).fetchall()
                except sqlite3.Error as e:
                    ctx.add("SM108", statement.line, f"the down fails right after the up, on a scratch database: {e}")
                    return
            trial.execute("COMMIT")
        else:
            assert body.down_function is not None
            error, _, _ = _call_traced(ctx, body.down_function, body.transactional, trial)
            if error is not None:
                ctx.add(
                    "SM108",
                    error[1] or down_line,
                    f"the down fails right after the up, on a scratch database: {error[0]}",
                )
                return
        after = _schema(trial, ctx.scratch.normalised)
    finally:
        trial.close()
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if was is None:
            assert now is not None
            ctx.add(
                "SM108",
                ctx.created.get(name, down_line),
                f"the up creates {now[0]} {name} and the down does not drop it",
            )
        elif now is None:
            ctx.add("SM108", down_line, f"the up drops {was[0]} {name} and the down does not recreate it")
        else:
            ctx.add("SM108", down_line, f"after the down, {was[0]} {name} is not as it was before the up")


def _def_line(text: str, name: str) -> int | None:
    match = re.search(rf"^def {name}\b", text, re.MULTILINE)
    return None if match is None else text.count("\n", 0, match.start()) + 1
