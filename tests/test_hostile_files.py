"""Migration files a real team produces by accident (issue 9, items 3, 4, 6, 11, 12).

Every test starts from a database holding data, adds one hostile file, and
checks both the error (a :class:`~selfmigrate.DiscoveryError` or
:class:`~selfmigrate.MigrationError` naming the file, the line and the fix,
raised before the first change) and that the data is exactly as before
(:func:`helpers.dump`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest
from helpers import as_other_user, dump, shared_folder

import selfmigrate
from selfmigrate import DiscoveryError, MigrationError, MigrationRegistry, Runner
from selfmigrate.core.migration import checksum

INIT = "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);\n"
NEXT = "CREATE TABLE tag (name TEXT);\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    (path / "0001_init.sql").write_text(INIT)
    return path


@pytest.fixture
def database(folder: Path, tmp_path: Path) -> Path:
    """A database at version 1 holding user data, with a stored fingerprint."""
    path = tmp_path / "app.sqlite"
    selfmigrate.migrate(path, folder)
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO note (body) VALUES (?)", [("first",), ("second",)])
    conn.commit()
    conn.close()
    return path


def user_data(path: Path) -> list[str]:
    """The dump without selfmigrate's own tables (which change when a migration is applied)."""
    return [line for line in dump(path) if "schema_migrations" not in line]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def refused(database: Path, folder: Path, *fragments: str, error: type[Exception] = DiscoveryError) -> str:
    """Migrate, expect ``error`` with every fragment in its message, and the data unchanged."""
    before = dump(database)
    with pytest.raises(error) as info:
        selfmigrate.migrate(database, folder)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert dump(database) == before
    report = selfmigrate.migrate(database, folder, on_failure="log")
    assert isinstance(report.error, error) and dump(database) == before
    return message


def cli(database: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "selfmigrate", "-d", str(database), "-m", str(folder), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


# Item 3: Python migrations whose body would not run --------------------------------------------------

NOT_RUN = {
    "async_up": "async def up(conn):\n    conn.execute('DROP TABLE note')\n",
    "generator_up": "def up(conn):\n    conn.execute('DROP TABLE note')\n    yield\n",
    "async_generator_up": "async def up(conn):\n    conn.execute('DROP TABLE note')\n    yield\n",
    "async_down": "def up(conn):\n    conn.execute('DROP TABLE note')\n\nasync def down(conn):\n    pass\n",
    "generator_down": "def up(conn):\n    conn.execute('DROP TABLE note')\n\ndef down(conn):\n    yield\n",
}
BAD_SIGNATURES = {
    "no_parameter": "def up():\n    pass\n",
    "two_parameters": "def up(conn, other):\n    pass\n",
    "keyword_only": "def up(*, conn):\n    pass\n",
    "down_no_parameter": "def up(conn):\n    pass\n\ndef down():\n    pass\n",
}


@pytest.mark.parametrize("body", list(NOT_RUN.values()), ids=list(NOT_RUN))
def test_async_or_generator_function_is_refused_before_the_first_change(
    database: Path, folder: Path, body: str
) -> None:
    write(folder, "0002_tag.sql", NEXT)  # must not run: 0003 is checked before it
    write(folder, "0003_bad.py", body)
    message = refused(database, folder, str(folder / "0003_bad.py"), "line ", "plain 'def ")
    assert "async" in message or "generator" in message


@pytest.mark.parametrize("body", list(BAD_SIGNATURES.values()), ids=list(BAD_SIGNATURES))
def test_function_that_cannot_take_the_connection_is_refused_before_the_first_change(
    database: Path, folder: Path, body: str
) -> None:
    write(folder, "0002_tag.sql", NEXT)
    write(folder, "0003_bad.py", body)
    refused(database, folder, str(folder / "0003_bad.py"), "cannot be called with the connection", "(conn):")


def test_functions_that_take_one_argument_are_accepted(database: Path, folder: Path) -> None:
    write(folder, "0002_a.py", "def up(conn, extra=1):\n    conn.execute('CREATE TABLE a (x)')\n")
    write(folder, "0003_b.py", "up = lambda conn: conn.execute('CREATE TABLE b (x)')\n")
    write(folder, "0004_c.py", "def up(*args):\n    args[0].execute('CREATE TABLE c (x)')\n")
    write(
        folder,
        "0005_d.py",
        "import functools\n\ndef _make(conn, name):\n    conn.execute(f'CREATE TABLE {name} (x)')\n\n"
        "up = functools.partial(_make, name='d')\n",
    )
    assert selfmigrate.migrate(database, folder).current_version == 5
    conn = sqlite3.connect(database)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"a", "b", "c", "d", "note"} <= tables


