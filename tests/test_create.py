"""Writing new migrations: selfmigrate.create() and `python -m selfmigrate create`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

import selfmigrate
from selfmigrate import ConfigError, DiscoveryError, MigrationError
from selfmigrate.ops.create import MAX_SLUG_LENGTH, slugify

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory


@pytest.mark.parametrize(
    ("message", "slug"),
    [
        ("add user avatar column", "add_user_avatar_column"),
        ("  Add User-Avatar column!! ", "add_user_avatar_column"),
        ("rename café to crème", "rename_cafe_to_creme"),
        ("v2: index on (name, id)", "v2_index_on_name_id"),
        ("../../etc/passwd", "etc_passwd"),
        ("a\\b/c\x00d", "a_b_c_d"),
    ],
)
def test_slugify(message: str, slug: str) -> None:
    assert slugify(message) == slug


def test_long_messages_are_cut_without_a_trailing_underscore() -> None:
    slug = slugify("word " * 40)
    assert len(slug) <= MAX_SLUG_LENGTH and not slug.endswith("_") and slug.startswith("word_word")


@pytest.mark.parametrize("message", ["", "   ", "!!!", "../..", "日本語", "\n"])
def test_messages_that_give_no_file_name_are_refused(message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty file name"):
        selfmigrate.create(tmp_path / "migrations", message)
    assert not (tmp_path / "migrations").exists()


def test_first_migration_and_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "app" / "migrations"
    path = selfmigrate.create(folder, "create saved search")
    assert path == folder / "0001_create_saved_search.py"
    text = path.read_text()
    assert text.startswith('"""create saved search')
    assert "def up(conn):" in text and "commit" in text


