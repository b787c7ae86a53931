"""The linter: each code on the mistake it names, nothing on the right way, accepting, the faces."""

from __future__ import annotations

import json
import sqlite3
import typing as t

import pytest
from click.testing import CliRunner

from selfmigrate.backends import select
from selfmigrate.errors import ConfigError, DiscoveryError
from selfmigrate.faces.cli.main import cli
from selfmigrate.ops.lint import lint, rules
from selfmigrate.ops.verify import verify

pytest_plugins = ["pytester"]

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

BASE = {
    "0001_init.sql": """
        CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE child (
            id INTEGER PRIMARY KEY,
            parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE,
            parent_name TEXT REFERENCES parent(name),
            note TEXT
        );
        CREATE INDEX child_note ON child(note);
        -- migrate:down
        DROP TABLE child;
        DROP TABLE parent;
    """,
}


def codes(folder: str) -> list[tuple[str, str, int | None]]:
    return [(f.code, f.path.rsplit("/", 1)[-1], f.line) for f in lint(folder).findings]


def with_base(files: dict[str, str]) -> dict[str, str]:
    return {**BASE, **files}


def test_clean_migrations_have_no_findings(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_good.sql": """
                    ALTER TABLE parent ADD COLUMN score INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE parent ADD COLUMN label TEXT DEFAULT 'x';
                    ALTER TABLE parent ADD COLUMN ratio REAL DEFAULT (-1.5);
                    ALTER TABLE parent ADD COLUMN created TEXT;
                    UPDATE parent SET created = CURRENT_TIMESTAMP;
                    CREATE UNIQUE INDEX parent_label ON parent(label);
                    PRAGMA defer_foreign_keys = ON;
                    PRAGMA journal_mode;
                    -- migrate:down
                    DROP INDEX parent_label;
                    ALTER TABLE parent DROP COLUMN created;
                    ALTER TABLE parent DROP COLUMN ratio;
                    ALTER TABLE parent DROP COLUMN label;
                    ALTER TABLE parent DROP COLUMN score;
                """,
                "0003_vacuum.sql": """
                    -- migrate:no-transaction
                    PRAGMA journal_mode = WAL;
                    VACUUM;
                """,
                "0004_py.py": """
                    def up(conn):
                        conn.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT)")

                    def down(conn):
                        conn.execute("DROP TABLE tags")
                """,
            }
        ),
        package=False,
    )
    assert codes(folder) == []


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL;", "SM103"),
        ("ALTER TABLE parent ADD a INTEGER DEFAULT NULL NOT NULL;", "SM103"),
        ("ALTER TABLE parent ADD COLUMN b TEXT DEFAULT CURRENT_TIMESTAMP;", "SM104"),
        ("ALTER TABLE parent ADD COLUMN b TEXT DEFAULT (datetime('now'));", "SM104"),
        ("ALTER TABLE parent ADD COLUMN b INTEGER DEFAULT (1 + 2);", "SM104"),
        ("ALTER TABLE parent ADD COLUMN b INTEGER AS (id * 2) STORED;", "SM104"),
        ("ALTER TABLE parent ADD COLUMN c TEXT UNIQUE;", "SM105"),
        ("ALTER TABLE parent ADD COLUMN c INTEGER CONSTRAINT pk PRIMARY KEY;", "SM105"),
        ("ALTER TABLE child DROP COLUMN note;", "SM106"),
        ("ALTER TABLE child DROP COLUMN parent_id;", "SM106"),
        ("ALTER TABLE parent DROP COLUMN id;", "SM106"),
        ("ALTER TABLE parent DROP COLUMN name;", "SM106"),
        ("DROP TABLE parent;", "SM102"),
        ("PRAGMA journal_mode = WAL;", "SM101"),
        ("PRAGMA foreign_keys = OFF;", "SM110"),
        ("PRAGMA foreign_keys = ON;", "SM110"),
        ("BEGIN TRANSACTION;", "SM110"),
        ("PRAGMA page_size(8192);", "SM101"),
        ("PRAGMA main.synchronous = OFF;", "SM101"),
    ],
)
def test_each_mistake_has_its_code_and_line(make_migrations: MigrationsFactory, sql: str, code: str) -> None:
    folder = make_migrations(with_base({"0002_change.sql": f"-- a comment line\n{sql}\n"}), package=False)
    assert codes(folder) == [(code, "0002_change.sql", 2)]


def test_the_mistakes_fail_on_a_database_with_rows(make_migrations: MigrationsFactory, tmp_path: t.Any) -> None:
    """The ADD COLUMN codes are real: each statement fails once the table has a row."""
    for sql in [
        "ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL",
        "ALTER TABLE parent ADD COLUMN b TEXT DEFAULT CURRENT_TIMESTAMP",
        "ALTER TABLE parent ADD COLUMN b INTEGER DEFAULT (1 + 2)",
    ]:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute(sql.replace("parent", "parent", 1))  # passes on the empty table
        conn.execute("DROP TABLE parent")
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO parent (name) VALUES ('x')")
        with pytest.raises(sqlite3.OperationalError):
            conn.execute(sql)
        conn.close()


def test_a_handwritten_rebuild_with_foreign_keys_off(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_rebuild.sql": """
                    PRAGMA foreign_keys=OFF;
                    CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                    INSERT INTO parent_new SELECT id, name FROM parent;
                    DROP TABLE parent;
                    ALTER TABLE parent_new RENAME TO parent;
                """
            }
        ),
        package=False,
    )
    # In a transactional migration the pragma is refused when it runs: SM110 says to delete it
    # (selfmigrate's connection does not enforce foreign keys); SM107 is for one after BEGIN.
    assert codes(folder) == [("SM110", "0002_rebuild.sql", 1), ("SM102", "0002_rebuild.sql", 4)]


def test_foreign_keys_off_after_begin_in_a_non_transactional_migration(make_migrations: MigrationsFactory) -> None:
    rebuild = """
        CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        INSERT INTO parent_new SELECT id, name FROM parent;
        DROP TABLE child;
        DROP TABLE parent;
        ALTER TABLE parent_new RENAME TO parent;
        COMMIT;
    """
    inside = make_migrations(
        with_base({"0002_rebuild.sql": "-- migrate:no-transaction\nBEGIN;\nPRAGMA foreign_keys=OFF;\n" + rebuild}),
        package=False,
    )
    assert codes(inside) == [("SM107", "0002_rebuild.sql", 3)]
    # The documented procedure: the pragma before BEGIN, outside any transaction.
    outside = make_migrations(
        with_base({"0002_rebuild.sql": "-- migrate:no-transaction\nPRAGMA foreign_keys=OFF;\nBEGIN;\n" + rebuild}),
        package=False,
    )
    assert codes(outside) == []


def test_a_down_that_does_not_undo_its_up(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_tags.sql": """
                    CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);
                    CREATE INDEX tags_name ON tags(name);
                    CREATE VIEW parent_names AS SELECT name FROM parent;
                    -- migrate:down
                    DROP VIEW parent_names;
                """,
                "0003_py.py": """
                    def up(conn):
                        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")

                    def down(conn):
                        conn.execute("DROP TABLE parent")
                """,
            }
        ),
        package=False,
    )
    found = lint(folder).findings
    assert [(f.code, f.path.rsplit("/", 1)[-1], f.line) for f in found] == [
        ("SM108", "0002_tags.sql", 1),
        ("SM108", "0002_tags.sql", 2),
        ("SM108", "0003_py.py", 2),
        ("SM108", "0003_py.py", 4),
    ]
    assert "table tags" in found[0].message and "index tags_name" in found[1].message
    assert "drops table parent" in found[3].message


def test_python_migrations_are_replayed_and_checked(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_py.py": """
                    def up(conn):
                        conn.execute("PRAGMA foreign_keys = OFF")
                        conn.execute("ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL")
                        conn.execute("DROP TABLE parent")
                """,
            }
        ),
    )
    assert [(c, line) for c, _, line in codes(folder)] == [("SM110", 2), ("SM103", 3), ("SM102", 4)]


def test_each_python_statement_meets_the_schema_before_it(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_py.py": """
                    def up(conn):
                        conn.execute("DROP TABLE child")
                        conn.execute("DROP TABLE parent")
                        conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT)")
                        conn.execute("CREATE INDEX a_x ON a (x)")
                        conn.execute("ALTER TABLE a DROP COLUMN x")
                """,
            }
        ),
    )
    # No SM102 (child is gone when parent is dropped); SM106 on a table the up created.
    assert [(c, line) for c, _, line in codes(folder)] == [("SM001", 6), ("SM106", 6)]


def test_a_migration_that_does_not_replay_stops_the_schema_checks(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        {
            "0001_needs_old_table.sql": "ALTER TABLE legacy ADD COLUMN x TEXT;\n",
            "0002_drop.sql": "ALTER TABLE legacy DROP COLUMN y;\nALTER TABLE legacy ADD COLUMN z TEXT UNIQUE;\n",
        },
        package=False,
    )
    # SM001 once; the text checks (SM105) go on; the schema checks (SM106) stop.
    assert codes(folder) == [("SM001", "0001_needs_old_table.sql", 1), ("SM105", "0002_drop.sql", 2)]


def test_a_python_migration_that_fails_on_the_scratch_database(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_py.py": "def up(conn):\n    conn.execute('ALTER TABLE child DROP COLUMN note')\n",
                "0003_drop.sql": "DROP TABLE parent;\n",
            }
        ),
        package=False,
    )
    found = lint(folder).findings
    assert [(f.code, f.path.rsplit("/", 1)[-1], f.line) for f in found] == [
        ("SM001", "0002_py.py", 2),
        ("SM106", "0002_py.py", 2),
    ]
    assert "error in index child_note after drop column" in found[0].message


def test_a_python_migration_after_the_replay_stopped_gets_the_text_checks(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        {
            "0001_needs_old_table.sql": "ALTER TABLE legacy ADD COLUMN x TEXT;\n",
            "0002_py.py": (
                '"""PRAGMA journal_mode = WAL; in a docstring is not SQL."""\n'
                "def up(conn):\n"
                '    conn.execute("PRAGMA journal_mode = WAL")\n'
                "    conn.execute(\n"
                '        """\n'
                "        ALTER TABLE legacy ADD COLUMN y INTEGER NOT NULL\n"
                '        """\n'
                "    )\n"
            ),
        },
        package=False,
    )
    assert codes(folder) == [
        ("SM001", "0001_needs_old_table.sql", 1),
        ("SM101", "0002_py.py", 3),
        ("SM103", "0002_py.py", 6),
    ]


