"""transform against a peer: sqlite-utils' Table.transform on generated tables.

Each example builds one random table (columns, types, NOT NULL, defaults, a
primary key, an index, a partial index, a foreign key, a trigger, a view, a
child table, rows with NULLs, BLOBs and values of every storage class) twice,
in two database files, and applies one random set of sqlite-utils operations:
selfmigrate's ``transform`` to one, sqlite-utils' to the other. Where both
succeed, the column layout (``table_xinfo``), the indexes (``index_list``,
``index_xinfo``), the foreign keys (``foreign_key_list``) and every value with
its storage class must match, and selfmigrate must still have the triggers
sqlite-utils drops. Where one refuses, the reason must be one of the known
differences, each checked here (see docs/transform.rst, "Compared with
sqlite-utils"). ``pytest --hypothesis-show-statistics`` counts each outcome.
"""

from __future__ import annotations

import sqlite3
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlite_utils.db import TransformError as PeerTransformError

from selfmigrate.errors import TransformError
from selfmigrate.sqlite import transform

NAMES = ["a", "Bee", "c d", 'q"t', "order", "x1", "É"]
TYPES = ["TEXT", "INTEGER", "REAL", "BLOB"]  # the types sqlite-utils writes back as they were
PY_TYPES: list[type] = [int, float, str, bytes]

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, width=64),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.sampled_from(["", "12", "1.5", "0"]),
)

SETTINGS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Case:
    sql: list[str]
    columns: list[str]
    has_id: bool
    ops: dict[str, t.Any]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique_by=str.lower))
    types = [draw(st.sampled_from(TYPES)) for _ in names]
    has_id = draw(st.booleans())
    has_ref = draw(st.booleans())
    rows = draw(st.lists(st.tuples(*[values for _ in names]), max_size=6))
    defs = ["id INTEGER PRIMARY KEY"] if has_id else []
    for i, (name, type_) in enumerate(zip(names, types, strict=True)):
        d = f"{q(name)} {type_}"
        if rows and all(r[i] is not None for r in rows) and draw(st.booleans()):
            d += " NOT NULL"
        if draw(st.booleans()):
            d += " DEFAULT " + draw(st.sampled_from(["0", "'x'", "NULL", "1.5", "-3"]))
        defs.append(d)
    if has_ref:
        defs.append("r INTEGER REFERENCES ref (id)")
    columns = (["id"] if has_id else []) + names + (["r"] if has_ref else [])
    sql = [
        "CREATE TABLE ref (id INTEGER PRIMARY KEY)",
        "INSERT INTO ref (id) VALUES " + ", ".join(f"({i})" for i in range(5)),
        "CREATE TABLE log (what)",
        f"CREATE TABLE t ({', '.join(defs)})",
    ]
    for n, row in enumerate(rows):
        cols = [q(c) for c in names] + (["r"] if has_ref else [])
        params = ", ".join(_literal(v) for v in row) + (f", {n % 7}" if has_ref else "")
        sql.append(f"INSERT INTO t ({', '.join(cols)}) VALUES ({params})")
    if draw(st.booleans()):
        sql.append(f"CREATE INDEX t_plain ON t ({q(draw(st.sampled_from(names)))})")
    if draw(st.booleans()):
        col = q(draw(st.sampled_from(names)))
        sql.append(f"CREATE INDEX t_partial ON t ({col}) WHERE {col} IS NOT NULL")
    sql.append("CREATE TRIGGER t_insert AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.rowid); END")
    sql.append("CREATE VIEW t_all AS SELECT * FROM t")
    if has_id:
        sql.append("CREATE TABLE child (id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t (id))")
        sql.append("INSERT INTO child (t_id) SELECT id FROM t")

    ops: dict[str, t.Any] = {}
    chosen = draw(
        st.sets(
            st.sampled_from(
                ["types", "rename", "drop", "pk", "not_null", "defaults", "drop_fk", "add_fk", "column_order"]
            ),
            min_size=1,
            max_size=3,
        )
    )
    plain = names  # the generated columns (not id, not r)
    if "types" in chosen:
        ops["types"] = {c: draw(st.sampled_from(PY_TYPES)) for c in draw(st.sets(st.sampled_from(plain), min_size=1))}
    if "rename" in chosen:
        old = draw(st.sampled_from(plain))
        new = draw(st.sampled_from(["renamed", "Other name", "a2"]))
        ops["rename"] = {old: new}
    if "drop" in chosen and len(plain) > 1:
        ops["drop"] = [draw(st.sampled_from(plain))]
    if "pk" in chosen:
        ops["pk"] = draw(st.sampled_from(plain + (["id"] if has_id else [])))
    if "not_null" in chosen:
        ops["not_null"] = {draw(st.sampled_from(plain)): draw(st.booleans())}
    if "defaults" in chosen:
        ops["defaults"] = {draw(st.sampled_from(plain)): draw(st.sampled_from([0, "x", 2.5, None]))}
    if "drop_fk" in chosen and has_ref:
        ops["drop_foreign_keys"] = ["r"]
    if "add_fk" in chosen:
        ops["add_foreign_keys"] = [(draw(st.sampled_from(plain)), "ref", "id")]
    if "column_order" in chosen:
        ops["column_order"] = draw(st.permutations(columns))[: draw(st.integers(1, len(columns)))]
    # Every operation names columns by their current names, as sqlite-utils does
    # (except pk, which sqlite-utils takes as the new name: keep it off renamed columns).
    if "pk" in ops and ops["pk"] in ops.get("rename", {}):
        del ops["pk"]
    for key in ("types", "not_null", "defaults"):
        if key in ops and set(ops[key]) & set(ops.get("drop", [])):
            del ops[key]
    if "add_foreign_keys" in ops and ops["add_foreign_keys"][0][0] in ops.get("drop", []) + list(ops.get("rename", {})):
        del ops["add_foreign_keys"]
    if "pk" in ops and ops["pk"] in ops.get("drop", []):
        del ops["pk"]
    if "column_order" in ops:
        dropped = set(ops.get("drop", []))
        ops["column_order"] = [c for c in ops["column_order"] if c not in dropped]
    return Case(sql, columns, has_id, ops)


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    if isinstance(value, str) and "\x00" in value:  # SQL text cannot hold NUL; a cast of a blob can
        return f"CAST(X'{value.encode().hex()}' AS TEXT)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float):
        return repr(value) if value not in (float("inf"), float("-inf")) else ("1e999" if value > 0 else "-1e999")
    return str(value)