def test_a_hidden_coroutine_fails_the_migration_and_is_rolled_back(database: Path, folder: Path) -> None:
    # A plain function returning a coroutine (what a careless decorator does): only the call tells.
    write(
        folder,
        "0002_hidden.py",
        """
        async def _real(conn):
            pass

        def up(conn):
            conn.execute("DELETE FROM note")
            return _real(conn)
        """,
    )
    message = refused(database, folder, "0002_hidden", "returned coroutine", "body did not run", error=MigrationError)
    assert "rolled back" in message


# Item 4: near-miss markers --------------------------------------------------------------------------

NEAR_MISSES = [
    "--migrate:down",
    "-- migrate: down",
    "--  migrate:down",
    "-- migrate :down",
    "-- migrate down",
    "-- migrate:down transaction:false",
    "-- migrate:down now",
    "-- migrate:downs",
    "-- migrate_down",
    "-- migration:down",
    "-- +migrate Down",
    "-- +goose Down",
    "/* migrate:down */",
    "\t--\tmigrate:down",
    "--- migrate:down",  # a third dash
    "-- @migrate:down",
    "-- Down",  # node-sqlite's section line
    "-- DOWN:",
    "-- //@UNDO",  # MyBatis migrations
    "-- rollback",
]


@pytest.mark.parametrize("marker", NEAR_MISSES)
def test_near_miss_down_marker_is_refused_naming_the_line(database: Path, folder: Path, marker: str) -> None:
    write(folder, "0002_tag.sql", f"{NEXT}-- the tags\n{marker}\nDROP TABLE note;\n")
    message = refused(database, folder, f"{folder / '0002_tag.sql'}, line 3", "Write exactly '-- migrate:down'")
    assert repr(marker.strip()) in message


@pytest.mark.parametrize("marker", ["-- migrate:down", "-- Migrate:Down", "   -- MIGRATE:DOWN   "])
def test_down_marker_in_any_case_is_understood(database: Path, folder: Path, marker: str) -> None:
    write(folder, "0002_tag.sql", f"{NEXT}{marker}\nDROP TABLE tag;\nDROP TABLE note;\n")
    before = user_data(database)
    assert selfmigrate.migrate(database, folder).current_version == 2
    assert [line for line in user_data(database) if line not in before] == ["CREATE TABLE tag (name TEXT);"]
    Runner(database, folder).rollback()
    assert not any(
        line.startswith("CREATE TABLE note") for line in user_data(database)
    )  # the down ran, on the way down


def test_node_sqlite_up_down_sections_are_refused_naming_both_spellings(database: Path, folder: Path) -> None:
    # node-sqlite's (kriasoft/node-sqlite) file shape: read as plain comments, its
    # "-- Down" section would drop the table right after creating it, recorded as applied.
    rule = "-" * 80
    write(folder, "0002_tag.sql", f"{rule}\n-- Up\n{rule}\n\n{NEXT}\n{rule}\n-- Down\n{rule}\n\nDROP TABLE note;\n")
    message = refused(database, folder, f"{folder / '0002_tag.sql'}, line 2", "Write exactly '-- migrate:up'")
    assert "'-- Up'" in message
    fixed_up = f"{rule}\n-- migrate:up\n{rule}\n{NEXT}"
    (folder / "0002_tag.sql").write_text(f"{fixed_up}{rule}\n-- Down\n{rule}\nDROP TABLE note;\n")
    assert "'-- Down'" in refused(database, folder, "line 6", "Write exactly '-- migrate:down'")


