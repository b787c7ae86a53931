"""Rebuild a SQLite table in a new layout, keeping everything it did not change.

SQLite's ``ALTER TABLE`` cannot change a column's type, default or constraints,
nor a table's primary key or foreign keys; the documented way is a rebuild (the
12 steps of "Making Other Kinds Of Table Schema Changes" on SQLite's ALTER
TABLE page). :func:`transform` does it with sqlite-utils' keyword names, and
keeps what sqlite-utils loses: triggers, the table's exact column definitions
(declared types, collations, CHECKs, generated columns, comments), WITHOUT ROWID
and every stored value.

How it keeps the SQL text of everything else "exactly as it was, adjusted only
for renamed or dropped columns": renames are done first with SQLite's own
``ALTER TABLE … RENAME COLUMN``, which rewrites every index, trigger, view and
foreign key that names the column. A dropped column is first renamed the same
way to a unique placeholder name; any object whose SQL then contains the
placeholder uses the dropped column, and the call fails naming it, after
rolling back to its savepoint. The table's ``CREATE TABLE`` text is tokenized
and edited in place, so an untouched column keeps its definition to the byte.

The module depends only on the standard library and :mod:`selfmigrate.errors`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import typing as t
from dataclasses import dataclass, field

from ...errors import TransformError

logger = logging.getLogger(__name__)

#: A foreign key to add: ``(column, other_table)`` (referencing the other
#: table's primary key), ``(column, other_table, other_column)``, or the
#: compound form ``((col, ...), other_table, (other_col, ...))``.
ForeignKeySpec = tuple[t.Any, ...]
#: A column type: an SQL type name (``"TEXT"``, ``"VARCHAR(20)"``) or, as in
#: sqlite-utils, a Python type (``int``, ``float``, ``str``, ``bytes``).
ColumnType = str | type

_PYTHON_TYPES: dict[type, str] = {int: "INTEGER", bool: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}
_SAVEPOINT = "selfmigrate_transform"

# --- tokens ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
  | (?P<param>[?:@$][A-Za-z0-9_]*)
  | (?P<op>\|\||<=|>=|==|!=|<>|<<|>>|->>|->|.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str

    @property
    def trivia(self) -> bool:
        return self.kind in ("ws", "comment")

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    def ident(self) -> str | None:
        """The identifier this token names (unquoted), or ``None``."""
        if self.kind == "word":
            return self.text
        if self.kind in ("qident", "string"):
            body = self.text[1:-1]
            if self.text[0] == "[":
                return body
            return body.replace(self.text[0] * 2, self.text[0])
        return None


def _tokenize(sql: str) -> list[_Tok]:
    return [_Tok(m.lastgroup or "op", m.group()) for m in _TOKEN.finditer(sql)]


def _text(tokens: t.Sequence[_Tok]) -> str:
    return "".join(tok.text for tok in tokens)


def quote(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _same(a: str, b: str) -> bool:
    # SQLite compares identifiers case-insensitively for ASCII letters only.
    return a.encode().lower() == b.encode().lower()


def _mentions(sql: str, name: str) -> bool:
    """Whether ``sql`` has an identifier token ``name`` (over-inclusion is harmless)."""
    return any(
        tok.ident() is not None and tok.kind != "string" and _same(tok.ident() or "", name) for tok in _tokenize(sql)
    )


def _matching(tokens: t.Sequence[_Tok], i: int) -> int:
    """Index of the ``)`` that closes the ``(`` at ``tokens[i]``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind == "op" and tokens[j].text == "(":
            depth += 1
        elif tokens[j].kind == "op" and tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced parentheses")


def _split(tokens: t.Sequence[_Tok]) -> list[list[_Tok]]:
    """Split at the commas outside parentheses."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.text == "(":
            depth += 1
        elif tok.kind == "op" and tok.text == ")":
            depth -= 1
        elif tok.kind == "op" and tok.text == "," and depth == 0:
            parts.append([])
            continue
        parts[-1].append(tok)
    return parts


def _names_in_parens(tokens: t.Sequence[_Tok]) -> list[str]:
    """The first identifier of each comma-separated item of the first ``( … )``."""
    start = next((i for i, tok in enumerate(tokens) if tok.kind == "op" and tok.text == "("), None)
    if start is None:
        return []
    inner = tokens[start + 1 : _matching(tokens, start)]
    names = []
    for part in _split(inner):
        first = next((tok for tok in part if not tok.trivia), None)
        if first is not None and first.ident() is not None:
            names.append(first.ident() or "")
    return names


# --- the CREATE TABLE statement as editable parts -----------------------------------

_COLUMN_CONSTRAINTS = frozenset(
    {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES", "GENERATED", "AS"}
)
_TABLE_CONSTRAINTS = frozenset({"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"})


@dataclass
class _Constraint:
    """One constraint of a column or of the table, kept as its SQL text."""

    kind: str  # PRIMARY, NOT, NULL, UNIQUE, CHECK, DEFAULT, COLLATE, REFERENCES, GENERATED, AS, FOREIGN
    tokens: list[_Tok]
    name: str | None = None

    @property
    def sql(self) -> str:
        return _text(self.tokens).strip()

    def idents(self) -> list[str]:
        return [tok.ident() or "" for tok in self.tokens if tok.kind in ("word", "qident")]

    def columns(self) -> list[str]:
        """The column list of a table-level PRIMARY KEY, UNIQUE or FOREIGN KEY."""
        return _names_in_parens(self.tokens)

    def references(self) -> tuple[str, list[str]]:
        """The table and columns a REFERENCES clause names."""
        sig = [tok for tok in self.tokens if not tok.trivia]
        at = next(i for i, tok in enumerate(sig) if tok.upper == "REFERENCES")
        table = sig[at + 1].ident() or ""
        rest = sig[at + 2 :]
        columns = _names_in_parens(rest) if rest and rest[0].text == "(" else []
        return table, columns


@dataclass
class _Column:
    name: str
    original: str | None  # the definition's text while unchanged
    name_sql: str
    type_sql: str | None
    constraints: list[_Constraint]
    comment: str = ""  # a comment on the same line, after the comma
    lead: str | None = None  # the whitespace and comment lines before it (None: a new item)

    def sql(self) -> str:
        if self.original is not None:
            return self.original
        parts = [self.name_sql]
        if self.type_sql:
            parts.append(self.type_sql)
        parts.extend(c.sql for c in self.constraints)
        return " ".join(parts)

    def find(self, kind: str) -> list[_Constraint]:
        return [c for c in self.constraints if c.kind == kind]

    def remove(self, kinds: t.Container[str]) -> bool:
        kept = [c for c in self.constraints if c.kind not in kinds]
        changed = len(kept) != len(self.constraints)
        if changed:
            self.constraints, self.original = kept, None
        return changed

    def add(self, sql: str, kind: str) -> None:
        self.constraints.append(_Constraint(kind, _tokenize(sql)))
        self.original = None


@dataclass
class _TableConstraint:
    constraint: _Constraint
    original: str
    comment: str = ""
    lead: str | None = None

    @property
    def kind(self) -> str:
        return self.constraint.kind


@dataclass
class _Table:
    columns: list[_Column]
    constraints: list[_TableConstraint]
    without_rowid: bool
    strict: bool
    indent: str = " "  # before an item the call adds
    closing: str = ""
    extra_options: list[str] = field(default_factory=list)

    def column(self, name: str) -> _Column:
        return next(c for c in self.columns if _same(c.name, name))

    def sql(self, name: str) -> str:
        items: list[tuple[str | None, str, str]] = [(c.lead, c.sql(), c.comment) for c in self.columns]
        items += [(c.lead, c.original, c.comment) for c in self.constraints]
        body = ""
        for i, (lead, sql, comment) in enumerate(items):
            if lead is None or (i > 0 and not lead):
                lead = self.indent
            if _open_line_comment(body) and "\n" not in lead:
                lead = "\n" + lead
            body += lead + sql + ("," if i < len(items) - 1 else "") + comment
        options = (
            self.extra_options + (["WITHOUT ROWID"] if self.without_rowid else []) + (["STRICT"] if self.strict else [])
        )
        closing = "\n" + self.closing if _open_line_comment(body) and "\n" not in self.closing else self.closing
        return f"CREATE TABLE {quote(name)} ({body}{closing})" + (" " + ", ".join(options) if options else "")


def _open_line_comment(sql: str) -> bool:
    """Whether ``sql`` ends inside a ``--`` comment (what follows needs a new line)."""
    tokens = _tokenize(sql)
    return bool(tokens) and tokens[-1].kind == "comment" and tokens[-1].text.startswith("--")


def _parse_constraints(tokens: list[_Tok], table_level: bool) -> list[_Constraint]:
    """Cut a column's constraints (after its type), or a table constraint, into parts."""
    starts = _TABLE_CONSTRAINTS if table_level else _COLUMN_CONSTRAINTS
    result: list[_Constraint] = []
    current: _Constraint | None = None
    pending_name = False  # the token after CONSTRAINT is its name
    default_value = False  # the token after DEFAULT is its value
    previous = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.trivia:
            if current is not None:
                current.tokens.append(tok)
            i += 1
            continue
        word = tok.upper
        following = next((x.upper for x in tokens[i + 1 :] if not x.trivia), "")
        is_start = (
            word in starts
            and not pending_name
            and not default_value
            and not (word == "NOT" and following == "DEFERRABLE")
            and not (word in ("NULL", "DEFAULT") and previous == "SET")
            and not (word == "NULL" and previous == "NOT")
            and not (word == "AS" and current is not None and current.kind == "GENERATED")
        )
        if is_start and current is not None and current.kind == "CONSTRAINT":
            current.kind = word  # CONSTRAINT name PRIMARY KEY …: one constraint
        elif is_start:
            current = _Constraint(word, [])
            result.append(current)
        if current is None:
            raise ValueError(f"unexpected {tok.text!r} in a column definition")
        if tok.kind == "op" and tok.text == "(":
            end = _matching(tokens, i)
            current.tokens.extend(tokens[i : end + 1])
            i = end + 1
            default_value = False
            previous = ")"
            continue
        current.tokens.append(tok)
        if pending_name:
            current.name = tok.ident()
            pending_name = False
        elif default_value and tok.text not in ("+", "-"):
            default_value = False
        elif is_start and word == "CONSTRAINT":
            pending_name = True
        elif is_start and word == "DEFAULT":
            default_value = True
        previous = word
        i += 1
    for constraint in result:  # trailing trivia belongs to the text between items
        while constraint.tokens and constraint.tokens[-1].trivia:
            constraint.tokens.pop()
    return result


def _parse_table(sql: str) -> _Table:
    tokens = _tokenize(sql)
    open_at = next(i for i, tok in enumerate(tokens) if tok.kind == "op" and tok.text == "(")
    close_at = _matching(tokens, open_at)
    items = _split(tokens[open_at + 1 : close_at])
    options = [part for part in (_text(p).strip() for p in _split(tokens[close_at + 1 :])) if part]
    table = _Table([], [], False, False)
    table.extra_options = [o for o in options if o.upper().split() not in (["WITHOUT", "ROWID"], ["STRICT"])]
    table.without_rowid = any(o.upper().split() == ["WITHOUT", "ROWID"] for o in options)
    table.strict = any(o.upper() == "STRICT" for o in options)
    leads: list[str] = []
    for n, item in enumerate(items):
        sig = [i for i, tok in enumerate(item) if not tok.trivia]
        head = _text(item[: sig[0]])
        # A comment on the line where the previous item ended belongs to that item.
        newline = head.find("\n")
        if n > 0 and newline > 0 and head[:newline].strip():
            _attach(table, head[:newline].rstrip())
            head = head[newline:]
        leads.append(head)
        if n > 0 and "\n" in head:
            table.indent = head[head.rfind("\n") :]
        elif n > 0:
            table.indent = head or " "
        core = item[sig[0] : sig[-1] + 1]
        trailing = _text(item[sig[-1] + 1 :])
        if n == len(items) - 1:
            cut = trailing.rfind("\n")
            table.closing = trailing[cut:] if cut >= 0 else ""
            trailing = trailing[:cut].rstrip() if cut >= 0 else trailing.rstrip()
        else:
            trailing = trailing.rstrip()
        comment = (" " + trailing.strip()) if trailing.strip() else ""
        if core[0].upper in _TABLE_CONSTRAINTS:
            (constraint,) = _parse_constraints(core, table_level=True)
            table.constraints.append(_TableConstraint(constraint, _text(core), comment, head))
            continue
        j = 1
        type_end = 1
        while j < len(core):
            tok = core[j]
            if tok.trivia:
                j += 1
                continue
            if tok.kind == "op" and tok.text == "(":
                j = type_end = _matching(core, j) + 1
                break
            if tok.kind in ("word", "qident", "string") and tok.upper not in _COLUMN_CONSTRAINTS:
                j = type_end = j + 1
                continue
            break
        type_sql = _text(core[1:type_end]).strip() or None
        table.columns.append(
            _Column(
                name=core[0].ident() or core[0].text,
                original=_text(core),
                name_sql=core[0].text,
                type_sql=type_sql,
                constraints=_parse_constraints(core[type_end:], table_level=False),
                comment=comment,
                lead=head,
            )
        )
    if len(items) == 1:
        table.indent = leads[0][leads[0].rfind("\n") :] if "\n" in leads[0] else " "
    return table


def _attach(table: _Table, comment: str) -> None:
    if table.constraints:
        table.constraints[-1].comment += comment
    elif table.columns:
        table.columns[-1].comment += comment


# --- reading the schema ----------------------------------------------------------


@dataclass(frozen=True)
class _Object:
    type: str
    name: str
    tbl_name: str
    sql: str


def _schema(conn: sqlite3.Connection) -> list[_Object]:
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
    ).fetchall()
    return [_Object(*row) for row in rows]


