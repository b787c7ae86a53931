"""Discovery: finding, name-checking, merging and checksumming migration files."""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

import pytest
from helpers import as_other_user, shared_folder

from selfmigrate import DiscoveryError, MigrationRegistry
from selfmigrate.core.locations import resolve_location

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory


def discover(locations: t.Any) -> tuple[t.Any, ...]:
    return MigrationRegistry(locations).migrations


def ids(registry: MigrationRegistry) -> list[str]:
    return [m.id for m in registry.migrations]


def test_package_and_directory_are_found_sorted_by_version(make_migrations: MigrationsFactory) -> None:
    files = {
        "0010_ten.sql": "SELECT 10;",
        "0002_two.py": "def up(conn):\n    pass\n",
        "0001_one.sql": "SELECT 1;",
    }
    for location in (make_migrations(files), make_migrations(files, package=False)):
        registry = MigrationRegistry(location)
        assert ids(registry) == ["0001_one", "0002_two", "0010_ten"]
        assert [m.kind for m in registry.migrations] == ["sql", "py", "sql"]
        assert registry.head == 10
        assert registry.get(2) is not None and registry.get(3) is None


def test_helpers_init_and_hidden_files_are_skipped(make_migrations: MigrationsFactory) -> None:
    location = make_migrations(
        {
            "0001_one.sql": "SELECT 1;",
            "_helpers.py": "X = 1\n",
            "_template.sql": "-- not a migration\n",
            ".#0002_editor_lock.sql": "junk",
            "README.md": "notes",
            "data.json": "{}",
        }
    )
    assert ids(MigrationRegistry(location)) == ["0001_one"]
    # A folder named like a migration is not skipped in silence (nor is a dangling link:
    # tests/test_hostile_files.py): it is most likely a mistake that hides a migration.
    folder = Path(MigrationRegistry(location).locations[0].root)  # type: ignore[arg-type]
    (folder / "0003_subfolder.sql").mkdir()
    with pytest.raises(DiscoveryError, match="0003_subfolder.sql is named like a migration but is a directory"):
        _ = MigrationRegistry(location).migrations


def test_versions_need_not_have_four_digits(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"1_a.sql": "SELECT 1;", "20261124_b.sql": "SELECT 2;"}, package=False)
    assert [m.version for m in MigrationRegistry(location).migrations] == [1, 20261124]


def test_bad_names_are_listed_together(make_migrations: MigrationsFactory) -> None:
    location = make_migrations(
        {
            "0001_ok.sql": "SELECT 1;",
            "add_users.sql": "SELECT 2;",
            "0002-dash.sql": "SELECT 3;",
            "0003_has space.py": "def up(conn):\n    pass\n",
            "0004_.sql": "SELECT 4;",
            "0005_upper.SQL": "SELECT 5;",
        },
        package=False,
    )
    with pytest.raises(DiscoveryError) as info:
        discover(location)
    message = str(info.value)
    names = ("0002-dash.sql", "0003_has space.py", "0004_.sql", "0005_upper.SQL", "add_users.sql")
    bad = [os.path.join(location, n) for n in names]
    for path in bad:
        assert path in message
    assert "0001_ok.sql" not in message
    assert sorted(info.value.paths) == sorted(bad)
    assert "NNNN_slug" in message


def test_duplicate_versions_across_two_sources_name_both_files(make_migrations: MigrationsFactory) -> None:
    first = make_migrations({"0001_init.sql": "SELECT 1;", "0002_from_branch_a.sql": "SELECT 2;"})
    second = make_migrations({"0002_from_branch_b.py": "def up(conn):\n    pass\n"}, package=False)
    with pytest.raises(DiscoveryError) as info:
        discover([first, second])
    message = str(info.value)
    assert "0002_from_branch_a.sql" in message
    assert os.path.join(second, "0002_from_branch_b.py") in message
    assert "version 2" in message and "Renumber" in message
    assert len(info.value.paths) == 2


def test_duplicate_versions_in_one_folder(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"0001_a.sql": "SELECT 1;", "001_b.py": "def up(conn):\n    pass\n"}, package=False)
    with pytest.raises(DiscoveryError) as info:
        discover(location)
    assert "0001_a.sql" in str(info.value) and "001_b.py" in str(info.value)


def test_several_sources_are_merged(make_migrations: MigrationsFactory) -> None:
    core = make_migrations({"0001_core.sql": "SELECT 1;", "0003_core_more.sql": "SELECT 3;"})
    plugin = make_migrations({"0002_plugin.py": "def up(conn):\n    pass\n"}, package=False)
    registry = MigrationRegistry([core, Path(plugin)])
    assert ids(registry) == ["0001_core", "0002_plugin", "0003_core_more"]
    assert [loc.kind for loc in registry.locations] == ["package", "directory"]
    assert registry.migrations[0].package == core and registry.migrations[1].package is None


def test_undecodable_file_is_named(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"0001_ok.sql": "SELECT 1;"}, package=False)
    bad = Path(location) / "0002_latin1.sql"
    bad.write_bytes("INSERT INTO t VALUES ('caf\xe9');".encode("latin-1"))
    # Discovery reads no file (a no-op start must not); the text is decoded when
    # the migration is loaded to run, before anything is applied.
    migration = [m for m in discover(location) if m.version == 2][0]
    with pytest.raises(DiscoveryError) as info:
        migration.load()
    assert str(bad) in str(info.value) and "UTF-8" in str(info.value)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX file permissions")