def test_prose_that_starts_with_up_or_down_stays_a_comment(database: Path, folder: Path) -> None:
    write(folder, "0002_tag.sql", f"-- Down the line: tags for notes\n-- up to 5 per note\n{NEXT}")
    before = user_data(database)
    assert selfmigrate.migrate(database, folder).current_version == 2
    assert [line for line in user_data(database) if line not in before] == ["CREATE TABLE tag (name TEXT);"]


def test_dbmate_file_is_understood(database: Path, folder: Path) -> None:
    write(folder, "0002_tag.sql", f"-- migrate:up\n{NEXT}\n-- migrate:down\nDROP TABLE tag;\n")
    before = user_data(database)
    selfmigrate.migrate(database, folder)
    assert [line for line in user_data(database) if line not in before] == ["CREATE TABLE tag (name TEXT);"]
    Runner(database, folder).rollback()
    assert user_data(database) == before


@pytest.mark.parametrize(
    "header",
    [
        "/*\n * Copyright 2026 Example Corp.\n * Licensed under the BSD licence.\n */\n-- migrate:no-transaction\n",
        "/* licence */ \n\n-- migrate:no-transaction\n",
        "-- migrate:up transaction:false\n",
        "/* licence */\n-- migrate:up transaction:false\n",
    ],
)
def test_no_transaction_marker_after_a_block_comment_header(database: Path, folder: Path, header: str) -> None:
    before = user_data(database)
    write(folder, "0002_wal.sql", f"{header}PRAGMA journal_mode = WAL;\n")
    selfmigrate.migrate(database, folder)
    conn = sqlite3.connect(database)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert user_data(database) == before


@pytest.mark.parametrize(
    "text",
    [
        "CREATE TABLE tag (name TEXT);\n-- migrate:no-transaction\nPRAGMA journal_mode = WAL;\n",
        "CREATE TABLE tag (name TEXT);\n-- migrate:down\n-- migrate:no-transaction\nDROP TABLE tag;\n",
        "CREATE TABLE tag (name TEXT);\n-- migrate:up\n",
    ],
)
def test_header_marker_after_the_first_statement_is_refused(database: Path, folder: Path, text: str) -> None:
    write(folder, "0002_late.sql", text)
    refused(database, folder, f"{folder / '0002_late.sql'}, line ", "must come before the first statement")


def test_two_down_markers_are_refused(database: Path, folder: Path) -> None:
    write(folder, "0002_two.sql", f"{NEXT}-- migrate:down\nDROP TABLE tag;\n-- migrate:down\nDROP TABLE note;\n")
    refused(database, folder, "two '-- migrate:down' lines (lines 2 and 4)")


def test_marker_inside_a_string_or_block_comment_is_text(database: Path, folder: Path) -> None:
    text = (
        "CREATE TABLE tag (name TEXT);\n/*\n-- migrate:down\nDROP TABLE note;\n*/\n"
        "INSERT INTO tag VALUES ('\n-- migrate:down\n');\n"
    )
    write(folder, "0002_text.sql", text)
    before = user_data(database)
    selfmigrate.migrate(database, folder)
    assert all(line in user_data(database) for line in before)
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT name FROM tag").fetchall() == [("\n-- migrate:down\n",)]
    conn.close()


def test_ordinary_comments_about_migrating_stay_comments(database: Path, folder: Path) -> None:
    text = (
        "-- Migrate existing rows to the new table.\n-- migrated by hand in 2024\n-- migrates: see ticket 12\n"
        "CREATE TABLE tag (name TEXT);\n"
    )
    write(folder, "0002_text.sql", text)
    assert selfmigrate.migrate(database, folder).current_version == 2


def test_cli_near_miss_marker_is_one_error_line(database: Path, folder: Path) -> None:
    write(folder, "0002_tag.sql", f"{NEXT}-- migrate: down\nDROP TABLE note;\n")
    before = dump(database)
    line = one_error_line(cli(database, folder, "apply"))
    assert "0002_tag.sql, line 2" in line and dump(database) == before