def _has_rowid_alias(conn: sqlite3.Connection, table: str, without_rowid: bool) -> str | None:
    """The INTEGER PRIMARY KEY column that is ``table``'s rowid, if it has one."""
    if without_rowid:
        return None
    pk = [row[1] for row in conn.execute(f"PRAGMA main.table_info({quote(table)})") if row[5]]
    if len(pk) != 1:
        return None
    # Any other single-column primary key has an index of its own (origin 'pk').
    if any(row[3] == "pk" for row in conn.execute(f"PRAGMA main.index_list({quote(table)})")):
        return None
    return str(pk[0])


def _table_kind(conn: sqlite3.Connection, table: str) -> str | None:
    """``table``, ``shadow`` or ``virtual`` (``PRAGMA table_list``); ``None`` before SQLite 3.37."""
    try:
        row = conn.execute("SELECT type FROM pragma_table_list WHERE schema = 'main' AND name = ?", (table,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else "table"


def _autoincrement(sql: str) -> bool:
    return any(tok.upper == "AUTOINCREMENT" for tok in _tokenize(sql))


_Problems = tuple[set[tuple[str, int | None, str]], dict[str, str]]


def _fk_problems(conn: sqlite3.Connection, tables: t.Iterable[str]) -> _Problems:
    """``PRAGMA foreign_key_check`` of each table: (violating rows, tables whose check fails and why)."""
    problems: set[tuple[str, int | None, str]] = set()
    failed: dict[str, str] = {}
    for name in tables:
        try:
            rows = conn.execute(f"PRAGMA main.foreign_key_check({quote(name)})").fetchall()
        except sqlite3.DatabaseError as e:  # "foreign key mismatch": the parent key is not unique
            failed[name] = str(e)
            continue
        problems.update((row[0], row[1], row[2]) for row in rows)
    return problems, failed


# --- the public function ---------------------------------------------------------


def transform(
    conn: sqlite3.Connection,
    table: str,
    *,
    types: t.Mapping[str, ColumnType] | None = None,
    rename: t.Mapping[str, str] | None = None,
    drop: t.Iterable[str] | None = None,
    pk: str | t.Sequence[str] | None = None,
    not_null: t.Iterable[str] | t.Mapping[str, bool] | None = None,
    defaults: t.Mapping[str, object] | None = None,
    drop_foreign_keys: t.Iterable[str | t.Sequence[str]] | None = None,
    add_foreign_keys: t.Iterable[ForeignKeySpec] | None = None,
    foreign_keys: t.Iterable[ForeignKeySpec] | None = None,
    column_order: t.Sequence[str] | None = None,
    add_checks: t.Iterable[str] | t.Mapping[str, str] | None = None,
    drop_checks: t.Iterable[str] | None = None,
    add_uniques: t.Iterable[str | t.Sequence[str]] | None = None,
    drop_uniques: t.Iterable[str | t.Sequence[str]] | None = None,
    collations: t.Mapping[str, str | None] | None = None,
    strict: bool | None = None,
    without_rowid: bool | None = None,
) -> None:
    """Rebuild ``table`` in a new layout; see :func:`selfmigrate.sqlite.transform`."""
    # The migration may have changed how rows come back; the helper reads plain tuples of str.
    factories = (conn.row_factory, conn.text_factory)
    conn.row_factory, conn.text_factory = None, str
    try:
        _Transform(conn, table).run(
            types=dict(types or {}),
            rename=dict(rename or {}),
            drop=list(drop or ()),
            pk=pk,
            not_null=not_null,
            defaults=dict(defaults or {}),
            drop_foreign_keys=list(drop_foreign_keys or ()),
            add_foreign_keys=list(add_foreign_keys or ()),
            foreign_keys=None if foreign_keys is None else list(foreign_keys),
            column_order=list(column_order or ()),
            add_checks=add_checks,
            drop_checks=list(drop_checks or ()),
            add_uniques=list(add_uniques or ()),
            drop_uniques=list(drop_uniques or ()),
            collations=dict(collations or {}),
            strict=strict,
            without_rowid=without_rowid,
        )
    finally:
        conn.row_factory, conn.text_factory = factories


class _Transform:
    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        self.conn = conn
        row = conn.execute(
            "SELECT name, sql FROM main.sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE", (table,)
        ).fetchone()
        if row is None:
            raise TransformError(f"Cannot transform table {table!r}: there is no such table in the database.")
        self.table: str = row[0]
        self.original_sql: str = row[1]
        self.where = f"table {self.table!r}"

    def fail(self, problem: str, fix: str, cause: BaseException | None = None) -> t.NoReturn:
        space = "" if problem.endswith("\n") else " "
        raise TransformError(f"Cannot transform {self.where}: {problem}{space}Nothing was changed. {fix}") from cause

    # -- checks made before anything changes ------------------------------------------

    def refuse_unsupported(self) -> None:
        if self.table.lower().startswith("sqlite_"):
            self.fail("it is one of SQLite's internal tables.", "SQLite manages these tables itself.")
        if self.original_sql.lstrip()[:20].upper().replace(" ", "").startswith("CREATEVIRTUAL"):
            self.fail("it is a virtual table (its module stores the rows).", "Recreate it with its module's own tools.")
        kind = _table_kind(self.conn, self.table)
        virtual = [
            name
            for (name,) in self.conn.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
            )
        ]
        # Before SQLite 3.37, a shadow table is known by its name: <virtual table>_<suffix>.
        owner = next((v for v in virtual if self.table.lower().startswith(v.lower() + "_")), None)
        if kind == "shadow" or (kind is None and owner is not None):
            self.fail(
                f"it is a shadow table of the virtual table {owner!r} (it holds that table's data).",
                "Change the virtual table instead.",
            )
        if self.conn.execute("PRAGMA foreign_keys").fetchone()[0]:
            self.fail(
                "PRAGMA foreign_keys is ON on this connection, so dropping the old table would run the ON DELETE"
                " actions of the tables that reference it (deleting or changing their rows) or fail; PRAGMA"
                " defer_foreign_keys defers only the checks, not those actions, and PRAGMA foreign_keys = OFF"
                " does nothing inside a transaction.",
                "selfmigrate's migration connection does not enforce foreign keys (SQLite's default): remove the"
                " 'PRAGMA foreign_keys = ON' from the migration that set it (set it where the app opens its"
                " connections). Outside selfmigrate, run 'PRAGMA foreign_keys = OFF' before BEGIN. A migration"
                " that runs outside a transaction may turn them off itself before calling transform; inside a"
                " transaction nothing can.",
            )

    # -- the procedure ---------------------------------------------------------------

    def run(self, **ops: t.Any) -> None:
        self.refuse_unsupported()
        conn = self.conn
        columns = [row[1] for row in conn.execute(f"PRAGMA main.table_xinfo({quote(self.table)})")]
        plan = _Plan(self, columns, ops)
        seq_row = (
            conn.execute("SELECT seq FROM main.sqlite_sequence WHERE name = ?", (self.table,)).fetchone()
            if (conn.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'sqlite_sequence'").fetchone())
            else None
        )
        referencing = self.referencing_tables()
        fk_before = _fk_problems(conn, [self.table, *referencing])
        old_alias = _has_rowid_alias(conn, self.table, _parse_table(self.original_sql).without_rowid)

        legacy = conn.execute("PRAGMA legacy_alter_table").fetchone()[0]
        conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            try:
                self.rename_columns(plan)
                table = _parse_table(self.current_sql())
                plan.apply(table)
                self.rebuild(table, plan, old_alias, seq_row)
                self.check_foreign_keys(fk_before, referencing)
            finally:
                conn.execute(f"PRAGMA legacy_alter_table = {int(legacy)}")
        except BaseException:
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
            raise
        conn.execute(f"RELEASE {_SAVEPOINT}")
        logger.info("Transformed table %s.", self.table)

    def current_sql(self) -> str:
        row = self.conn.execute(
            "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", (self.table,)
        ).fetchone()
        return str(row[0])

    def referencing_tables(self) -> list[str]:
        names = []
        for (name,) in self.conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'"):
            if _same(name, self.table):
                continue
            try:
                fks = self.conn.execute(f"PRAGMA main.foreign_key_list({quote(name)})").fetchall()
            except sqlite3.DatabaseError:  # a virtual table whose module is not loaded
                continue
            if any(_same(row[2], self.table) for row in fks):
                names.append(name)
        return names

    def rename_columns(self, plan: _Plan) -> None:
        """Steps before the 12: renames and placeholder names for dropped columns, by SQLite itself."""
        if not plan.rename and not plan.drop:
            return
        conn = self.conn
        conn.execute("PRAGMA legacy_alter_table = OFF")  # so that RENAME COLUMN rewrites every reference
        taken = " ".join(o.sql for o in _schema(conn))
        phase: list[tuple[str, str, str]] = []  # old, temporary, final
        for n, old in enumerate([*plan.drop, *plan.rename]):
            temporary = f"_selfmigrate_col_{n}"
            while temporary in taken:
                temporary += "_"
            final = plan.rename.get(old, temporary)
            phase.append((old, temporary, final))
        try:
            for old, temporary, _ in phase:
                conn.execute(f"ALTER TABLE main.{quote(self.table)} RENAME COLUMN {quote(old)} TO {quote(temporary)}")
            for _, temporary, final in phase:
                if final != temporary:
                    conn.execute(
                        f"ALTER TABLE main.{quote(self.table)} RENAME COLUMN {quote(temporary)} TO {quote(final)}"
                    )
        except sqlite3.DatabaseError as e:
            if " after rename:" in str(e):
                # SQLite's wording when the rewritten schema no longer holds: the object was sound before.
                self.fail(
                    f"SQLite could not rename its columns ({e}); the rename would break the view or trigger"
                    " it names: a view that selects the column by name gets the new name as its output column,"
                    " so a trigger on that view (new.<old name>) or a view that reads it by the old name no"
                    " longer finds it.",
                    "Keep the view's column name with an alias (CREATE VIEW ... AS SELECT <new> AS <old> ...),"
                    " or drop the trigger or view before transform and create it again after with the new name.",
                    e,
                )
            self.fail(
                f"SQLite could not rename its columns ({e}); renaming a column rewrites every view and trigger"
                " of the database, and fails if one of them is broken.",
                "Fix or drop the view or trigger it names, then call transform again.",
                e,
            )
        plan.placeholders = {temporary: old for old, temporary, final in phase if final == temporary}
        self.refuse_dropped_references(plan)

    def refuse_dropped_references(self, plan: _Plan) -> None:
        users: list[str] = []
        for obj in _schema(self.conn):
            if obj.type == "table" and _same(obj.name, self.table):
                continue
            used = [plan.placeholders[p] for p in plan.placeholders if _mentions(obj.sql, p)]
            if used:
                users.append(
                    f"{obj.type} {obj.name!r} uses {', '.join(map(repr, used))}: {plan.unplaceholder(obj.sql)}"
                )
        table = _parse_table(self.current_sql())
        for column in table.columns:
            if column.name in plan.placeholders:
                continue
            for c in column.constraints:
                used = [plan.placeholders[p] for p in plan.placeholders if any(_same(p, i) for i in c.idents())]
                if used and c.kind != "REFERENCES":
                    users.append(
                        f"column {column.name!r} ({plan.unplaceholder(c.sql)}) uses {', '.join(map(repr, used))}"
                    )
                elif used and any(_same(p, i) for p in plan.placeholders for i in c.references()[1]):
                    users.append(
                        f"column {column.name!r} ({plan.unplaceholder(c.sql)}) references {', '.join(map(repr, used))}"
                    )
        for tc in table.constraints:
            c = tc.constraint
            used = [plan.placeholders[p] for p in plan.placeholders if any(_same(p, i) for i in c.idents())]
            if not used:
                continue
            if c.kind == "CHECK":
                users.append(f"the table's {plan.unplaceholder(c.sql)} uses {', '.join(map(repr, used))}")
            elif c.kind == "PRIMARY" and plan.pk is None:
                users.append(
                    f"the table's {plan.unplaceholder(c.sql)} uses {', '.join(map(repr, used))}"
                    " (pass pk= for the new one)"
                )
            elif c.kind == "FOREIGN" and any(_same(p, i) for p in plan.placeholders for i in c.references()[1]):
                users.append(f"the table's {plan.unplaceholder(c.sql)} references {', '.join(map(repr, used))}")
            elif c.kind in ("UNIQUE", "FOREIGN") and not all(
                any(_same(p, i) for p in plan.placeholders) for i in c.columns()
            ):
                # It names columns that stay: dropping it with the column would lose what it
                # says of them (an index on the same columns is refused above, too).
                kept = [i for i in c.columns() if not any(_same(p, i) for p in plan.placeholders)]
                argument = "drop_uniques" if c.kind == "UNIQUE" else "drop_foreign_keys"
                columns = tuple(plan.placeholders.get(i, i) for i in c.columns())
                users.append(
                    f"the table's {plan.unplaceholder(c.sql)} uses {', '.join(map(repr, used))} and"
                    f" {', '.join(map(repr, kept))}, which stay: call transform({argument}=[{columns!r}])"
                    " first (with add_uniques= or add_foreign_keys= for what the rest should keep)"
                )
        for column in table.columns:
            if column.name in plan.placeholders and column.find("PRIMARY") and plan.pk is None:
                users.append(f"{plan.placeholders[column.name]!r} is the table's primary key; pass pk= for the new one")
        if users:
            names = ", ".join(map(repr, plan.placeholders.values()))
            self.fail(
                f"dropping {names} would break what uses it:\n  " + "\n  ".join(users) + "\n",
                "Drop or change those first (earlier in the migration), then call transform again.",
            )

    def rebuild(self, table: _Table, plan: _Plan, old_alias: str | None, seq_row: tuple[int] | None) -> None:
        """Steps 3 to 9 of SQLite's procedure."""
        conn = self.conn
        objects = _schema(conn)
        # Step 3: what belongs to the table or refers to it, in the order it was created.
        own = [o for o in objects if o.type in ("index", "trigger") and _same(o.tbl_name, self.table)]
        # A TEMP trigger on the table is dropped with it too. SQLite keeps its SQL without the TEMP.
        own += [
            _Object("trigger", name, tbl_name, re.sub(r"^\s*CREATE\s+", "CREATE TEMP ", sql, count=1, flags=re.I))
            for name, tbl_name, sql in conn.execute(
                "SELECT name, tbl_name, sql FROM temp.sqlite_master WHERE type = 'trigger' AND tbl_name = ?"
                " COLLATE NOCASE",
                (self.table,),
            )
        ]
        views = [o for o in objects if o.type == "view" and _mentions(o.sql, self.table)]
        view_names = {v.name.lower() for v in views}
        others = [
            o
            for o in objects
            if o.type == "trigger"
            and o not in own
            and (o.tbl_name.lower() in view_names or _mentions(o.sql, self.table))
        ]
        existing = {o.name.lower() for o in objects}
        new_name = f"_selfmigrate_new_{self.table}"
        while new_name.lower() in existing:
            new_name += "_"
        new_sql = table.sql(new_name)
        copied = [
            row[1]
            for row in conn.execute(f"PRAGMA main.table_xinfo({quote(self.table)})")
            if row[6] in (0, 1) and row[1] not in plan.placeholders
        ]
        try:
            # Step 4: the new table, under a temporary name.
            conn.execute(new_sql)
        except sqlite3.DatabaseError as e:
            self.fail(
                f"SQLite refused the new layout: {e}. The new table would have been:\n{new_sql}",
                "Change the arguments.",
                e,
            )
        new_alias = _has_rowid_alias(conn, new_name, table.without_rowid)
        targets = [quote(c) for c in copied]
        sources = [quote(c) for c in copied]
        old_names = [row[1] for row in conn.execute(f"PRAGMA main.table_xinfo({quote(self.table)})")]
        new_names = [row[1] for row in conn.execute(f"PRAGMA main.table_xinfo({quote(new_name)})")]
        rowid_names = ("rowid", "_rowid_", "oid")
        source = next((r for r in rowid_names if not any(_same(r, c) for c in old_names)), None)
        target = next((r for r in rowid_names if not any(_same(r, c) for c in new_names)), None)
        if new_alias is not None and old_alias is None:
            nulls = conn.execute(f"SELECT count(*) FROM main.{quote(self.table)} WHERE {quote(new_alias)} IS NULL")
            count = nulls.fetchone()[0]
            if count:
                self.fail(
                    f"column {new_alias!r} would become the table's INTEGER PRIMARY KEY (its rowid), and {count}"
                    " of its rows hold NULL there, which SQLite would replace by new numbers.",
                    "Give those rows values first (an UPDATE before the call).",
                )
        # The rowid is kept unless the new table has none or takes it from a column.
        if new_alias is None and not table.without_rowid and not plan.old_without_rowid and source and target:
            targets.insert(0, target)
            sources.insert(0, source)
        # Step 5: the rows. A row that breaks a new constraint fails here.
        try:
            conn.execute(
                f"INSERT INTO main.{quote(new_name)} ({', '.join(targets)})"
                f" SELECT {', '.join(sources)} FROM main.{quote(self.table)}"
            )
        except sqlite3.DatabaseError as e:
            message = str(e).replace(new_name, self.table)
            self.fail(
                f"copying its rows into the new layout failed: {message}.",
                "Fix the rows first (an UPDATE or DELETE before the call), or change what you ask for.",
                e,
            )
        # Steps 6 and 7: views and triggers that refer to the table go too and come back
        # afterwards, so that the rename neither rewrites nor checks them.
        for o in reversed(views + others):
            conn.execute(f"DROP {o.type.upper()} IF EXISTS main.{quote(o.name)}")
        conn.execute(f"DROP TABLE main.{quote(self.table)}")
        conn.execute("PRAGMA legacy_alter_table = ON")
        conn.execute(f"ALTER TABLE main.{quote(new_name)} RENAME TO {quote(self.table)}")
        if seq_row is not None and _autoincrement(new_sql):
            updated = conn.execute(
                "UPDATE main.sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq_row[0], self.table)
            )
            if updated.rowcount == 0:
                conn.execute("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?, ?)", (self.table, seq_row[0]))
        # Steps 8 and 9: indexes, triggers and views again, from their saved SQL.
        for o in [o for o in own if o.type == "index"] + views + [o for o in own if o.type == "trigger"] + others:
            try:
                conn.execute(o.sql)
            except sqlite3.DatabaseError as e:
                self.fail(
                    f"{o.type} {o.name!r} could not be recreated: {e}. Its SQL: {o.sql}", "Change the arguments.", e
                )

    def check_foreign_keys(self, before: _Problems, referencing: list[str]) -> None:
        """Step 10: every reference that held before still holds (what was broken before is not new)."""
        after, failed = _fk_problems(self.conn, [self.table, *referencing])
        failed = {name: why for name, why in failed.items() if name not in before[1]}
        if failed:
            self.fail(
                "its foreign keys, or those of the tables that reference it, no longer match a primary key or"
                f" UNIQUE constraint ({'; '.join(failed.values())}).",
                "Keep the referenced columns unique (a primary key or UNIQUE), or change the referencing tables.",
            )
        new = sorted(after - before[0], key=lambda p: (p[0], p[1] or 0, p[2]))
        if new:
            shown = ", ".join(f"{table} rowid {rowid} -> {parent}" for table, rowid, parent in new[:10])
            more = f" and {len(new) - 10} more" if len(new) > 10 else ""
            self.fail(
                f"{len(new)} row{'s' if len(new) > 1 else ''} would refer to missing rows"
                f" (table rowid -> parent): {shown}{more}.",
                "Fix or delete those rows first, or change the foreign keys you ask for.",
            )


# --- turning the arguments into edits -----------------------------------------------


class _Plan:
    """The arguments, checked against the table's columns before anything changes."""

    def __init__(self, job: _Transform, columns: list[str], ops: dict[str, t.Any]) -> None:
        self.job = job
        self.columns = columns
        self.placeholders: dict[str, str] = {}
        self.old_without_rowid = _parse_table(job.original_sql).without_rowid
        self.rename: dict[str, str] = {}
        for old, new in ops["rename"].items():
            name = self.existing(old, "rename")
            if not isinstance(new, str) or not new:
                job.fail(f"rename={{{old!r}: {new!r}}} does not give a new name.", "Give the new name as a string.")
            if not _same(name, new):
                self.rename[name] = new
        self.drop = [self.existing(name, "drop") for name in ops["drop"]]
        both = [name for name in self.drop if name in self.rename]
        if both:
            job.fail(f"column {both[0]!r} is both renamed and dropped.", "Do one or the other.")
        final = [self.rename.get(c, c) for c in columns if c not in self.drop]
        if not final:
            job.fail("it would have no columns left.", "Keep at least one column.")
        clash = [n for n in final if sum(_same(n, m) for m in final) > 1]
        if clash:
            job.fail(f"two columns would be named {clash[0]!r}.", "Rename or drop one of them.")
        self.final = final
        self.types = {self.new(c, "types"): _type_sql(job, ty, ops["strict"]) for c, ty in ops["types"].items()}
        pk = ops["pk"]
        self.pk: list[str] | None = (
            None if pk is None else [self.new(c, "pk") for c in ([pk] if isinstance(pk, str) else pk)]
        )
        not_null = ops["not_null"]
        if isinstance(not_null, t.Mapping):
            self.not_null = {self.new(c, "not_null"): bool(v) for c, v in not_null.items()}
        else:
            self.not_null = {self.new(c, "not_null"): True for c in (not_null or ())}
        self.defaults = {self.new(c, "defaults"): v for c, v in ops["defaults"].items()}
        self.collations = {self.new(c, "collations"): v for c, v in ops["collations"].items()}
        self.column_order = [self.new(c, "column_order") for c in ops["column_order"]]
        if ops["foreign_keys"] is not None and (ops["add_foreign_keys"] or ops["drop_foreign_keys"]):
            job.fail("foreign_keys= replaces them all; it cannot be given with add_ or drop_foreign_keys.", "Use one.")
        self.replace_foreign_keys = ops["foreign_keys"] is not None
        self.add_foreign_keys = [self.foreign_key(spec) for spec in (ops["foreign_keys"] or ops["add_foreign_keys"])]
        self.drop_foreign_keys = [self.columns_of(spec, "drop_foreign_keys") for spec in ops["drop_foreign_keys"]]
        checks = ops["add_checks"] or ()
        self.add_checks: list[tuple[str | None, str]] = (
            list(checks.items()) if isinstance(checks, t.Mapping) else [(None, c) for c in checks]
        )
        self.drop_checks = ops["drop_checks"]
        self.add_uniques = [self.columns_of(spec, "add_uniques") for spec in ops["add_uniques"]]
        self.drop_uniques = [self.columns_of(spec, "drop_uniques") for spec in ops["drop_uniques"]]
        self.strict = ops["strict"]
        self.without_rowid = ops["without_rowid"]

    def unplaceholder(self, sql: str) -> str:
        """``sql`` with the dropped columns' placeholder names replaced by their names."""
        for placeholder, name in self.placeholders.items():
            sql = sql.replace(quote(placeholder), quote(name)).replace(placeholder, quote(name))
        return sql

    def existing(self, name: str, argument: str) -> str:
        found = next((c for c in self.columns if _same(c, name)), None)
        if found is None:
            self.job.fail(
                f"{argument}= names column {name!r}, which it does not have (columns: {', '.join(self.columns)}).",
                "Check the column name.",
            )
        return found

    def new(self, name: str, argument: str) -> str:
        """A column named by its current name, or by its new name if it is renamed."""
        old = next((c for c in self.columns if _same(c, name) and c not in self.drop), None)
        if old is not None and old not in self.rename:
            return old
        if old is not None:
            return self.rename[old]
        found = next((c for c in self.final if _same(c, name)), None)
        if found is None:
            self.job.fail(
                f"{argument}= names column {name!r}, which it does not have or drops"
                f" (columns after the change: {', '.join(self.final)}).",
                "Check the column name.",
            )
        return found

    def columns_of(self, spec: str | t.Sequence[str], argument: str) -> list[str]:
        return [self.new(spec, argument)] if isinstance(spec, str) else [self.new(c, argument) for c in spec]

    def foreign_key(self, spec: ForeignKeySpec) -> tuple[list[str], str, list[str]]:
        conn = self.job.conn
        if not isinstance(spec, tuple | list) or len(spec) not in (2, 3):
            self.job.fail(
                f"foreign key {spec!r} is not (column, other_table) or (column, other_table, other_column).",
                "Give each foreign key as such a tuple.",
            )
        columns = self.columns_of(spec[0], "add_foreign_keys")
        other = conn.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE", (spec[1],)
        ).fetchone()
        if other is None:
            self.job.fail(
                f"foreign key {spec!r} references table {spec[1]!r}, which does not exist.", "Create it first."
            )
        other_table = str(other[0])
        if len(spec) == 3:
            other_columns = [spec[2]] if isinstance(spec[2], str) else list(spec[2])
        else:
            info = conn.execute(f"PRAGMA main.table_info({quote(other_table)})").fetchall()
            other_columns = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]
            if _same(other_table, self.job.table):
                other_columns = [self.rename.get(c, c) for c in other_columns]
            if not other_columns:
                self.job.fail(
                    f"foreign key {spec!r}: table {other_table!r} has no primary key to reference.",
                    "Name the referenced column: (column, other_table, other_column).",
                )
        if len(other_columns) != len(columns):
            self.job.fail(
                f"foreign key {spec!r} has {len(columns)} columns but references {len(other_columns)}.",
                "Give as many referenced columns as columns.",
            )
        return columns, other_table, other_columns

    # -- the edits, on the parsed CREATE TABLE (after the renames) ------------------

    def apply(self, table: _Table) -> None:
        job = self.job
        table.columns = [c for c in table.columns if c.name not in self.placeholders]
        placeholders = list(self.placeholders)

        def uses_dropped(c: _Constraint) -> bool:
            return any(_same(p, i) for p in placeholders for i in c.idents())

        table.constraints = [
            tc
            for tc in table.constraints
            if not (tc.kind in ("UNIQUE", "FOREIGN", "PRIMARY") and uses_dropped(tc.constraint))
        ]
        for name, type_sql in self.types.items():
            column = table.column(name)
            column.type_sql, column.original = type_sql, None
        if self.pk is not None and not self.same_pk(table):
            for column in table.columns:
                column.remove({"PRIMARY"})
            table.constraints = [tc for tc in table.constraints if tc.kind != "PRIMARY"]
            if len(self.pk) == 1:
                table.column(self.pk[0]).add("PRIMARY KEY", "PRIMARY")
            elif self.pk:
                table.constraints.insert(
                    0, _TableConstraint(_Constraint("PRIMARY", []), f"PRIMARY KEY ({', '.join(map(quote, self.pk))})")
                )
        for name, wanted in self.not_null.items():
            column = table.column(name)
            if wanted and not column.find("NOT"):
                column.add("NOT NULL", "NOT")
            elif not wanted:
                column.remove({"NOT"})
        for name, value in self.defaults.items():
            column = table.column(name)
            column.remove({"DEFAULT"})
            if value is not None:
                column.add(f"DEFAULT {self.default_sql(value)}", "DEFAULT")
        for name, collation in self.collations.items():
            column = table.column(name)
            column.remove({"COLLATE"})
            if collation is not None:
                column.add(f"COLLATE {quote(collation)}", "COLLATE")
        if self.replace_foreign_keys:
            for column in table.columns:
                column.remove({"REFERENCES"})
            table.constraints = [tc for tc in table.constraints if tc.kind != "FOREIGN"]
        for spec in self.drop_foreign_keys:
            found = False
            for column in table.columns:
                if len(spec) == 1 and _same(column.name, spec[0]) and column.remove({"REFERENCES"}):
                    found = True
            kept = []
            for tc in table.constraints:
                cols = tc.constraint.columns() if tc.kind == "FOREIGN" else []
                hit = tc.kind == "FOREIGN" and (
                    any(_same(spec[0], c) for c in cols)
                    if len(spec) == 1
                    else [c.lower() for c in cols] == [s.lower() for s in spec]
                )
                found = found or hit
                if not hit:
                    kept.append(tc)
            table.constraints = kept
            if not found:
                job.fail(f"drop_foreign_keys= names {spec!r}, which has no foreign key.", "Check the column name.")
        for columns, other_table, other_columns in self.add_foreign_keys:
            table.constraints.append(
                _TableConstraint(
                    _Constraint("FOREIGN", []),
                    f"FOREIGN KEY ({', '.join(map(quote, columns))}) REFERENCES {quote(other_table)}"
                    f" ({', '.join(map(quote, other_columns))})",
                )
            )
        for text in self.drop_checks:
            hits = [
                tc
                for tc in table.constraints
                if tc.kind == "CHECK"
                and (
                    tc.constraint.name
                    and _same(tc.constraint.name, text)
                    or _norm(tc.constraint.sql) == _norm(text)
                    or _norm(_check_expr(tc.constraint)) == _norm(text)
                )
            ]
            column_hits = [
                (column, c)
                for column in table.columns
                for c in column.find("CHECK")
                if c.name and _same(c.name, text) or _norm(c.sql) == _norm(text) or _norm(_check_expr(c)) == _norm(text)
            ]
            if not hits and not column_hits:
                checks = [tc.constraint.sql for tc in table.constraints if tc.kind == "CHECK"]
                checks += [c.sql for column in table.columns for c in column.find("CHECK")]
                job.fail(
                    f"drop_checks= names {text!r}, which matches none of its CHECKs ({'; '.join(checks) or 'none'}).",
                    "Give the constraint's name or its expression as written.",
                )
            table.constraints = [tc for tc in table.constraints if tc not in hits]
            for column, c in column_hits:
                column.constraints = [x for x in column.constraints if x is not c]
                column.original = None
        for check_name, expression in self.add_checks:
            prefix = f"CONSTRAINT {quote(check_name)} " if check_name else ""
            table.constraints.append(
                _TableConstraint(_Constraint("CHECK", [], check_name), f"{prefix}CHECK ({expression})")
            )
        for spec in self.drop_uniques:
            found = False
            if len(spec) == 1:
                found = table.column(spec[0]).remove({"UNIQUE"})
            kept = []
            for tc in table.constraints:
                hit = tc.kind == "UNIQUE" and [c.lower() for c in tc.constraint.columns()] == [s.lower() for s in spec]
                found = found or hit
                if not hit:
                    kept.append(tc)
            table.constraints = kept
            if not found:
                job.fail(
                    f"drop_uniques= names {spec!r}, which has no UNIQUE constraint of its own.",
                    "A unique index is dropped with DROP INDEX, not here.",
                )
        for spec in self.add_uniques:
            table.constraints.append(
                _TableConstraint(_Constraint("UNIQUE", []), f"UNIQUE ({', '.join(map(quote, spec))})")
            )
        if self.column_order:
            order = {name.lower(): i for i, name in enumerate(self.column_order)}
            table.columns.sort(key=lambda c: order.get(c.name.lower(), len(order)))
        if self.strict is not None:
            table.strict = self.strict
        if self.without_rowid is not None:
            self.check_without_rowid(table)
            table.without_rowid = self.without_rowid

    def same_pk(self, table: _Table) -> bool:
        current = [c.name for c in table.columns if c.find("PRIMARY")]
        for tc in table.constraints:
            if tc.kind == "PRIMARY":
                current = tc.constraint.columns()
        return [c.lower() for c in current] == [c.lower() for c in (self.pk or [])]

    def check_without_rowid(self, table: _Table) -> None:
        job = self.job
        has_pk = any(c.find("PRIMARY") for c in table.columns) or any(tc.kind == "PRIMARY" for tc in table.constraints)
        if self.without_rowid and not self.old_without_rowid:
            if not has_pk:
                job.fail("a WITHOUT ROWID table needs a PRIMARY KEY.", "Pass pk= as well.")
            if any(_autoincrement(c.sql()) for c in table.columns):
                job.fail("a WITHOUT ROWID table cannot have AUTOINCREMENT.", "Pass pk= with a new primary key.")
            alias = _has_rowid_alias(job.conn, job.table, False)
            if alias is not None and (self.pk is None or self.same_pk(table)):
                job.fail(
                    f"its INTEGER PRIMARY KEY {alias!r} is its rowid: SQLite numbers new rows for it; in a WITHOUT"
                    " ROWID table an insert without it would fail (NOT NULL).",
                    "Keep it a rowid table, or make every insert give the key and change its type first.",
                )
            uses = [
                name
                for (name,) in job.conn.execute(
                    "SELECT name FROM main.sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"
                )
                if _mentions(
                    job.conn.execute("SELECT sql FROM main.sqlite_master WHERE name = ?", (name,)).fetchone()[0],
                    job.table,
                )
            ]
            if uses:
                job.fail(
                    f"virtual table(s) {', '.join(map(repr, uses))} refer to it (an external-content full-text"
                    " index keeps its rowids), and a WITHOUT ROWID table has none.",
                    "Keep it a rowid table.",
                )
        if self.without_rowid is False and self.old_without_rowid:
            # A WITHOUT ROWID table's key columns are NOT NULL; keep them so.
            pk_columns = [c.name for c in table.columns if c.find("PRIMARY")]
            for tc in table.constraints:
                if tc.kind == "PRIMARY":
                    pk_columns = tc.constraint.columns()
            for name in pk_columns:
                column = table.column(name)
                if not column.find("NOT"):
                    column.add("NOT NULL", "NOT")

    def default_sql(self, value: object) -> str:
        """A default as sqlite-utils writes it: strings that look like SQL stay SQL."""
        if isinstance(value, str):
            if (value.startswith("'") and value.endswith("'")) or (value.startswith('"') and value.endswith('"')):
                return value
            if value.upper() in ("CURRENT_TIME", "CURRENT_DATE", "CURRENT_TIMESTAMP", "TRUE", "FALSE", "NULL"):
                return value
            if value.endswith(")"):
                return f"({value})"
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, str | int | float | bytes):
            self.job.fail(f"default {value!r} is not a string, number or bytes.", "Give the default as one of those.")
        return str(self.job.conn.execute("SELECT quote(?)", (value,)).fetchone()[0])


def _norm(sql: str) -> str:
    return " ".join(tok.text.upper() if tok.kind == "word" else tok.text for tok in _tokenize(sql) if not tok.trivia)


def _check_expr(c: _Constraint) -> str:
    sql = c.sql
    start = sql.find("(")
    return sql[start + 1 : sql.rfind(")")] if start >= 0 else sql


def _type_sql(job: _Transform, value: ColumnType, strict: bool | None) -> str:
    if isinstance(value, type):
        if value not in _PYTHON_TYPES:
            job.fail(
                f"type {value!r} has no SQLite type.",
                f"Use one of {', '.join(p.__name__ for p in _PYTHON_TYPES)} or an SQL type name.",
            )
        return _PYTHON_TYPES[value]
    tokens = [tok for tok in _tokenize(value) if not tok.trivia]
    if not tokens or not all(tok.kind in ("word", "number", "qident") or tok.text in "(),+-" for tok in tokens):
        job.fail(f"type {value!r} is not an SQL type name.", "Give a type such as 'TEXT', 'INTEGER' or 'VARCHAR(20)'.")
    return value.strip()