def build(path: Path, case: Case) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # test speed only: these files need not survive a power cut
    conn.execute("BEGIN")
    for statement in case.sql:
        conn.execute(statement)
    conn.execute("COMMIT")
    return conn


def layout(conn: sqlite3.Connection) -> dict[str, t.Any]:
    indexes = []
    for row in conn.execute("PRAGMA index_list(t)"):
        name, unique, origin, partial = row[1], row[2], row[3], row[4]
        cols = [tuple(r[1:]) for r in conn.execute(f"PRAGMA index_xinfo({q(name)})")]
        indexes.append((name if origin == "c" else origin, unique, origin, partial, cols))
    return {
        "columns": [tuple(r[1:]) for r in conn.execute("PRAGMA table_xinfo(t)")],
        "indexes": sorted(indexes, key=repr),
        "foreign_keys": sorted(tuple(r[2:]) for r in conn.execute("PRAGMA foreign_key_list(t)")),
        "child_fks": sorted(tuple(r[2:]) for r in conn.execute("PRAGMA foreign_key_list(child)")),
    }


def data(conn: sqlite3.Connection) -> list[tuple[t.Any, ...]]:
    names = [r[1] for r in conn.execute("PRAGMA table_info(t)")]
    select = ", ".join(f"{q(n)}, typeof({q(n)})" for n in names)
    return conn.execute(f"SELECT rowid, {select} FROM t ORDER BY rowid").fetchall()


def objects(conn: sqlite3.Connection, type_: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (type_,))}


def run_both(case: Case) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ours, peer = build(Path(folder) / "ours.sqlite", case), build(Path(folder) / "peer.sqlite", case)
        try:
            compare(case, ours, peer)
        finally:
            ours.close()
            peer.close()