# Item 6: links, folders and permissions ---------------------------------------------------------------


def _dangling(folder: Path) -> Path:
    link = folder / "0002_tag.sql"
    link.symlink_to(folder / "nowhere.sql")
    return link


def _loop(folder: Path) -> Path:
    link = folder / "0002_tag.sql"
    (folder / "_other.sql").symlink_to(link)
    link.symlink_to(folder / "_other.sql")
    return link


def _directory(folder: Path) -> Path:
    path = folder / "0002_tag.sql"
    path.mkdir()
    return path


def _fifo(folder: Path) -> Path:
    path = folder / "0002_tag.sql"
    os.mkfifo(path)
    return path


ODD_ENTRIES = {"dangling_link": _dangling, "link_loop": _loop, "directory": _directory, "fifo": _fifo}


@pytest.mark.parametrize("make", list(ODD_ENTRIES.values()), ids=list(ODD_ENTRIES))
def test_entry_named_like_a_migration_that_is_not_a_file(database: Path, folder: Path, make: t.Any) -> None:
    # The database has a stored fingerprint: the quick check must not call it up to date.
    path = make(folder)
    refused(database, folder, str(path), "remove")
    with pytest.raises(DiscoveryError, match="0002_tag.sql"):
        _ = MigrationRegistry(folder).migrations
    line = one_error_line(cli(database, folder, "apply"))
    assert str(path) in line
    assert str(path) in one_error_line(cli(database, folder, "status"))


def test_a_link_to_a_migration_file_is_that_file(database: Path, folder: Path, tmp_path: Path) -> None:
    (tmp_path / "shared.sql").write_text(NEXT)
    (folder / "0002_tag.sql").symlink_to(tmp_path / "shared.sql")
    assert selfmigrate.migrate(database, folder).current_version == 2


PROBE = """
import json, sys, selfmigrate
try:
    selfmigrate.migrate(sys.argv[1], sys.argv[2])
    raised = None
except selfmigrate.SelfMigrateError as e:
    raised = [type(e).__name__, str(e)]
report = selfmigrate.migrate(sys.argv[1], sys.argv[2], on_failure="log")
print(json.dumps({"raised": raised, "logged": None if report.error is None else type(report.error).__name__}))
"""


@pytest.mark.parametrize(
    ("what", "fragment"),
    [
        ("folder_mode_0", "cannot be listed"),
        ("folder_not_enterable", "entering its folder is not allowed"),
        ("file_mode_0", "cannot be read"),
    ],
)
def test_unreadable_file_or_folder_is_named(what: str, fragment: str) -> None:
    with shared_folder() as shared:
        migrations = shared / "migrations"
        migrations.mkdir()
        (migrations / "0001_init.sql").write_text(INIT)
        database = shared / "app.sqlite"
        selfmigrate.migrate(database, migrations)
        (migrations / "0002_tag.sql").write_text(NEXT)
        for path in (migrations, database, *migrations.iterdir()):
            os.chown(path, os.geteuid() or 65534, os.getegid() or 65534)
        before = dump(database)
        target = migrations / "0002_tag.sql" if what == "file_mode_0" else migrations
        target.chmod({"folder_mode_0": 0, "folder_not_enterable": 0o644, "file_mode_0": 0}[what])
        try:
            probe = as_other_user([sys.executable, "-c", PROBE, str(database), str(migrations)], cwd=shared)
            command = [sys.executable, "-m", "selfmigrate", "-d", str(database), "-m", str(migrations), "apply"]
            done = as_other_user(command, cwd=shared)
        finally:
            target.chmod(0o755)
        assert probe.returncode == 0, probe.stderr
        result = json.loads(probe.stdout)
        assert result["raised"][0] == "DiscoveryError" and result["logged"] == "DiscoveryError"
        assert fragment in result["raised"][1] and str(target) in result["raised"][1]
        assert fragment in one_error_line(done)
        assert dump(database) == before