def test_next_number_is_one_more_than_the_highest(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations({"0001_a.sql": "SELECT 1;", "0007_b.sql": "SELECT 7;"}, package=False)
    path = selfmigrate.create(folder, "add user avatar column", sql=True)
    assert path == Path(folder) / "0008_add_user_avatar_column.sql"
    assert selfmigrate.create(folder, "next").name == "0009_next.py"


def test_versions_above_four_digits_are_kept(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations({"12345_big.sql": "SELECT 1;"}, package=False)
    assert selfmigrate.create(folder, "bigger").name == "12346_bigger.py"


def test_into_a_package_on_disk(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"0001_a.sql": "SELECT 1;"})
    path = selfmigrate.create(location, "second")
    folder = Path(selfmigrate.MigrationRegistry(location).locations[0].root)  # type: ignore[arg-type]
    assert path == folder / "0002_second.py"


def test_no_path_traversal(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "migrations"
    path = selfmigrate.create(folder, "../../../escape")
    assert path.parent == folder and path.name == "0001_escape.py"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    selfmigrate.create(folder, "first")
    (folder / "0002_taken.py").write_text("def up(conn):\n    pass\n")
    path = selfmigrate.create(folder, "taken")
    assert path.name == "0003_taken.py"
    assert (folder / "0002_taken.py").read_text() == "def up(conn):\n    pass\n"


def test_bad_files_in_the_folder_stop_create(make_migrations: MigrationsFactory) -> None:
    folder = make_migrations({"0001_a.sql": "SELECT 1;", "oops.sql": "SELECT 2;"}, package=False)
    with pytest.raises(DiscoveryError, match="oops.sql"):
        selfmigrate.create(folder, "next")
    assert sorted(os.listdir(folder)) == ["0001_a.sql", "oops.sql"]


@pytest.mark.parametrize("sql", [False, True], ids=["py", "sql"])
def test_an_unedited_template_fails_loudly_and_is_not_recorded(tmp_path: Path, sql: bool) -> None:
    folder = tmp_path / "migrations"
    selfmigrate.create(folder, "forgot to write this", sql=sql)
    database = tmp_path / "app.sqlite"
    with pytest.raises((MigrationError, DiscoveryError)) as info:
        selfmigrate.migrate(database, folder)
    assert "0001_forgot_to_write_this" in str(info.value)
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    conn.close()


@pytest.mark.parametrize("sql", [False, True], ids=["py", "sql"])
def test_an_unedited_template_is_refused_before_the_migrations_pending_before_it(tmp_path: Path, sql: bool) -> None:
    from helpers import dump

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_items.sql").write_text("CREATE TABLE items (id INTEGER PRIMARY KEY);\n")
    database = tmp_path / "app.sqlite"
    selfmigrate.migrate(database, folder)
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO items VALUES (7)")
    conn.close()
    (folder / "0002_tags.sql").write_text("CREATE TABLE tags (id INTEGER PRIMARY KEY);\n")
    created = selfmigrate.create(folder, "forgot to write this", sql=sql)
    before = dump(database)
    with pytest.raises(DiscoveryError) as info:
        selfmigrate.migrate(database, folder)
    assert str(created) in str(info.value)
    assert dump(database) == before  # 0002 was not applied either


def test_a_py_migration_keeping_the_template_line_behind_a_condition_applies(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    path = selfmigrate.create(folder, "guarded")
    text = path.read_text()
    placeholder = 'raise NotImplementedError("write this migration\'s up()")'
    text = text.replace(
        placeholder, f"if conn.in_transaction is None:\n        {placeholder}\n    conn.execute('CREATE TABLE t (x)')"
    )
    path.write_text(text)
    database = tmp_path / "app.sqlite"
    report = selfmigrate.migrate(database, folder)
    assert [r.version for r in report.applied] == [1]


@pytest.mark.parametrize("sql", [False, True], ids=["py", "sql"])
def test_a_filled_in_template_applies(tmp_path: Path, sql: bool) -> None:
    folder = tmp_path / "migrations"
    path = selfmigrate.create(folder, 'add "notes" table, see C:\\New\\Notes', sql=sql)
    text = path.read_text()
    if sql:
        text = text.replace("\n\n\n\n", "\nCREATE TABLE notes (body TEXT);\n\n\n", 1)
    else:
        placeholder = 'raise NotImplementedError("write this migration\'s up()")'
        text = text.replace(placeholder, "conn.execute('CREATE TABLE notes (body TEXT)')")
    path.write_text(text)
    database = tmp_path / "app.sqlite"
    report = selfmigrate.migrate(database, folder)
    assert [r.version for r in report.applied] == [1]
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'notes'").fetchall() == [("notes",)]
    conn.close()


def test_python_template_keeps_an_odd_message_as_its_docstring(tmp_path: Path) -> None:
    message = 'say """hi""" to C:\\New\\Notes'
    path = selfmigrate.create(tmp_path / "migrations", message)
    namespace: dict[str, t.Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    assert namespace["__doc__"].splitlines()[0] == message


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfmigrate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_cli_create(tmp_path: Path) -> None:
    result = run_cli("--migrations", "mig", "create", "add user avatar column", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os.path.join("mig", "0001_add_user_avatar_column.py")
    assert (tmp_path / "mig" / "0001_add_user_avatar_column.py").is_file()

    result = run_cli("--migrations", "mig", "create", "--sql", "add index", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mig" / "0002_add_index.sql").is_file()
    assert "Traceback" not in result.stderr


def test_cli_create_takes_the_location_after_the_command_too(tmp_path: Path) -> None:
    # The form the issue shows: the option on the command, overriding the group's.
    result = run_cli(
        "--migrations", "ignored", "create", "add user avatar column", "--migrations", "mig", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mig" / "0001_add_user_avatar_column.py").is_file()
    assert not (tmp_path / "ignored").exists()


def test_cli_create_default_folder_and_environment(tmp_path: Path) -> None:
    # Nothing configured and no ./migrations: no folder that nothing reads is made.
    result = run_cli("create", "first", cwd=tmp_path, env={"SELFMIGRATE_MIGRATIONS": ""})
    assert result.returncode == ConfigError.exit_code
    assert result.stderr.startswith("Error: No migrations location is configured")
    assert "[tool.selfmigrate]" in result.stderr and "flask selfmigrate create" in result.stderr
    assert list(tmp_path.iterdir()) == []
    # An existing ./migrations folder is the default.
    (tmp_path / "migrations").mkdir()
    result = run_cli("create", "first", cwd=tmp_path, env={"SELFMIGRATE_MIGRATIONS": ""})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "migrations" / "0001_first.py").is_file()
    assert not (tmp_path / "migrations" / "__init__.py").exists()  # a top-level folder stays a folder
    result = run_cli("create", "second", cwd=tmp_path, env={"SELFMIGRATE_MIGRATIONS": "other"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "other" / "0001_second.py").is_file()


def test_cli_create_refuses_an_empty_message_without_a_traceback(tmp_path: Path) -> None:
    result = run_cli("create", "!!!", cwd=tmp_path, env={"SELFMIGRATE_MIGRATIONS": ""})
    assert result.returncode == ConfigError.exit_code
    assert "empty file name" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