def compare(case: Case, ours: sqlite3.Connection, peer: sqlite3.Connection) -> None:
    original = data(ours)
    ours.execute("BEGIN")
    ours_error: Exception | None = None
    try:
        transform(ours, "t", **case.ops)
    except TransformError as e:
        ours_error = e
    ours.execute("COMMIT")
    peer_error: Exception | None = None
    try:
        sqlite_utils.Database(peer)["t"].transform(**case.ops)
    except (PeerTransformError, sqlite3.DatabaseError, ValueError) as e:
        peer_error = e

    if ours_error is not None:
        assert data(ours) == original  # refused: nothing changed
    if ours_error is not None and peer_error is not None:
        event("both refused")
        return
    if ours_error is not None:
        reason = known_refusal(case, ours_error, peer)
        event(f"only selfmigrate refused: {reason}")
        return
    if peer_error is not None:
        if "partial or expression index" in str(peer_error):
            # sqlite-utils cannot rename a column of a partial index; SQLite's RENAME COLUMN can.
            event("only sqlite-utils refused: rename or drop beside a partial index")
            # ... or drops any column when it has one. selfmigrate keeps the index, renamed where needed.
            partial = ours.execute("SELECT sql FROM sqlite_master WHERE name = 't_partial'").fetchone()[0]
            written = next(x for x in case.sql if x.startswith("CREATE INDEX t_partial"))
            for old_name, new_name in case.ops.get("rename", {}).items():
                written = written.replace(q(old_name), q(new_name))  # ON t ("new") WHERE "new" IS NOT NULL
            assert partial == written
            return
        assert "NOT NULL constraint failed" in str(peer_error), peer_error
        if _not_null_false(case, peer):
            # not_null={col: False} on a column that allows NULL: sqlite-utils makes it NOT NULL.
            event("only sqlite-utils refused: not_null={col: False} made NOT NULL")
            return
        # A TEXT column that becomes numeric: sqlite-utils turns '' into NULL, which NOT NULL refuses.
        column = str(peer_error).rsplit(".", 1)[1]
        assert case.ops["types"].get(column) in (int, float), peer_error
        assert ours.execute(f"SELECT count(*) FROM t WHERE {q(column)} = ''").fetchone()[0] > 0
        event("only sqlite-utils refused: its '' to NULL broke NOT NULL")
        return

    event("both succeeded")
    assert layout(ours) == peer_fixed(case, layout(ours), layout(peer))
    ours_rows, peer_rows = data(ours), data(peer)
    if ours_rows != peer_rows:
        # sqlite-utils turns '' into NULL when a TEXT column becomes numeric; selfmigrate keeps ''.
        event("difference: sqlite-utils turned '' into NULL")
        assert [_nullif_empty(r) for r in ours_rows] == [_nullif_empty(r) for r in peer_rows]
    # The triggers: selfmigrate keeps the table's own, sqlite-utils drops them (PR 854).
    assert objects(ours, "trigger") == {"t_insert"}
    assert objects(peer, "trigger") == set()
    assert objects(ours, "view") == objects(peer, "view") == {"t_all"}
    trigger = ours.execute("SELECT sql FROM sqlite_master WHERE name = 't_insert'").fetchone()[0]
    assert trigger in case.sql  # exactly as it was written


def _not_null_false(case: Case, peer: sqlite3.Connection) -> bool:
    was_nullable = {r[1] for r in peer.execute("PRAGMA table_info(t)") if not r[3]}
    return any(v is False and c in was_nullable for c, v in case.ops.get("not_null", {}).items())


def peer_fixed(case: Case, ours: dict[str, t.Any], peer: dict[str, t.Any]) -> dict[str, t.Any]:
    """sqlite-utils' layout with its known mistakes undone, each one checked and counted."""
    columns = []
    for mine, theirs in zip(ours["columns"], peer["columns"], strict=True):
        theirs = list(theirs)
        if mine[3] is not None and theirs[3] == f"'{mine[3]}'" and not mine[3].startswith("'"):
            event("difference: sqlite-utils quoted a numeric default")  # DEFAULT 0 became DEFAULT '0'
            theirs[3] = mine[3]
        wanted = case.ops.get("not_null", {})
        renamed = {v: k for k, v in case.ops.get("rename", {}).items()}
        if wanted.get(renamed.get(mine[0], mine[0])) is False and theirs[2] == 1 and mine[2] == 0:
            event("difference: sqlite-utils made a not_null=False column NOT NULL")
            theirs[2] = 0
        columns.append(tuple(theirs))
    return {**peer, "columns": columns}


def _nullif_empty(row: tuple[t.Any, ...]) -> tuple[t.Any, ...]:
    out = list(row)
    for i in range(1, len(out), 2):
        if out[i] == "" and out[i + 1] == "text":
            out[i], out[i + 1] = None, "null"
    return tuple(out)