# Item 11: line numbers for every line end -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("CREATE TABLE a (x);\rINSERT INTO nope VALUES (1);\r", 2),
        ("CREATE TABLE a (x);\r\n\r\nINSERT INTO nope VALUES (1);\r\n", 3),
        ("CREATE TABLE a (x);\n\r\rINSERT INTO nope VALUES (1);\n", 4),
        # Not line ends (for editors, grep -n and Python's compiler): characters in a line.
        ("CREATE TABLE a (x); \x0c\nINSERT INTO nope VALUES (1);\n", 2),
        (
            "-- a\x0bb\x1cc\x1dd\x1ee\x85f\u2028g\u2029h\n"
            "CREATE TABLE a ('\x0c\x85\u2028');\nINSERT INTO nope VALUES (1);\n",
            3,
        ),
    ],
)
def test_error_line_for_every_line_end(database: Path, folder: Path, text: str, line: int) -> None:
    (folder / "0002_odd.sql").write_bytes(text.encode())
    refused(database, folder, f"0002_odd.sql, line {line}", "no such table: nope", error=MigrationError)


def test_down_section_line_after_a_form_feed(database: Path, folder: Path) -> None:
    (folder / "0002_odd.sql").write_bytes(f"{NEXT}\x0c\n-- migrate:down\nDROP TABLE tag;\nDROP TABLE nope;\n".encode())
    selfmigrate.migrate(database, folder)
    before = user_data(database)
    with pytest.raises(MigrationError, match="0002_odd.sql, line 5"):
        Runner(database, folder).rollback()
    assert user_data(database) == before


