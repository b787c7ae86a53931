"""What a new user meets in the pytest plugin, transform(), lint and the dry run.

Each test comes from trying the documented steps in a fresh project and
finding a message that misled or a result that was wrong.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import dump

import selfmigrate
from selfmigrate.errors import TransformError
from selfmigrate.ops.dryrun import TableChange, dry_run
from selfmigrate.ops.lint import lint
from selfmigrate.sqlite import transform

BOOKS = """
CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price_cents INTEGER);
CREATE VIEW cheap AS SELECT id, title FROM book WHERE price_cents < 500;
CREATE TRIGGER cheap_insert INSTEAD OF INSERT ON cheap
BEGIN INSERT INTO book (title, price_cents) VALUES (new.title, 100); END;
INSERT INTO book (title, price_cents) VALUES ('Odyssey', 300), ('Iliad', 900);
"""

RENAME_TITLE = """\
from selfmigrate.sqlite import transform


def up(conn):
    transform(conn, "book", rename={"title": "name"})
"""


def test_a_rename_that_would_break_a_sound_trigger_is_not_called_broken(tmp_path: Path) -> None:
    # The view's output column takes the new name, so the trigger's new.title no longer
    # resolves: SQLite says "error in trigger ... after rename". The trigger was sound, so
    # "fix or drop the broken trigger" sent the user looking for a bug that is not there.
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_books.sql").write_text(BOOKS)
    (migrations / "0002_rename_title.py").write_text(RENAME_TITLE)
    db = tmp_path / "app.sqlite"
    selfmigrate.migrate(db, migrations, target=1)
    before = dump(db)
    with pytest.raises(selfmigrate.MigrationError) as caught:
        selfmigrate.migrate(db, migrations)
    message = str(caught.value)
    assert "0002_rename_title.py" in message
    assert "cheap_insert" in message
    assert "the rename would break" in message
    assert "is broken" not in message
    assert "AS <old>" in message  # the fix: keep the view's column name with an alias
    assert dump(db) == before


def test_the_alias_the_rename_message_proposes_lets_the_rename_through(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_books.sql").write_text(BOOKS.replace("SELECT id, title FROM", "SELECT id, title AS title FROM"))
    (migrations / "0002_rename_title.py").write_text(RENAME_TITLE)
    db = tmp_path / "app.sqlite"
    selfmigrate.migrate(db, migrations)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO cheap (title) VALUES ('Aeneid')")
    assert conn.execute("SELECT name FROM book ORDER BY id").fetchall() == [("Odyssey",), ("Iliad",), ("Aeneid",)]
    conn.close()


CASCADE = """
CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES author (id) ON DELETE CASCADE);
"""


def test_lint_does_not_tell_a_transform_call_to_use_transform(tmp_path: Path) -> None:
    # transform() rebuilds with a DROP TABLE of its own, with foreign keys off; the
    # linter traced it as the migration's and said "SM102 ... (fix: rebuild the table
    # with selfmigrate.sqlite.transform())" on the line that already does.
    (tmp_path / "0001_schema.sql").write_text(CASCADE)
    (tmp_path / "0002_author_not_null.py").write_text(
        "from selfmigrate.sqlite import transform\n\n\n"
        'def up(conn):\n    transform(conn, "author", not_null={"name"})\n'
    )
    (tmp_path / "0003_drop_by_hand.py").write_text('def up(conn):\n    conn.execute("DROP TABLE author")\n')
    report = lint(tmp_path)
    assert [(f.code, Path(f.path).name, f.line) for f in report.findings] == [("SM102", "0003_drop_by_hand.py", 2)]


def test_lint_names_executescript_as_the_source_of_a_commit_in_a_py_migration(tmp_path: Path) -> None:
    # The line has no COMMIT in it: "delete the line" sent the user looking for one.
    (tmp_path / "0001_tables.py").write_text('def up(conn):\n    conn.executescript("CREATE TABLE a (x);")\n')
    (finding,) = lint(tmp_path).findings
    assert (finding.code, finding.line) == ("SM110", 2)
    assert "conn.executescript()" in finding.message
    assert "conn.execute()" in finding.message


def test_a_dry_run_counts_the_rows_an_update_fills_into_a_column_it_adds(tmp_path: Path) -> None:
    # "ALTER TABLE ... ADD COLUMN pages; UPDATE ... SET pages = ..." showed no change to
    # the table at all: the operator asking how many rows it touches was told none.
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_books.sql").write_text(
        "CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT);\n"
        "CREATE TABLE tag (book_id INTEGER, label TEXT, PRIMARY KEY (book_id, label)) WITHOUT ROWID;\n"
        "INSERT INTO book (title) VALUES ('a'), ('b'), ('c');\n"
        "INSERT INTO tag VALUES (1, 'x'), (2, 'y');\n"
    )
    (migrations / "0002_pages.sql").write_text(
        "ALTER TABLE book ADD COLUMN pages INTEGER;\n"
        "ALTER TABLE book ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';\n"
        "UPDATE book SET pages = 100 WHERE id = 1;\n"
        "UPDATE book SET lang = 'it' WHERE id = 2;\n"
        "UPDATE book SET lang = 'en' WHERE id = 3;\n"  # the value it already had: not an update
        "ALTER TABLE tag ADD COLUMN weight INTEGER DEFAULT 1;\n"
        "UPDATE tag SET weight = 5 WHERE book_id = 2;\n"
    )
    db = tmp_path / "app.sqlite"
    selfmigrate.migrate(db, migrations, target=1, backup=False)
    before = dump(db)
    report = dry_run(db, migrations)
    assert report.ok
    (step,) = report.steps
    assert step.changes == (
        TableChange("book", 3, 3, inserted=0, deleted=0, updated=2),
        TableChange("tag", 2, 2, inserted=0, deleted=0, updated=1),
    )
    assert dump(db) == before


@pytest.mark.parametrize(
    ("schema", "argument"),
    [
        ("CREATE TABLE t (a, b, c, UNIQUE (a, b))", "drop_uniques"),
        (
            "CREATE TABLE p (x, y, PRIMARY KEY (x, y));"
            " CREATE TABLE t (a, b, c, FOREIGN KEY (a, b) REFERENCES p (x, y))",
            "drop_foreign_keys",
        ),
    ],
)
def test_dropping_a_column_does_not_silently_drop_a_constraint_on_the_columns_that_stay(
    tmp_path: Path, schema: str, argument: str
) -> None:
    # An index on (a, b) stopped drop=["b"]; a UNIQUE (a, b) or FOREIGN KEY (a, b) went
    # away without a word, and with it what it said of a.
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(schema)
    conn.execute("BEGIN")
    with pytest.raises(TransformError) as caught:
        transform(conn, "t", drop=["b"])
    assert f"{argument}=[('a', 'b')]" in str(caught.value)
    conn.execute("ROLLBACK")
    conn.execute("BEGIN")
    transform(conn, "t", **{argument: [("a", "b")]})  # the fix it names, then the drop
    transform(conn, "t", drop=["b"])
    conn.execute("COMMIT")
    assert [row[1] for row in conn.execute("PRAGMA table_info(t)")] == ["a", "c"]
    conn.close()


def test_dropping_the_only_column_of_a_unique_constraint_drops_the_constraint(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "app.sqlite", isolation_level=None)
    conn.executescript("CREATE TABLE t (a, b, UNIQUE (b))")
    conn.execute("BEGIN")
    transform(conn, "t", drop=["b"])
    assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 't'").fetchone()[0] == 'CREATE TABLE "t" (a)'
    conn.close()
