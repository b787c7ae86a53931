"""selfmigrate.sqlite.transform: the table rebuild that loses nothing.

Every test works on a real database file. Each refusal also proves that the
database is as it was (a dump compare), not only that an error was raised.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from helpers import dump

import selfmigrate
from selfmigrate.errors import TransformError
from selfmigrate.sqlite import transform

LIBRARY = """
CREATE TABLE author (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL, -- shown on the site
    email VARCHAR(200) COLLATE NOCASE CHECK (email LIKE '%@%'),
    born NUMERIC,
    photo BLOB
);
CREATE TABLE book (
    id INTEGER PRIMARY KEY,
    author_id INTEGER REFERENCES author (id) ON DELETE CASCADE,
    title TEXT NOT NULL
);
CREATE TABLE log (what TEXT);
CREATE INDEX author_name ON author (name);
CREATE INDEX author_email_partial ON author (email) WHERE email IS NOT NULL;
CREATE INDEX author_lower_name ON author (lower(name));
CREATE TRIGGER author_renamed AFTER UPDATE OF name ON author
BEGIN INSERT INTO log VALUES ('renamed ' || new.name); END;
CREATE VIEW author_books AS SELECT a.name, b.title FROM author a JOIN book b ON b.author_id = a.id;
CREATE TRIGGER author_books_insert INSTEAD OF INSERT ON author_books
BEGIN INSERT INTO log VALUES ('view insert ' || new.title); END;
CREATE TRIGGER book_added AFTER INSERT ON book
BEGIN UPDATE author SET born = born WHERE id = new.author_id; INSERT INTO log VALUES ('book'); END;
INSERT INTO author (name, email, born, photo) VALUES
    ('Umberto Eco', 'eco@example.org', 1932, X'00FF00'),
    ('Anonymous', NULL, NULL, NULL),
    ('Homer', 'homer@example.org', '-800?', X''),
    ('Deleted', 'gone@example.org', 2000, NULL);
DELETE FROM author WHERE name = 'Deleted';
INSERT INTO book (author_id, title) VALUES (1, 'The Name of the Rose'), (1, 'Baudolino'), (3, 'Odyssey');
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    path = tmp_path / "library.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(LIBRARY)
    conn.close()
    return path