def known_refusal(case: Case, error: Exception, peer: sqlite3.Connection) -> str:
    """Why selfmigrate refused what sqlite-utils did; fails the test if the reason is not known."""
    message = str(error)
    if "would refer to missing rows" in message or "foreign key mismatch" in message:
        # sqlite-utils does not check foreign keys when they are not enforced: its result breaks them.
        try:
            problems = peer.execute("PRAGMA foreign_key_check").fetchall()
        except sqlite3.OperationalError as e:
            assert "foreign key mismatch" in str(e) and "foreign key mismatch" in message
            return "a child's foreign key no longer matches the primary key (sqlite-utils leaves it so)"
        assert problems, message
        return "the result breaks a foreign key (sqlite-utils leaves it broken)"
    if "hold NULL" in message:
        # A new INTEGER PRIMARY KEY over NULLs: sqlite-utils lets SQLite number those rows.
        assert isinstance(case.ops.get("pk"), str)
        return "new INTEGER PRIMARY KEY over NULLs (sqlite-utils renumbers them)"
    if "both renamed and dropped" in message:
        # sqlite-utils silently drops it; selfmigrate asks which was meant.
        assert set(case.ops["rename"]) & set(case.ops["drop"])
        return "a column both renamed and dropped (sqlite-utils drops it)"
    raise AssertionError(f"selfmigrate refused, sqlite-utils did not: {message}")


@SETTINGS
@given(cases())
def test_transform_matches_sqlite_utils_and_keeps_triggers(case: Case) -> None:
    run_both(case)


# --- where sqlite-utils is not a reference: declared types it rewrites ---------------

ODD_TYPES = ["", "NUMERIC", "DECIMAL(5,2)", "VARCHAR(3)", "DATE", "BOOLEAN", "ANYTHING", "INT", "DOUBLE"]


@SETTINGS
@given(
    st.lists(st.sampled_from(ODD_TYPES), min_size=1, max_size=4),
    st.lists(st.lists(values, min_size=4, max_size=4), max_size=6),
    st.sampled_from(["identity", "column_order", "add_checks", "not_null_off"]),
)
def test_every_value_and_declared_type_survives_a_rebuild(
    types: list[str], rows: list[list[object]], operation: str
) -> None:
    names = [f"c{i}" for i in range(len(types))]
    with tempfile.TemporaryDirectory() as folder:
        conn = sqlite3.connect(Path(folder) / "odd.sqlite", isolation_level=None)
        conn.execute("PRAGMA synchronous = OFF")
        try:
            conn.execute(f"CREATE TABLE t ({', '.join(f'{n} {ty}' for n, ty in zip(names, types, strict=True))})")
            for row in rows:
                conn.execute(f"INSERT INTO t VALUES ({', '.join(_literal(v) for v in row[: len(names)])})")
            before_rows, before_cols = data(conn), layout(conn)["columns"]
            ops: dict[str, t.Any] = {
                "identity": {},
                "column_order": {"column_order": list(reversed(names))},
                "add_checks": {"add_checks": ["1"]},
                "not_null_off": {"not_null": {names[0]: False}},
            }[operation]
            conn.execute("BEGIN")
            transform(conn, "t", **ops)
            conn.execute("COMMIT")
            after = data(conn)
            if operation == "column_order":
                after = [_reorder(r, len(names)) for r in after]
                assert [c[1] for c in layout(conn)["columns"]] == [c[1] for c in reversed(before_cols)]
            else:
                assert layout(conn)["columns"] == before_cols
            assert after == before_rows
        finally:
            conn.close()


def _reorder(row: tuple[t.Any, ...], n: int) -> tuple[t.Any, ...]:
    pairs = [row[1 + 2 * i : 3 + 2 * i] for i in range(n)]
    return (row[0], *[x for pair in reversed(pairs) for x in pair])


def test_sqlite_utils_rewrites_declared_types_and_changes_values_where_selfmigrate_does_not(tmp_path: Path) -> None:
    """The difference the property above guards, shown once with the peer."""
    for name in ("ours", "peer"):
        conn = sqlite3.connect(tmp_path / f"{name}.sqlite")
        conn.execute("CREATE TABLE t (n NUMERIC, u, d DATE)")
        conn.execute("INSERT INTO t VALUES (5, 7, 20240101)")
        conn.commit()
        conn.close()
    ours = sqlite3.connect(tmp_path / "ours.sqlite", isolation_level=None)
    transform(ours, "t")
    peer = sqlite_utils.Database(tmp_path / "peer.sqlite")
    peer["t"].transform()
    query = "SELECT typeof(n), typeof(u), typeof(d) FROM t"
    assert ours.execute(query).fetchone() == ("integer", "integer", "integer")
    assert peer.execute(query).fetchone() == ("real", "text", "real")
    ours.close()
    peer.close()