def test_unreadable_file_is_named() -> None:
    # Root reads any file: the check runs as another user (see helpers.as_other_user).
    probe = """
import sys
from selfmigrate import DiscoveryError, MigrationRegistry
registry = MigrationRegistry(sys.argv[1])
assert [m.id for m in registry.migrations] == ["0001_secret"]  # listing needs no read permission
try:
    registry.migrations[0].checksum
except DiscoveryError as e:
    print(e)
"""
    with shared_folder() as shared:
        path = shared / "0001_secret.sql"
        path.write_text("SELECT 1;")
        path.chmod(0)
        done = as_other_user([sys.executable, "-c", probe, str(shared)])
    assert done.returncode == 0, done.stderr
    assert str(path) in done.stdout and "cannot be read" in done.stdout


def test_missing_locations(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError) as info:
        discover(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "does not exist" in str(info.value)

    (tmp_path / "file").write_text("")
    with pytest.raises(DiscoveryError, match="is not a directory"):
        discover(str(tmp_path / "file"))

    with pytest.raises(DiscoveryError) as info:
        discover("no_such_package_xyz.migrations")
    assert "no_such_package_xyz.migrations" in str(info.value)
    assert "neither an importable package nor a directory" in str(info.value)

    with pytest.raises(DiscoveryError, match="No migrations location"):
        MigrationRegistry([])


def test_a_module_is_not_a_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain_module_xyz.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DiscoveryError) as info:
        discover("plain_module_xyz")
    assert "plain_module_xyz" in str(info.value) and "not a package" in str(info.value)


def test_location_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "migrations").mkdir()
    monkeypatch.chdir(tmp_path)
    # An existing folder without a package of that name is a directory.
    assert resolve_location("migrations").kind == "directory"
    assert resolve_location("./migrations").kind == "directory"
    assert resolve_location(tmp_path / "migrations").kind == "directory"
    assert resolve_location("selfmigrate.templates").kind == "package"
    # Also when the working directory is on sys.path, where the folder is a namespace package too.
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_location("migrations").kind == "directory"
    assert resolve_location("migrations").root == Path("migrations")


@pytest.mark.parametrize(
    "spelling",
    [
        "migrations",
        "migrations/",
        "./migrations",
        "migrations//",
        "./migrations/./",
        "sub/../migrations",
        "{abs}",
        "{abs}/",
        "/{abs}",
    ],
)
def test_a_directory_location_is_named_as_pathlib_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    # Its folder is kept as text (no pathlib import on a start): the same text as str(Path(...)).
    (tmp_path / "migrations").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    spec = spelling.format(abs=tmp_path / "migrations")
    location = resolve_location(spec)
    assert location.kind == "directory"
    assert location.name == location.folder == str(Path(spec))
    assert location.root == location.path == Path(spec)


def test_discovery_imports_no_migration_module(make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    location = make_migrations(
        {"0001_a.py": f"open({str(marker)!r}, 'w').close()\nraise SystemExit('imported!')\n\ndef up(conn):\n    pass\n"}
    )
    registry = MigrationRegistry(location)
    assert ids(registry) == ["0001_a"]
    assert not marker.exists()
    assert not [m for m in sys.modules if m.startswith(f"{location}.")]


def test_checksum_is_of_the_file_bytes(make_migrations: MigrationsFactory) -> None:
    import hashlib

    location = make_migrations({"0001_a.sql": "SELECT 1;\n"}, package=False)
    (migration,) = MigrationRegistry(location).migrations
    assert migration.checksum == hashlib.sha256(b"SELECT 1;\n").hexdigest()


def test_discovery_result_is_kept(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"0001_a.sql": "SELECT 1;"}, package=False)
    registry = MigrationRegistry(location)
    first = registry.migrations
    (Path(location) / "0002_b.sql").write_text("SELECT 2;")
    assert registry.migrations is first
    assert ids(MigrationRegistry(location)) == ["0001_a", "0002_b"]


def test_migrations_folder_without_init_is_found_as_a_namespace_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forgotten migrations/__init__.py must not make the migrations vanish."""
    package = tmp_path / "nsapp_xyz"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "migrations" / "0001_a.sql").write_text("SELECT 1;")
    (package / "migrations" / "0002_b.py").write_text("def up(conn):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = MigrationRegistry("nsapp_xyz.migrations")
    assert ids(registry) == ["0001_a", "0002_b"]
    assert registry.migrations[0].location == str(package / "migrations" / "0001_a.sql")
    for module in [m for m in sys.modules if m.startswith("nsapp_xyz")]:
        monkeypatch.delitem(sys.modules, module)


def test_a_version_too_large_for_the_database_is_named(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"9223372036854775807_max.sql": "SELECT 1;"}, package=False)
    assert [m.version for m in MigrationRegistry(location).migrations] == [2**63 - 1]
    (Path(location) / "9223372036854775808_over.sql").write_text("SELECT 2;")
    with pytest.raises(DiscoveryError) as info:
        discover(location)
    assert "9223372036854775808_over.sql" in str(info.value) and "Renumber" in str(info.value)
