"""Migration values: checksums, loading .sql (up/down) and .py bodies."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest

from selfmigrate import DiscoveryError, Migration, MigrationRegistry
from selfmigrate.core.migration import DOWN_MARKER, checksum, decode

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory


def only(location: str) -> Migration:
    (migration,) = MigrationRegistry(location).migrations
    return migration


def test_checksum_normalises_line_endings() -> None:
    lf = b"CREATE TABLE a (x);\nINSERT INTO a VALUES (1);\n"
    assert checksum(lf) == checksum(lf.replace(b"\n", b"\r\n")) == checksum(lf.replace(b"\n", b"\r"))
    assert checksum(lf) != checksum(lf + b"\n")
    assert checksum(lf) != checksum(lf.replace(b"1", b"2"))
    assert len(checksum(lf)) == 64


def test_checksum_of_crlf_file_matches_lf_file(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    a = make_migrations({"0001_a.sql": "CREATE TABLE a (x);\n"}, package=False)
    b = make_migrations({"0001_a.sql": "CREATE TABLE a (x);\n"}, package=False)
    (Path(b) / "0001_a.sql").write_bytes(b"CREATE TABLE a (x);\r\n")
    assert only(a).checksum == only(b).checksum


def test_decode_drops_a_bom_and_names_an_undecodable_file() -> None:
    assert decode("\ufeffSELECT 1;".encode(), "x.sql") == "SELECT 1;"
    with pytest.raises(DiscoveryError) as info:
        decode(b"SELECT '\xff';", "/m/0001_x.sql")
    assert "/m/0001_x.sql" in str(info.value) and "UTF-8" in str(info.value)
    assert info.value.paths == ("/m/0001_x.sql",)


def test_sql_without_down(make_migrations: MigrationsFactory) -> None:
    loaded = only(make_migrations({"0001_a.sql": "CREATE TABLE a (x);\n"})).load()
    assert loaded.up_sql is not None and loaded.up_sql.text == "CREATE TABLE a (x);\n"
    assert loaded.up_sql.first_line == 1
    assert loaded.down_sql is None and not loaded.has_down


def test_sql_down_marker_splits_up_and_down_with_lines(make_migrations: MigrationsFactory) -> None:
    text = "-- add a column\nALTER TABLE a ADD COLUMN y;\n\n-- Migrate:Down  \nALTER TABLE a DROP COLUMN y;\n"
    loaded = only(make_migrations({"0002_y.sql": text})).load()
    assert loaded.up_sql is not None and loaded.down_sql is not None and loaded.has_down
    assert loaded.up_sql.text == "-- add a column\nALTER TABLE a ADD COLUMN y;\n\n"
    assert loaded.down_sql.text == "ALTER TABLE a DROP COLUMN y;\n"
    assert (loaded.up_sql.first_line, loaded.down_sql.first_line) == (1, 5)
    assert DOWN_MARKER == "-- migrate:down"


def test_marker_must_be_alone_on_its_line(make_migrations: MigrationsFactory) -> None:
    # Not a marker, and not a plain comment either: each is an error naming the line.
    for text, line in [("SELECT 1; -- migrate:down\nSELECT 2;\n", 1), ("SELECT 1;\n-- migrate:downs\nSELECT 2;\n", 2)]:
        with pytest.raises(DiscoveryError, match=f"0001_a.sql, line {line}: .*Write exactly '-- migrate:down'"):
            only(make_migrations({"0001_a.sql": text})).load()


def test_python_migration_with_up_and_down(make_migrations: MigrationsFactory) -> None:
    location = make_migrations(
        {
            "0001_a.py": """
                from . import _helpers

                def up(conn):
                    return _helpers.VALUE

                def down(conn):
                    return "down"
            """,
            "_helpers.py": "VALUE = 'helped'\n",
        }
    )
    migration = only(location)
    loaded = migration.load()
    assert loaded.up_function is not None and loaded.down_function is not None
    assert loaded.up_function(None) == "helped"  # type: ignore[arg-type]
    assert loaded.has_down
    # Executed from the checksummed text, never cached as a module.
    assert f"{location}.0001_a" not in sys.modules


def test_python_migration_runs_the_current_text(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"0001_a.py": "def up(conn):\n    return 1\n"})
    first = only(location).load()
    path = Path(only(location).location)
    path.write_text("def up(conn):\n    return 2\n")
    second = only(location).load()
    assert first.up_function is not None and second.up_function is not None
    assert (first.up_function(None), second.up_function(None)) == (1, 2)  # type: ignore[arg-type]


def test_python_migration_bytecode_cache_holds_only_the_code_of_the_bytes_checksummed(
    make_migrations: MigrationsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    location = make_migrations({"0001_a.py": "def up(conn):\n    return 1\n"})
    path = Path(only(location).location)
    cached = [p for p in (path.parent / "__pycache__").glob("0001_a.*.pyc") if "opt-selfmigrate" in p.name]
    assert cached == []
    first = only(location).load()
    (cache,) = [p for p in (path.parent / "__pycache__").glob("0001_a.*opt-selfmigrate.pyc")]
    assert first.up_function is not None and first.up_function(None) == 1  # type: ignore[arg-type]
    assert only(location).load().up_function(None) == 1  # type: ignore[arg-type, misc]
    # The same size and modification time (what a timestamp-checked .pyc trusts): the
    # cache is not used, the new text runs, and the cache now holds it.
    stat = path.stat()
    path.write_text("def up(conn):\n    return 2\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = only(location).load()
    assert second.up_function is not None and second.up_function(None) == 2  # type: ignore[arg-type]
    # A damaged cache file is compiled again, never run.
    cache.write_bytes(cache.read_bytes()[:-8])
    assert only(location).load().up_function(None) == 2  # type: ignore[arg-type, misc]
    # The cache of a file at another place (a copied tree) is not taken for this one.
    other = make_migrations({"0001_a.py": "def up(conn):\n    return 3\n"})
    other_path = Path(only(other).location)
    (other_path.parent / "__pycache__").mkdir(exist_ok=True)
    (other_path.parent / "__pycache__" / cache.name).write_bytes(cache.read_bytes())
    assert only(other).load().up_function(None) == 3  # type: ignore[arg-type, misc]


def test_python_migration_bytecode_cache_is_skipped_in_a_read_only_folder() -> None:
    import os
    import subprocess

    from helpers import as_other_user, shared_folder

    with shared_folder() as shared:
        folder = shared / "migrations"
        (folder / "__pycache__").mkdir(parents=True)
        (folder / "0001_a.py").write_text("def up(conn):\n    conn.execute('CREATE TABLE a (id INTEGER)')\n")
        (folder / "__pycache__").chmod(0o555)
        folder.chmod(0o555)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        code = "import sys, selfmigrate; selfmigrate.migrate(sys.argv[1], sys.argv[2], backup=False)"
        result = as_other_user([sys.executable, "-c", code, str(shared / "app.sqlite"), str(folder)], env=env)
        assert result.returncode == 0, result.stderr
        assert not [p.name for p in (folder / "__pycache__").iterdir()]
        listed = subprocess.run(
            [sys.executable, "-m", "selfmigrate", "-d", str(shared / "app.sqlite"), "-m", str(folder), "status"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "0001_a" in listed.stdout


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def upgrade(conn):\n    pass\n", "has no up(conn) function"),
        ("up = 3\n", "has no up(conn) function"),
        ("def up(conn):\n    pass\n\ndown = 'x'\n", "defines 'down' but it is not a function"),
        ("import no_such_module_anywhere\n\ndef up(conn):\n    pass\n", ", line 1 cannot be imported"),
        ("def up(conn):\n    pass\n\n\ndef broken(:\n", ", line 5 cannot be imported: SyntaxError"),
        ("\n\n", "is empty"),
    ],
    ids=["no-up", "up-not-callable", "down-not-callable", "import-error", "syntax-error", "empty"],
)
def test_bad_python_migration_is_refused_at_load_naming_the_file(
    make_migrations: MigrationsFactory, body: str, expected: str
) -> None:
    migration = only(make_migrations({"0001_bad.py": body}))
    with pytest.raises(DiscoveryError) as info:
        migration.load()
    assert f"{migration.location}" in str(info.value)
    assert expected in str(info.value)
    assert info.value.paths == (migration.location,)


def test_empty_sql_file_is_refused_at_load(make_migrations: MigrationsFactory) -> None:
    migration = only(make_migrations({"0001_blank.sql": "  \n\n"}))
    with pytest.raises(DiscoveryError, match="is empty"):
        migration.load()


@pytest.mark.parametrize(
    "text",
    [
        "-- only a comment\n/* and another; */\n",
        ";\n",
        "-- nothing to do up\n-- migrate:down\nDROP TABLE t;\n",
    ],
    ids=["comments", "semicolon", "down-only"],
)
def test_sql_file_without_an_up_statement_is_refused_at_load(make_migrations: MigrationsFactory, text: str) -> None:
    migration = only(make_migrations({"0001_nothing.sql": text}))
    with pytest.raises(DiscoveryError) as info:
        migration.load()
    assert migration.location in str(info.value) and "no SQL statement" in str(info.value)


def test_file_changed_after_discovery_is_refused(make_migrations: MigrationsFactory) -> None:
    migration = only(make_migrations({"0001_a.sql": "SELECT 1;\n"}))
    assert migration.checksum  # the runner compares checksums before it loads anything
    Path(migration.location).write_text("SELECT 2;\n")
    with pytest.raises(DiscoveryError, match="changed while selfmigrate was running"):
        migration.load()


def test_file_deleted_after_discovery_is_refused(make_migrations: MigrationsFactory) -> None:
    migration = only(make_migrations({"0001_a.sql": "SELECT 1;\n"}))
    Path(migration.location).unlink()
    with pytest.raises(DiscoveryError, match="cannot be read"):
        migration.load()


def test_migration_identity(make_migrations: MigrationsFactory) -> None:
    migration = only(make_migrations({"0042_add_thing.sql": "SELECT 1;\n"}))
    assert (migration.version, migration.name, migration.kind) == (42, "add_thing", "sql")
    assert (migration.id, migration.filename) == ("0042_add_thing", "0042_add_thing.sql")