def test_comment_in_a_cr_only_file_hides_no_statement(database: Path, folder: Path) -> None:
    # SQLite ends a "--" comment only at \n: unnormalised, the second CREATE would be comment.
    (folder / "0002_cr.sql").write_bytes(
        b"CREATE TABLE a (x);\r-- and b\rCREATE TABLE b (x);\r-- migrate:down\rDROP TABLE b;\rDROP TABLE a;\r"
    )
    before = user_data(database)
    selfmigrate.migrate(database, folder)
    conn = sqlite3.connect(database)
    assert {"a", "b"} <= {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    Runner(database, folder).rollback()
    assert user_data(database) == before


# Item 12: version 0 -----------------------------------------------------------------------------------


def test_version_0_is_refused(database: Path, folder: Path) -> None:
    write(folder, "0000_seed.sql", "DELETE FROM note;\n")
    refused(database, folder, str(folder / "0000_seed.sql"), "version 0", "Renumber it to 1 or more")
    assert "0000_seed.sql" in one_error_line(cli(database, folder, "status"))


def test_rollback_to_0_undoes_all(folder: Path, tmp_path: Path) -> None:
    database = tmp_path / "app.sqlite"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE keep (x)")
    conn.execute("INSERT INTO keep VALUES ('mine')")
    conn.commit()
    conn.close()
    before = user_data(database)
    (folder / "0001_init.sql").write_text(f"{INIT}-- migrate:down\nDROP TABLE note;\n")
    write(folder, "0002_tag.sql", f"{NEXT}-- migrate:down\nDROP TABLE tag;\n")
    write(
        folder,
        "0003_py.py",
        "def up(conn):\n    conn.execute('CREATE TABLE p (x)')\n\ndef down(conn):\n    conn.execute('DROP TABLE p')\n",
    )
    selfmigrate.migrate(database, folder, backup=False)
    done = cli(database, folder, "rollback", "--to", "0", "--yes")
    assert done.returncode == 0, done.stderr
    assert "is at version none" in done.stdout
    runner = Runner(database, folder)
    assert runner.status().current_version is None and runner.history() == []
    assert user_data(database) == before
    again = cli(database, folder, "rollback", "--to", "0", "--yes")
    assert again.returncode == 0 and "Nothing to roll back" in again.stdout
    assert json.loads(cli(database, folder, "status", "--json").stdout)["current_version"] is None


def test_a_nul_character_is_refused_before_anything_runs(database: Path, folder: Path) -> None:
    # A UTF-16 file without a byte-order mark decodes as UTF-8 with a NUL after every
    # ASCII character; the sqlite3 module refused it only mid-run, naming no line.
    (folder / "0002_tag.sql").write_bytes(NEXT.encode() + b"\x00DROP TABLE note;\n")
    refused(database, folder, f"{folder / '0002_tag.sql'}, line 2", "NUL character", "Save it as UTF-8")
    (folder / "0002_tag.sql").write_bytes("CREATE TABLE tag (name TEXT);\n".encode("utf-16-le"))
    refused(database, folder, "line 1", "NUL character")


def test_a_relative_import_in_a_directory_of_migrations_never_reaches_selfmigrate(
    database: Path, folder: Path
) -> None:
    # Given as a directory, a migration is no package's module: "from .config import ..."
    # imported selfmigrate.config (the module was named inside selfmigrate).
    write(folder, "0002_tag.py", "from .config import Options\n\ndef up(conn):\n    conn.execute('DROP TABLE note')\n")
    message = refused(database, folder, f"{folder / '0002_tag.py'}, line 1", "attempted relative import")
    assert "given as a package name" in message


@pytest.mark.parametrize("line", ["-- -- migrate:down", "-- -- Down", "--   -- migrate:no-transaction"])
def test_a_marker_commented_out_is_a_plain_comment(database: Path, folder: Path, line: str) -> None:
    # The .sql template shows "-- -- migrate:down" as an example: the filled-in file must apply.
    write(folder, "0002_tag.sql", f"{NEXT}-- To undo it:\n{line}\n-- DROP TABLE tag;\n")
    before = user_data(database)
    assert selfmigrate.migrate(database, folder).current_version == 2
    assert [line for line in user_data(database) if line not in before] == ["CREATE TABLE tag (name TEXT);"]


# An empty down section (dbmate's template leaves "-- migrate:down" with nothing after it) --------

EMPTY_DOWNS = ["-- migrate:down\n", "-- migrate:down\n\n-- nothing to undo\n;\n"]


@pytest.mark.parametrize("down", EMPTY_DOWNS, ids=["blank", "comment-only"])
def test_an_empty_down_section_is_no_down_and_rollback_refuses(database: Path, folder: Path, down: str) -> None:
    # Taken as a down, it "rolled back" nothing and removed the row: the next start then
    # failed on "table tag already exists".
    write(folder, "0002_tag.sql", f"-- migrate:up\n{NEXT}\n{down}")
    selfmigrate.migrate(database, folder)
    before = dump(database)
    with pytest.raises(selfmigrate.ConfigError) as info:
        Runner(database, folder).rollback()
    message = str(info.value)
    assert "0002_tag" in message and "no statement follows it" in message and "SELECT 1;" in message
    assert dump(database) == before
    done = cli(database, folder, "status", "--json")
    assert [m["down"] for m in json.loads(done.stdout)["migrations"]] == ["none", "none"]


def test_an_empty_down_stored_by_an_older_release_is_refused_too(database: Path, folder: Path) -> None:
    # The tracker of a database migrated before this fix holds the empty text as the down;
    # the file is gone (an older image): the stored copy must not "undo" either.
    write(folder, "0002_tag.sql", f"{NEXT}-- migrate:down\nDROP TABLE tag;\n")
    selfmigrate.migrate(database, folder)
    conn = sqlite3.connect(database)
    empty = "\n-- nothing\n"
    stored = checksum(empty.encode())
    conn.execute(
        "UPDATE schema_migrations_rollback SET down_script = ?, down_checksum = ? WHERE version = 2", (empty, stored)
    )
    conn.commit()
    conn.close()
    (folder / "0002_tag.sql").unlink()
    before = dump(database)
    with pytest.raises(selfmigrate.ConfigError, match="no statement follows it"):
        Runner(database, folder).rollback()
    assert dump(database) == before


def test_a_golang_migrate_pair_is_refused_saying_how_to_merge_it(database: Path, folder: Path) -> None:
    write(folder, "000002_tag.up.sql", NEXT)
    write(folder, "000002_tag.down.sql", "DROP TABLE note;\n")
    message = refused(database, folder, "000002_tag.up.sql", "000002_tag.down.sql", "naming rule")
    assert "then a line '-- migrate:down' and the down" in message