@pytest.fixture
def conn(library: Path) -> t.Iterator[sqlite3.Connection]:
    """A connection like selfmigrate's: autocommit mode, a transaction open."""
    c = sqlite3.connect(library, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    yield c
    if c.in_transaction:
        c.execute("COMMIT")
    c.close()


def schema(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """name -> (type, sql) of every schema object."""
    rows = conn.execute("SELECT name, type, sql FROM sqlite_master WHERE sql IS NOT NULL")
    return {name: (type_, sql) for name, type_, sql in rows}


def rows(conn: sqlite3.Connection, table: str, columns: str = "*") -> list[tuple[t.Any, ...]]:
    query = f"SELECT rowid, {columns} FROM {table} ORDER BY rowid"
    return conn.execute(query).fetchall()


def typed_rows(conn: sqlite3.Connection, table: str) -> list[tuple[t.Any, ...]]:
    names = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    select = ", ".join(f'"{n}", typeof("{n}")' for n in names)
    return conn.execute(f"SELECT rowid, {select} FROM {table} ORDER BY rowid").fetchall()


def columns(conn: sqlite3.Connection, table: str) -> list[tuple[t.Any, ...]]:
    return [tuple(r[1:]) for r in conn.execute(f"PRAGMA table_xinfo({table})")]


def refused(library: Path, conn: sqlite3.Connection, match: str, **kwargs: t.Any) -> TransformError:
    """Call transform, expect a TransformError matching ``match``, and prove nothing changed."""
    conn.execute("COMMIT")
    before = dump(library)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(TransformError, match=match) as excinfo:
        transform(conn, **kwargs)
    assert conn.in_transaction  # the caller's transaction is still open, and untouched
    conn.execute("COMMIT")
    assert dump(library) == before
    conn.execute("BEGIN IMMEDIATE")
    return excinfo.value


# --- what is kept ------------------------------------------------------------------


def test_an_identity_transform_keeps_schema_rows_and_sequence(conn: sqlite3.Connection) -> None:
    before_schema, before_rows = schema(conn), typed_rows(conn, "author")
    before_seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'author'").fetchone()

    transform(conn, "author")

    after = schema(conn)
    assert after.keys() == before_schema.keys()
    for name, (type_, sql) in before_schema.items():
        if name == "author":  # SQLite quotes the name it renamed; the columns are byte for byte the same
            assert sql.replace("CREATE TABLE author (", 'CREATE TABLE "author" (') == after[name][1]
        else:
            assert after[name] == (type_, sql)
    assert typed_rows(conn, "author") == before_rows
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'author'").fetchone() == before_seq == (4,)


def test_a_rebuild_keeps_triggers_views_and_indexes_working(conn: sqlite3.Connection) -> None:
    transform(conn, "author", types={"born": "INTEGER"})
    conn.execute("DELETE FROM log")

    conn.execute("UPDATE author SET name = 'U. Eco' WHERE id = 1")  # the table's own trigger
    conn.execute("INSERT INTO author_books (name, title) VALUES ('x', 'Foucault')")  # the view's trigger
    conn.execute("INSERT INTO book (author_id, title) VALUES (3, 'Iliad')")  # another table's trigger
    assert [r[0] for r in conn.execute("SELECT what FROM log")] == ["renamed U. Eco", "view insert Foucault", "book"]
    assert conn.execute("SELECT count(*) FROM author_books").fetchone() == (4,)
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM author WHERE lower(name) = 'x'"))
    assert "author_lower_name" in plan


def test_the_autoincrement_sequence_survives_even_above_the_highest_row(conn: sqlite3.Connection) -> None:
    transform(conn, "author", drop=["photo"])
    conn.execute("INSERT INTO author (name) VALUES ('next')")
    assert conn.execute("SELECT id FROM author WHERE name = 'next'").fetchone() == (5,)  # not 4: row 4 was deleted


def test_rowids_of_a_table_without_integer_primary_key_are_kept(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE tag (label TEXT)")
    conn.executemany("INSERT INTO tag (rowid, label) VALUES (?, ?)", [(7, "a"), (42, "b"), (1000, None)])
    transform(conn, "tag", types={"label": "VARCHAR(10)"}, not_null={"label": False})
    assert rows(conn, "tag") == [(7, "a"), (42, "b"), (1000, None)]


def test_every_value_is_kept_bit_for_bit(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE odd (a, b NUMERIC, c DATE, d VARCHAR(3), e REAL, f BLOB)")
    values = [
        (None, None, None, None, None, None),
        (1, 1, 1, 1, 1, 1),
        (2**63 - 1, -(2**63), 1.5, "toolong", 3.0, b"\x00\x01"),
        ("12", "12", "2024-01-01", "12", "1e3", "text"),
        (b"\xff", b"\x00", 0.1, b"", -0.0, 1e308),
        ("", "x\x00y", "NaN?", "é", float("inf"), 7),
    ]
    conn.executemany("INSERT INTO odd VALUES (?, ?, ?, ?, ?, ?)", values)
    before = typed_rows(conn, "odd")
    transform(conn, "odd", column_order=["f", "a"], add_checks=["length(d) < 100"])
    after = typed_rows(conn, "odd")
    names = [r[1] for r in conn.execute("PRAGMA table_info(odd)")]
    assert names == ["f", "a", "b", "c", "d", "e"]
    by_name = [dict(zip(["rowid"] + names, (r[0], *r[1::2]), strict=True)) for r in after]
    types_by_name = [dict(zip(names, r[2::2], strict=True)) for r in after]
    original = ["a", "b", "c", "d", "e", "f"]
    assert [(r[0], *(d[n] for n in original)) for r, d in zip(after, by_name, strict=True)] == [
        (r[0], *r[1::2]) for r in before
    ]
    assert [tuple(d[n] for n in original) for d in types_by_name] == [r[2::2] for r in before]


def test_a_new_type_applies_its_affinity_to_the_copied_values(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE m (v TEXT)")
    conn.executemany("INSERT INTO m VALUES (?)", [("12",), ("1.5",), ("12abc",), (b"12",), (None,), ("",)])
    transform(conn, "m", types={"v": int})
    assert conn.execute("SELECT v, typeof(v) FROM m ORDER BY rowid").fetchall() == [
        (12, "integer"),
        (1.5, "real"),
        ("12abc", "text"),
        (b"12", "blob"),
        (None, "null"),
        ("", "text"),  # sqlite-utils turns '' into NULL here; selfmigrate keeps it
    ]
    transform(conn, "m", types={"v": "TEXT"})
    assert conn.execute("SELECT v, typeof(v) FROM m ORDER BY rowid").fetchall()[:2] == [("12", "text"), ("1.5", "text")]


# --- each operation ---------------------------------------------------------------


def test_rename_rewrites_indexes_triggers_views_and_foreign_keys(conn: sqlite3.Connection) -> None:
    transform(conn, "author", rename={"name": "full_name", "id": "author_id"})
    s = schema(conn)
    assert '"full_name"' in s["author_name"][1] and 'lower("full_name")' in s["author_lower_name"][1]
    assert 'new."full_name"' in s["author_renamed"][1] and 'a."full_name"' in s["author_books"][1]
    assert 'REFERENCES author ("author_id")' in s["book"][1]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert rows(conn, "author", "author_id, full_name")[0] == (1, 1, "Umberto Eco")


def test_renames_may_swap_names(conn: sqlite3.Connection) -> None:
    before = rows(conn, "author", "name, email")
    transform(conn, "author", rename={"name": "email", "email": "name"})
    assert rows(conn, "author", "email, name") == before


def test_drop_removes_the_column_and_its_own_constraints(conn: sqlite3.Connection) -> None:
    conn.execute("DROP INDEX author_email_partial")  # what uses a column goes first
    transform(conn, "author", drop=["photo", "email"])  # email's CHECK and COLLATE go with it
    assert [c[0] for c in columns(conn, "author")] == ["id", "name", "born"]
    assert rows(conn, "author", "name")[2] == (3, "Homer")


def test_dropping_a_column_something_uses_is_refused_naming_every_user(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("CREATE VIEW emails AS SELECT email FROM author")
    conn.execute("CREATE TRIGGER t AFTER INSERT ON log BEGIN UPDATE author SET email = NULL; END")
    error = refused(library, conn, "dropping 'email'", table="author", drop=["email"])
    for user in ("index 'author_email_partial'", "view 'emails'", "trigger 't'"):
        assert user in str(error)
    refused(library, conn, "author_lower_name", table="author", drop=["name"])
    refused(library, conn, "trigger 'book_added'", table="author", drop=["born"])
    error = refused(library, conn, "table 'book'", table="author", drop=["id"], pk=())
    assert "REFERENCES author" in str(error)


def test_pk_changes_the_primary_key_and_keeps_rowids(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE isbn (code TEXT, edition INTEGER, note TEXT)")
    conn.executemany("INSERT INTO isbn (rowid, code, edition) VALUES (?, ?, ?)", [(5, "a", 1), (9, "a", 2)])
    transform(conn, "isbn", pk=["code", "edition"])
    assert [c[4] for c in columns(conn, "isbn")] == [1, 2, 0]
    assert rows(conn, "isbn", "code") == [(5, "a"), (9, "a")]
    transform(conn, "isbn", pk=())
    assert [c[4] for c in columns(conn, "isbn")] == [0, 0, 0]
    assert rows(conn, "isbn", "code") == [(5, "a"), (9, "a")]


def test_a_new_integer_primary_key_over_nulls_is_refused(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE n (k INTEGER, v TEXT)")
    conn.executemany("INSERT INTO n VALUES (?, ?)", [(1, "a"), (None, "b")])
    refused(library, conn, "hold NULL", table="n", pk="k")


def test_not_null_adds_and_removes(conn: sqlite3.Connection) -> None:
    transform(conn, "book", not_null={"author_id"})
    assert columns(conn, "book")[1][2] == 1
    transform(conn, "book", not_null={"author_id": False, "title": False})
    assert [c[2] for c in columns(conn, "book")] == [0, 0, 0]
    assert "NULL" not in schema(conn)["book"][1]


def test_not_null_over_nulls_fails_with_the_column_and_leaves_the_transaction_usable(
    library: Path, conn: sqlite3.Connection
) -> None:
    conn.execute("DELETE FROM log")
    conn.execute("INSERT INTO log VALUES ('before the call')")  # the caller's own work in the transaction
    with pytest.raises(TransformError, match=r"NOT NULL constraint failed: author\.email") as excinfo:
        transform(conn, "author", not_null={"email"})
    assert isinstance(excinfo.value.__cause__, sqlite3.IntegrityError)
    assert conn.in_transaction
    assert conn.execute("SELECT what FROM log").fetchall() == [("before the call",)]
    assert [c[2] for c in columns(conn, "author")][2] == 0


def test_defaults_set_replace_and_remove(conn: sqlite3.Connection) -> None:
    transform(conn, "book", defaults={"title": "Untitled", "author_id": -1})
    assert [c[3] for c in columns(conn, "book")] == [None, "-1", "'Untitled'"]
    transform(conn, "book", defaults={"title": "CURRENT_TIMESTAMP", "author_id": None})
    assert [c[3] for c in columns(conn, "book")] == [None, None, "CURRENT_TIMESTAMP"]


def test_foreign_keys_add_drop_and_replace(library: Path, conn: sqlite3.Connection) -> None:
    transform(conn, "book", drop_foreign_keys=["author_id"])
    assert conn.execute("PRAGMA foreign_key_list(book)").fetchall() == []
    transform(conn, "book", add_foreign_keys=[("author_id", "author")])
    assert [r[2:5] for r in conn.execute("PRAGMA foreign_key_list(book)")] == [("author", "author_id", "id")]
    transform(conn, "book", foreign_keys=[("author_id", "author", "id")])
    assert len(conn.execute("PRAGMA foreign_key_list(book)").fetchall()) == 1


def test_a_foreign_key_that_rows_break_is_refused_naming_the_rows(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE review (id INTEGER PRIMARY KEY, book_id INTEGER)")
    conn.executemany("INSERT INTO review VALUES (?, ?)", [(1, 1), (2, 99), (3, 98)])
    error = refused(
        library, conn, "2 rows would refer to missing rows", table="review", add_foreign_keys=[("book_id", "book")]
    )
    assert "review rowid 2 -> book" in str(error) and "review rowid 3 -> book" in str(error)


def test_breaking_the_key_children_reference_is_refused(library: Path, conn: sqlite3.Connection) -> None:
    refused(library, conn, "foreign key mismatch", table="author", pk="name")


def test_checks_add_and_drop(conn: sqlite3.Connection) -> None:
    transform(conn, "book", add_checks={"title_length": "length(title) > 0"})
    with pytest.raises(sqlite3.IntegrityError, match="title_length"):
        conn.execute("INSERT INTO book (title) VALUES ('')")
    transform(conn, "book", drop_checks=["title_length"])
    transform(conn, "author", drop_checks=["email LIKE '%@%'"])
    assert "CHECK" not in schema(conn)["author"][1]


def test_uniques_add_and_drop(library: Path, conn: sqlite3.Connection) -> None:
    transform(conn, "book", add_uniques=[("author_id", "title")])
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO book (author_id, title) VALUES (1, 'Baudolino')")
    transform(conn, "book", drop_uniques=[("author_id", "title")])
    conn.execute("INSERT INTO book (author_id, title) VALUES (1, 'Baudolino')")
    refused(library, conn, "UNIQUE constraint failed: book.author_id", table="book", add_uniques=["author_id"])


def test_collations_set_and_remove(conn: sqlite3.Connection) -> None:
    transform(conn, "book", collations={"title": "NOCASE"})
    assert conn.execute("SELECT count(*) FROM book WHERE title = 'baudolino'").fetchone() == (1,)
    transform(conn, "author", collations={"email": None})
    assert "NOCASE" not in schema(conn)["author"][1]


def test_strict_on_and_off(library: Path, conn: sqlite3.Connection) -> None:
    if sqlite3.sqlite_version_info < (3, 37):
        pytest.skip("STRICT tables need SQLite 3.37")
    transform(conn, "book", strict=True)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO book (author_id, title) VALUES ('x', 'y')")
    transform(conn, "book", strict=False)
    refused(library, conn, "cannot store", table="author", strict=True, types={"born": "INTEGER", "email": "TEXT"})


def test_without_rowid_on_and_off(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE setting (key TEXT PRIMARY KEY, value)")
    conn.executemany("INSERT INTO setting VALUES (?, ?)", [("a", 1), ("b", b"\x00")])
    transform(conn, "setting", without_rowid=True)
    assert schema(conn)["setting"][1].endswith("WITHOUT ROWID")
    transform(conn, "setting", rename={"value": "v"})  # kept WITHOUT ROWID
    assert schema(conn)["setting"][1].endswith("WITHOUT ROWID")
    transform(conn, "setting", without_rowid=False)
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):  # the key stays NOT NULL
        conn.execute("INSERT INTO setting VALUES (NULL, 1)")
    assert conn.execute("SELECT key, v FROM setting ORDER BY key").fetchall() == [("a", 1), ("b", b"\x00")]
    refused(library, conn, "cannot have AUTOINCREMENT", table="author", without_rowid=True)
    refused(library, conn, "is its rowid", table="book", without_rowid=True)
    refused(library, conn, "needs a PRIMARY KEY", table="log", without_rowid=True)


# --- refusals before anything changes ------------------------------------------------


@pytest.mark.parametrize("deferred", [False, True])
def test_foreign_keys_on_is_refused_with_the_reason_and_the_fix(
    library: Path, conn: sqlite3.Connection, deferred: bool
) -> None:
    conn.execute("COMMIT")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    if deferred:  # defers the checks, not ON DELETE CASCADE: still refused
        conn.execute("PRAGMA defer_foreign_keys = ON")
    error = refused(library, conn, "PRAGMA foreign_keys is ON", table="author", types={"born": "TEXT"})
    assert "ON DELETE" in str(error) and "does not enforce foreign keys" in str(error)
    assert conn.execute("SELECT count(*) FROM book").fetchone() == (3,)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ("sqlite_sequence", "internal"),
        ("docs", "virtual table"),
        ("docs_data", "shadow table"),
        ("nope", "no such table"),
    ],
)
def test_tables_it_cannot_rebuild_are_refused(library: Path, conn: sqlite3.Connection, table: str, match: str) -> None:
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5 (body)")
    refused(library, conn, match, table=table)


def test_bad_arguments_are_refused(library: Path, conn: sqlite3.Connection) -> None:
    refused(library, conn, "names column 'nope'", table="author", types={"nope": "TEXT"})
    refused(library, conn, "two columns would be named 'email'", table="author", rename={"name": "email"})
    refused(library, conn, "both renamed and dropped", table="author", rename={"name": "n"}, drop=["name"])
    refused(library, conn, "no columns left", table="log", drop=["what"])
    refused(library, conn, "not an SQL type name", table="log", types={"what": "TEXT; DROP TABLE author"})
    refused(library, conn, "has no foreign key", table="book", drop_foreign_keys=["title"])
    refused(library, conn, "matches none of its CHECKs", table="book", drop_checks=["x > 1"])


def test_a_broken_view_elsewhere_stops_a_rename_with_its_name(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("CREATE VIEW broken AS SELECT * FROM no_such_table")
    refused(library, conn, "view broken", table="author", rename={"name": "n"})
    transform(conn, "author", types={"born": "TEXT"})  # no rename: the broken view is not in the way


# --- the connection is left as it was ---------------------------------------------------


@pytest.mark.parametrize("legacy", [0, 1])
def test_legacy_alter_table_is_restored(conn: sqlite3.Connection, legacy: int) -> None:
    conn.execute(f"PRAGMA legacy_alter_table = {legacy}")
    before = schema(conn)
    transform(conn, "author", rename={"name": "n"})
    assert conn.execute("PRAGMA legacy_alter_table").fetchone() == (legacy,)
    assert schema(conn).keys() == before.keys()
    # The other table's trigger and the view that name author were rewritten for the rename only.
    assert schema(conn)["book_added"] == before["book_added"]
    assert schema(conn)["author_books"][1] == before["author_books"][1].replace("a.name", 'a."n"')


def test_it_neither_begins_nor_commits(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")
    before = dump(library)
    conn.execute("BEGIN IMMEDIATE")
    transform(conn, "author", drop=["photo"])
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert dump(library) == before


def test_outside_a_transaction_its_savepoint_is_the_transaction(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")
    transform(conn, "book", not_null={"author_id"})
    assert not conn.in_transaction
    other = sqlite3.connect(library)
    assert [r[3] for r in other.execute("PRAGMA table_info(book)")] == [0, 1, 1]
    other.close()
    conn.execute("BEGIN IMMEDIATE")


def test_a_row_factory_set_by_the_migration_does_not_matter(conn: sqlite3.Connection) -> None:
    conn.row_factory = lambda cursor, row: {d[0]: v for d, v in zip(cursor.description, row, strict=True)}
    conn.text_factory = bytes
    transform(conn, "author", rename={"name": "n"}, drop=["photo"])
    assert conn.execute("SELECT n FROM author WHERE id = 1").fetchone() == {"n": b"Umberto Eco"}


def test_importing_selfmigrate_sqlite_does_not_import_transform() -> None:
    code = "import sys, selfmigrate.sqlite; print('selfmigrate.transform' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- in a real migration ------------------------------------------------------------------

MIGRATION = '''
"""Make book.title unique per author and author_id NOT NULL: a rebuild."""
from selfmigrate.sqlite import transform


def up(conn):
    transform(conn, "book", not_null={"author_id"}, add_uniques=[("author_id", "title")])
'''


def test_a_migration_calling_transform_keeps_every_child_row(
    tmp_path: Path, make_migrations: t.Callable[..., str]
) -> None:
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(LIBRARY)
    conn.close()
    before = dump(db)
    migrations = make_migrations({"0001_book_unique.py": MIGRATION})

    selfmigrate.migrate(db, migrations)

    def kept(lines: list[str]) -> list[str]:
        return sorted(
            x
            for x in lines
            if "schema_migrations" not in x and not x.startswith(("CREATE TABLE book", 'CREATE TABLE "book"'))
        )

    assert kept(dump(db)) == kept(before)  # every row of every table, every index, trigger and view
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM book").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone() == (3,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_a_migration_whose_transform_fails_is_a_migration_error_and_changes_nothing(
    tmp_path: Path, make_migrations: t.Callable[..., str]
) -> None:
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(LIBRARY)
    conn.execute("INSERT INTO book (author_id, title) VALUES (NULL, 'orphan')")
    conn.commit()
    conn.close()
    before = dump(db)
    migrations = make_migrations({"0001_book_unique.py": MIGRATION})

    with pytest.raises(selfmigrate.MigrationError) as excinfo:
        selfmigrate.migrate(db, migrations)

    message = str(excinfo.value)
    assert "0001_book_unique" in message and "TransformError" in message
    assert "NOT NULL constraint failed: book.author_id" in message
    assert [x for x in dump(db) if "schema_migrations" not in x] == before


def test_a_table_named_like_a_shadow_table_is_not_one(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5 (body)")
    conn.execute("CREATE TABLE docs_archive (body TEXT)")
    conn.execute("INSERT INTO docs_archive VALUES ('x')")
    transform(conn, "docs_archive", not_null={"body"})
    assert columns(conn, "docs_archive")[0][2] == 1


def test_generated_columns_are_recomputed_not_copied(library: Path, conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE item (price INTEGER, qty INTEGER, total INTEGER AS (price * qty) STORED,"
        " label TEXT GENERATED ALWAYS AS ('x' || qty) VIRTUAL)"
    )
    conn.execute("INSERT INTO item (price, qty) VALUES (3, 4)")
    transform(conn, "item", rename={"qty": "quantity"}, types={"price": "REAL"})
    assert conn.execute("SELECT price, quantity, total, label FROM item").fetchall() == [(3.0, 4, 12, "x4")]
    assert [c[5] for c in columns(conn, "item")] == [0, 0, 3, 2]  # hidden: stored and virtual generated
    refused(library, conn, "column 'total'", table="item", drop=["price"])


def test_odd_names_a_column_called_rowid_and_a_self_reference(conn: sqlite3.Connection) -> None:
    conn.execute(
        'CREATE TABLE "my table" ("rowid" TEXT, "we""ird" INTEGER PRIMARY KEY, [parent] INTEGER'
        ' REFERENCES "my table" ("we""ird"))'
    )
    conn.execute("INSERT INTO \"my table\" VALUES ('r', 1, NULL), ('s', 2, 1)")
    transform(conn, "MY TABLE", rename={"parent": "up"}, not_null={"rowid"})
    assert conn.execute('SELECT "rowid", "we""ird", up FROM "my table" ORDER BY 2').fetchall() == [
        ("r", 1, None),
        ("s", 2, 1),
    ]
    assert [r[2:5] for r in conn.execute('PRAGMA foreign_key_list("my table")')] == [("my table", "up", 'we"ird')]


def test_renaming_a_table_s_column_that_other_tables_reference_rewrites_their_foreign_keys(
    conn: sqlite3.Connection,
) -> None:
    transform(conn, "author", rename={"id": "author_no"}, types={"author_no": "INTEGER"})
    assert [r[3:5] for r in conn.execute("PRAGMA foreign_key_list(book)")] == [("author_id", "author_no")]
    assert conn.execute("SELECT count(*) FROM book JOIN author ON author_no = author_id").fetchone() == (3,)


def test_references_broken_before_the_call_do_not_stop_it(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO book (author_id, title) VALUES (99, 'orphan')")  # foreign keys were never enforced
    conn.execute("CREATE TABLE fan (author_name TEXT REFERENCES author (name))")  # name is not unique: mismatch
    transform(conn, "author", types={"born": "TEXT"})
    assert conn.execute("SELECT count(*) FROM book WHERE author_id = 99").fetchone() == (1,)


def test_a_temp_trigger_on_the_table_is_kept_as_a_temp_trigger(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TEMP TRIGGER watch AFTER INSERT ON main.book BEGIN INSERT INTO log VALUES ('watched'); END")
    transform(conn, "book", not_null={"author_id"})
    assert conn.execute("SELECT name FROM temp.sqlite_master").fetchall() == [("watch",)]
    assert conn.execute("SELECT count(*) FROM main.sqlite_master WHERE name = 'watch'").fetchone() == (0,)
    conn.execute("INSERT INTO book (author_id, title) VALUES (1, 'x')")
    assert conn.execute("SELECT count(*) FROM log WHERE what = 'watched'").fetchone() == (1,)


TRICKY_TABLES = [
    "CREATE TABLE x (a INTEGER CONSTRAINT pk PRIMARY KEY DESC ON CONFLICT REPLACE, b TEXT CONSTRAINT nn NOT NULL"
    " ON CONFLICT ABORT DEFAULT (1 + 2), c DEFAULT -1 COLLATE RTRIM, d DOUBLE PRECISION DEFAULT 'it''s')",
    "CREATE TABLE x (a REFERENCES book ON DELETE SET NULL ON UPDATE SET DEFAULT NOT DEFERRABLE INITIALLY"
    " DEFERRED, b UNSIGNED BIG INT NULL DEFAULT NULL, c DECIMAL(10, 5) CHECK (c > 0) CHECK (c < 9), d)",
    "CREATE TABLE x (\n  a, /* block, comment */ b VARCHAR(3), -- the b\n  c TEXT AS (upper(b)) STORED,\n"
    "  CONSTRAINT u UNIQUE (a, b) ON CONFLICT IGNORE,\n  CHECK (a IS NOT b),\n"
    "  FOREIGN KEY (a, b) REFERENCES book (id, title) MATCH FULL\n)",
    "CREATE TABLE x ([a b] TEXT PRIMARY KEY, `c` BLOB DEFAULT x'00', 'd' DEFAULT CURRENT_TIMESTAMP) WITHOUT ROWID",
]


@pytest.mark.parametrize("sql", TRICKY_TABLES)
def test_tricky_definitions_survive_an_identity_transform_and_edits(conn: sqlite3.Connection, sql: str) -> None:
    conn.execute(sql)
    info = columns(conn, "x")
    fks = conn.execute("PRAGMA foreign_key_list(x)").fetchall()
    transform(conn, "x")
    assert schema(conn)["x"][1] == sql.replace("CREATE TABLE x (", 'CREATE TABLE "x" (')
    names = [c[0] for c in info if not c[5]]
    transform(conn, "x", not_null={n: False for n in names}, defaults={names[-1]: 7})
    after = columns(conn, "x")
    pk = [c for c in info if c[4]]
    assert [(c[0], c[1], c[4], c[5]) for c in after] == [(c[0], c[1], c[4], c[5]) for c in info]
    assert [c[2] for c in after if not c[4]] == [0] * len([c for c in after if not c[4]])
    assert after[-1][3] == "7" or after[-1][5]
    assert conn.execute("PRAGMA foreign_key_list(x)").fetchall() == fks
    assert pk == [c for c in info if c[4]]


def test_compound_foreign_keys_add_and_drop(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE edition (book_id INTEGER, n INTEGER, PRIMARY KEY (book_id, n))")
    conn.execute("INSERT INTO edition VALUES (1, 1), (1, 2)")
    conn.execute("CREATE TABLE copy (id INTEGER PRIMARY KEY, book_id INTEGER, n INTEGER)")
    conn.executemany("INSERT INTO copy (book_id, n) VALUES (?, ?)", [(1, 1), (1, 2)])
    transform(conn, "copy", add_foreign_keys=[(("book_id", "n"), "edition", ("book_id", "n"))])
    assert [r[2:5] for r in conn.execute("PRAGMA foreign_key_list(copy)")] == [
        ("edition", "book_id", "book_id"),
        ("edition", "n", "n"),
    ]
    transform(conn, "copy", drop_foreign_keys=[("book_id", "n")])
    assert conn.execute("PRAGMA foreign_key_list(copy)").fetchall() == []