@pytest.mark.parametrize("with_index", [False, True])
def test_sqlite_utils_loses_the_tables_triggers_and_selfmigrate_keeps_them(tmp_path: Path, with_index: bool) -> None:
    setup = (
        "CREATE TABLE t (a TEXT); CREATE TABLE log (x);"
        " CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES (1); END;"
    )
    if with_index:
        setup += "CREATE INDEX t_a ON t (a);"
    for name in ("ours", "peer"):
        conn = sqlite3.connect(tmp_path / f"{name}.sqlite")
        conn.executescript(setup)
        conn.close()
    ours = sqlite3.connect(tmp_path / "ours.sqlite", isolation_level=None)
    transform(ours, "t", types={"a": int})
    peer = sqlite_utils.Database(tmp_path / "peer.sqlite")
    peer["t"].transform(types={"a": int})
    assert [r[0] for r in ours.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")] == ["t_ins"]
    assert peer.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == []
    ours.close()
    peer.close()


# --- renames and drops against everything that names a column (no peer: sqlite-utils drops triggers) ---

USES = {
    "view": "CREATE VIEW {name} AS SELECT {col} FROM t",
    "own_trigger": "CREATE TRIGGER {name} AFTER UPDATE OF {col} ON t BEGIN INSERT INTO log VALUES (new.{col}); END",
    "other_trigger": "CREATE TRIGGER {name} AFTER INSERT ON log BEGIN UPDATE t SET {col} = {col}; END",
    "index": "CREATE INDEX {name} ON t ({col})",
    "partial": "CREATE INDEX {name} ON t ({col}) WHERE {col} IS NOT NULL",
    "expression": "CREATE INDEX {name} ON t (lower({col}))",
}


@SETTINGS
@given(st.data())
def test_renames_rewrite_and_drops_name_every_object_that_uses_the_column(data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique_by=str.lower))
    uses = data.draw(st.lists(st.tuples(st.sampled_from(sorted(USES)), st.sampled_from(names)), max_size=4))
    checked = data.draw(st.none() | st.sampled_from(names))
    rows = data.draw(st.lists(st.tuples(*[values for _ in names]), max_size=4))
    target = data.draw(st.sampled_from(names))
    dropping = data.draw(st.booleans())
    new_name = data.draw(st.sampled_from(["renamed", "Other name", 'w"x']))
    checks = [f"CHECK ({q(checked)} IS NOT NULL OR 1)"] if checked else []
    statements = [
        "CREATE TABLE log (what)",
        f"CREATE TABLE t ({', '.join([*(q(n) for n in names), *checks])})",
        *(f"INSERT INTO t VALUES ({', '.join(_literal(v) for v in row)})" for row in rows),
        *(USES[kind].format(name=f"o{i}", col=q(col)) for i, (kind, col) in enumerate(uses)),
    ]
    with tempfile.TemporaryDirectory() as folder:
        conn = build(Path(folder) / "t.sqlite", Case(statements, names, False, {}))
        try:
            before_rows = data_of(conn, [n for n in names if n != target])
            before_all = data_of(conn, names)
            before = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'o%'")}
            users = sorted({f"o{i}" for i, (_, col) in enumerate(uses) if col == target})
            conn.execute("BEGIN")
            if dropping:
                if users or checked == target:
                    with pytest.raises(TransformError) as excinfo:
                        transform(conn, "t", drop=[target])
                    for user in users:
                        assert f"'{user}'" in str(excinfo.value)
                    event("drop refused, naming every user")
                    conn.execute("COMMIT")
                    assert data_of(conn, names) == before_all
                    return
                transform(conn, "t", drop=[target])
                event("drop done")
                expected = before
            else:
                transform(conn, "t", rename={target: new_name})
                event("rename done")
                expected = {k: v.replace(q(target), q(new_name)) for k, v in before.items()}
            conn.execute("COMMIT")
            after = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'o%'")}
            assert after == expected
            if dropping:
                assert data_of(conn, [n for n in names if n != target]) == before_rows
            else:
                assert data_of(conn, [new_name if n == target else n for n in names]) == before_all
            for view in [n for n, sql in after.items() if sql.startswith("CREATE VIEW")]:
                conn.execute(f"SELECT * FROM {view}").fetchall()  # still compiles
        finally:
            conn.close()


def data_of(conn: sqlite3.Connection, names: list[str]) -> list[tuple[t.Any, ...]]:
    select = ", ".join(f"{q(n)}, typeof({q(n)})" for n in names)
    return conn.execute(f"SELECT rowid, {select} FROM t ORDER BY rowid").fetchall()