def test_accept_directives(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_change.sql": """
                    -- migrate:accept SM103, SM105 -- the table is always empty here
                    -- migrate:accept SM777
                    ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL;
                    ALTER TABLE parent ADD COLUMN c TEXT UNIQUE;
                    ALTER TABLE parent ADD COLUMN b TEXT DEFAULT CURRENT_TIMESTAMP;
                """,
                "0003_py.py": """
                    # migrate:accept sm101
                    def up(conn):
                        conn.execute("PRAGMA journal_mode = WAL")
                """,
            }
        ),
        package=False,
    )
    report = lint(folder)
    assert [(f.code, f.line) for f in report.findings] == [("SM002", 2), ("SM104", 5)]
    assert sorted(f.code for f in report.accepted) == ["SM101", "SM103", "SM105"]


def test_a_python_file_accepts_only_with_a_python_comment(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        {
            "0001_py.py": (
                'def up(conn):\n    conn.execute("""\n-- migrate:accept SM101\nPRAGMA journal_mode = WAL\n""")\n'
            )
        },
        package=False,
    )
    assert [f.code for f in lint(folder).findings] == ["SM101"]


def test_since_skips_older_migrations_but_replays_them(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations(
        with_base(
            {
                "0002_old.sql": "ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL;\n",
                "0003_new.sql": "ALTER TABLE parent DROP COLUMN a;\nDROP TABLE parent;\n",
            }
        ),
        package=False,
    )
    report = lint(folder, since=2)
    assert [(f.code, f.path.rsplit("/", 1)[-1]) for f in report.findings] == [("SM102", "0003_new.sql")]


def test_every_code_is_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "lint.rst").read_text(encoding="utf-8")
    for code, rule in rules().items():
        assert f"\n{code}: " in text or f"\n{code} " in text, code
        assert rule.fix


def test_lint_command_output_and_exit_codes(make_migrations: MigrationsFactory) -> None:
    bad = make_migrations(
        with_base({"0002_change.sql": "ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL;\n"}), package=False
    )
    result = CliRunner().invoke(cli, ["-m", bad, "lint"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith(f"{bad}/0002_change.sql:1: SM103 ADD COLUMN a to parent")
    assert "(fix: give it a constant default" in result.stdout
    as_json = CliRunner().invoke(cli, ["-m", bad, "lint", "--json"])
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    assert document["ok"] is False and document["findings"][0]["code"] == "SM103"
    assert document["findings"][0]["line"] == 1

    warned = make_migrations({"0001_init.sql": "CREATE TABLE t (id);\n-- migrate:down\nSELECT 1;\n"}, package=False)
    result = CliRunner().invoke(cli, ["-m", warned, "lint"])
    assert result.exit_code == 0 and "SM108" in result.stdout
    assert CliRunner().invoke(cli, ["-m", warned, "lint", "--strict"]).exit_code == 1

    broken = make_migrations(
        {"0001_init.sql": "CREATE TABLE t (id);\n", "0001_again.sql": "SELECT 1;\n"}, package=False
    )
    result = CliRunner().invoke(cli, ["-m", broken, "lint"])
    assert result.exit_code == 2 and "0001_again.sql" in result.stderr
    with pytest.raises(DiscoveryError):
        lint(broken)


def test_verify_runs_the_linter(make_migrations: MigrationsFactory) -> None:
    bad = make_migrations(
        with_base({"0002_change.sql": "ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL;\n"}), package=False
    )
    result = verify(bad)
    assert [(p.kind, p.severity) for p in result.problems] == [("lint", "error")]
    assert "SM103" in result.problems[0].message
    assert verify(bad, lint=False).problems == ()
    cli_result = CliRunner().invoke(cli, ["-m", bad, "verify"])
    assert cli_result.exit_code == 2 and "Error: " in cli_result.stderr and "SM103" in cli_result.stderr

    warned = make_migrations({"0001_init.sql": "CREATE TABLE t (id);\n-- migrate:down\nSELECT 1;\n"}, package=False)
    assert CliRunner().invoke(cli, ["-m", warned, "verify"]).exit_code == 0
    assert CliRunner().invoke(cli, ["-m", warned, "verify", "--strict"]).exit_code == 2


def test_pytest_check(pytester: pytest.Pytester, make_migrations: MigrationsFactory) -> None:
    bad = make_migrations(
        with_base({"0002_change.sql": "ALTER TABLE parent ADD COLUMN a INTEGER NOT NULL;\n"}), package=False
    )
    good = make_migrations(BASE, package=False)
    pytester.makepyfile(test_ready_made_lint="from selfmigrate.pytest_checks import test_migrations_lint\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-o", f"selfmigrate_migrations={bad}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*0002_change.sql:1: SM103*", "*migrate:accept CODE*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "-o", f"selfmigrate_migrations={good}")
    result.assert_outcomes(passed=1)


def test_the_loader_lets_accept_lines_through_but_not_misspelt_ones(make_migrations: MigrationsFactory) -> None:
    accepted = make_migrations(
        {"0001_init.sql": "CREATE TABLE t (id);\n-- MIGRATE:ACCEPT SM108 anywhere in the file\n"}, package=False
    )
    assert lint(accepted).findings == ()
    misspelt = make_migrations({"0001_init.sql": "-- migrate:acept SM108\nCREATE TABLE t (id);\n"}, package=False)
    with pytest.raises(DiscoveryError, match="not spelt exactly as a marker"):
        lint(misspelt)


def test_an_engine_without_a_linter_is_refused(
    make_migrations: MigrationsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The PostgreSQL backend has no linter: its URLs are routed to its package, which has no lint module.
    monkeypatch.setitem(select.ENGINES, "postgresql", "postgres")
    folder = make_migrations(BASE, package=False)
    url = "postgresql://localhost/app"
    with pytest.raises(ConfigError, match="The linter is not supported for postgres databases"):
        lint(folder, database=url)
    with pytest.raises(ConfigError, match="not supported for postgres"):
        rules(url)
    assert select.job(url, "lint", what=None) is None  # what verify asks before it lints
    result = CliRunner().invoke(cli, ["-d", url, "-m", folder, "lint"])
    assert result.exit_code == 2 and "The linter is not supported for postgres databases" in result.stderr
    # Without a database, and for a SQLite path, the rules are SQLite's.
    assert rules() == rules("app.sqlite") and "SM103" in rules()


@pytest.mark.parametrize(
    ("up", "says"),
    [
        ("ALTER TABLE parent DROP COLUMN name;", "drops (or renames) column parent.name"),
        ("ALTER TABLE child RENAME COLUMN note TO remark;", "drops (or renames) column child.note"),
        ("ALTER TABLE parent RENAME TO parents;", "drops (or renames) table parent"),
        ("DROP INDEX child_note;", "drops (or renames) index child_note"),
        ("ALTER TABLE parent ADD COLUMN rank INTEGER NOT NULL;", "NOT NULL without a default"),
        (
            "CREATE TRIGGER parent_named BEFORE INSERT ON parent WHEN NEW.name IS NULL"
            " BEGIN SELECT RAISE(ABORT, 'name'); END;",
            "adds trigger parent_named",
        ),
    ],
)
def test_a_compatible_migration_that_is_not_expand_only(make_migrations: MigrationsFactory, up: str, says: str) -> None:
    folder = make_migrations(with_base({"0002_change.sql": f"-- migrate:compatible\n{up}\n"}), package=False)
    found = [f for f in lint(folder).findings if f.code == "SM109"]
    assert [(f.path.rsplit("/", 1)[-1], f.line, f.level) for f in found] == [("0002_change.sql", 1, "error")]
    assert says in found[0].message
    # The same change not marked compatible is not SM109's business.
    plain = make_migrations(with_base({"0002_change.sql": f"{up}\n"}), package=False)
    assert "SM109" not in [f.code for f in lint(plain).findings]


def test_a_compatible_rebuild_is_judged_by_what_it_leaves(make_migrations: MigrationsFactory) -> None:
    """A type change through transform() in a .py migration marked compatible is caught;
    an expand-only one (new table, nullable column, index, NOT NULL with a default) is not."""
    folder = make_migrations(
        with_base(
            {
                "0002_expand.sql": """
                    -- migrate:compatible
                    CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);
                    ALTER TABLE parent ADD COLUMN nickname TEXT;
                    ALTER TABLE parent ADD COLUMN score INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX parent_nickname ON parent(nickname);
                    -- migrate:down
                    DROP INDEX parent_nickname;
                    ALTER TABLE parent DROP COLUMN score;
                    ALTER TABLE parent DROP COLUMN nickname;
                    DROP TABLE tags;
                """,
                "0003_retype.py": """
                    from selfmigrate.sqlite import transform

                    compatible = True

                    def up(conn):
                        transform(conn, "child", types={"note": "BLOB"})
                """,
            }
        ),
        package=False,
    )
    found = [(f.code, f.path.rsplit("/", 1)[-1]) for f in lint(folder).findings]
    assert found == [("SM109", "0003_retype.py")]
    assert "changes column child.note" in next(f.message for f in lint(folder).findings if f.code == "SM109")
