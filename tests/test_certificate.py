"""A migration added to a certified tree: the compact certificate, the quick check's listing
reused by discovery, and the guarantees both keep (issue 10, round 3)."""

from __future__ import annotations

import logging
import os
import typing as t
from pathlib import Path

import pytest
from helpers import connected, dump

import selfmigrate
from selfmigrate import ChecksumMismatch, DiscoveryError, MigrationRegistry, Runner
from selfmigrate.core import fingerprint
from selfmigrate.core.fingerprint import Certified, Files, Key, examine_all, quick_digest, read_certificate
from selfmigrate.core.registry import versions_of

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

FILES = {
    "0001_note.sql": "CREATE TABLE note (body TEXT);\n",
    "0002_seed.py": "def up(conn):\n    conn.execute(\"INSERT INTO note VALUES ('kept')\")\n",
    "0003_more.sql": "INSERT INTO note VALUES ('more');\n",
}
ADDED = ("0004_last.sql", "INSERT INTO note VALUES ('last');\n")


def files_read(runner: Runner) -> list[str]:
    """The migrations whose checksum the runner read from disk."""
    return [m.filename for m in runner.registry.migrations if "checksum" in m.__dict__]


def stored_certificate(db: Path) -> str:
    with connected(db) as conn:
        (text,) = conn.execute("SELECT fingerprint FROM schema_migrations_fingerprint WHERE id = 2").fetchone()
    return str(text)


def store_certificate(db: Path, text: str) -> None:
    with connected(db) as conn:
        conn.execute("UPDATE schema_migrations_fingerprint SET fingerprint = ? WHERE id = 2", (text,))


def key_text_as_before(db: Path, folder: str) -> str:
    """Row 2 as releases before the compact certificate stored it: the key's whole text."""
    with connected(db) as conn:
        rows = conn.execute("SELECT version, checksum, state FROM schema_migrations ORDER BY version").fetchall()
    return fingerprint.fingerprint_key(fingerprint.fingerprint([folder]), rows)


def edit_keeping_size_and_mtime(path: Path, text: str) -> None:
    """Rewrite ``path`` with ``text`` of the same length and put its mtime back (the ctime moves on)."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.fixture
def folder(make_migrations: MigrationsFactory, db_path: Path) -> str:
    """A plain folder of FILES, applied to ``db_path`` and certified."""
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    return location


# --- the stored certificate ------------------------------------------------------------------


def test_a_run_stores_the_compact_certificate_and_reads_only_the_new_file(folder: str, db_path: Path) -> None:
    assert stored_certificate(db_path).startswith("selfmigrate certificate 1, ")
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    runner = Runner(db_path, folder)
    assert [r.version for r in runner.apply().applied] == [4]
    assert files_read(runner) == [ADDED[0]]


def test_the_certificate_reads_back_what_the_key_was_made_of(folder: str, db_path: Path) -> None:
    files = MigrationRegistry(folder).files()
    assert files is not None
    key = Key(files, "1 2 3", "a\nb\nc", "applied\napplied\napplied")
    certificate = read_certificate(key.certificate())
    assert certificate is not None
    ((path, names, numbers),) = files.folders
    assert certificate.folders == {path: (names, fingerprint._packed(numbers))}
    assert certificate.rows() == {1: "a", 2: "b", 3: "c"}
    # The key's digest is the one the quick check computes for the same files and rows.
    assert key.digest() == quick_digest([folder], key.versions, key.checksums, key.states)
    assert key.digest() == fingerprint.digest(key.text())


def test_a_key_text_stored_by_an_older_release_is_still_read(folder: str, db_path: Path) -> None:
    store_certificate(db_path, key_text_as_before(db_path, folder))
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    runner = Runner(db_path, folder)
    assert [r.version for r in runner.apply().applied] == [4]
    assert files_read(runner) == [ADDED[0]]  # the old text still certifies the other three
    assert stored_certificate(db_path).startswith("selfmigrate certificate 1, ")  # stored anew, compact


def test_an_edit_next_to_an_added_file_is_caught_with_an_old_key_text(folder: str, db_path: Path) -> None:
    store_certificate(db_path, key_text_as_before(db_path, folder))
    edit_keeping_size_and_mtime(Path(folder) / "0002_seed.py", FILES["0002_seed.py"].replace("kept", "lost"))
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    before = dump(db_path)
    with pytest.raises(ChecksumMismatch, match="0002_seed.py"):
        Runner(db_path, folder).apply()
    assert dump(db_path) == before


@pytest.mark.parametrize("through", ["runner", "migrate"])
def test_an_edit_next_to_an_added_file_is_caught(folder: str, db_path: Path, through: str) -> None:
    edit_keeping_size_and_mtime(Path(folder) / "0003_more.sql", FILES["0003_more.sql"].replace("more", "less"))
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    before = dump(db_path)
    with pytest.raises(ChecksumMismatch, match="0003_more.sql"):
        if through == "runner":
            Runner(db_path, folder).apply()
        else:
            selfmigrate.migrate(db_path, folder)
    assert dump(db_path) == before


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[:-10],  # cut short
        lambda text: text.replace("selfmigrate certificate 1", "selfmigrate certificate 9"),  # another format
        lambda text: text.replace(":", "x", 3),  # a broken length
        lambda text: text + "5:extra",  # more than it says
        lambda text: "not a certificate",
    ],
)
def test_a_damaged_certificate_certifies_nothing(
    folder: str, db_path: Path, damage: t.Callable[[str], str]
) -> None:
    store_certificate(db_path, damage(stored_certificate(db_path)))
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    runner = Runner(db_path, folder)
    assert [r.version for r in runner.apply().applied] == [4]
    assert sorted(files_read(runner)) == [*sorted(FILES), ADDED[0]]  # every file read: nothing missed


def test_a_row_changed_since_the_certificate_is_read_again(folder: str, db_path: Path) -> None:
    # The file is as certified, but the tracker's checksum for it is not the certified one.
    with connected(db_path) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 2")
    with pytest.raises(ChecksumMismatch, match="0002_seed.py"):
        Runner(db_path, folder).apply()


# --- what a certificate still certifies --------------------------------------------------------


def certified_now(certificate_of: Files, now: Files) -> set[int]:
    rows = "1 2 3"
    key = Key(certificate_of, rows, "a\nb\nc", "applied\napplied\napplied")
    found = read_certificate(key.certificate())
    assert found is not None
    return Certified(found, now, versions_of).uncertain


def test_only_the_files_not_as_certified_are_uncertain() -> None:
    names = ["0001_a.sql", "0002_b.sql", "0003_c.sql"]
    before = Files([("/m", names, [1, 10, 11, 2, 20, 21, 3, 30, 31])])
    assert certified_now(before, before) == set()
    added = Files([("/m", [*names, "0004_d.sql"], [1, 10, 11, 2, 20, 21, 3, 30, 31, 4, 40, 41])])
    assert certified_now(before, added) == {4}
    edited_and_added = Files([("/m", [*names, "0004_d.sql"], [1, 10, 11, 2, 20, 22, 3, 30, 31, 4, 40, 41])])
    assert certified_now(before, edited_and_added) == {2, 4}
    first_added = Files([("/m", ["0000_z.sql", *names], [9, 9, 9, 1, 10, 11, 2, 20, 21, 3, 30, 31])])
    assert certified_now(before, first_added) == {0}
    removed_and_added = Files([("/m", ["0001_a.sql", "0003_c.sql", "0004_d.sql"], [1, 10, 11, 3, 30, 31, 4, 4, 4])])
    assert certified_now(before, removed_and_added) == {4}
    renamed = Files([("/m", ["0001_a.sql", "0002_x.sql", "0003_c.sql"], [1, 10, 11, 2, 20, 21, 3, 30, 31])])
    assert certified_now(before, renamed) == {2}
    elsewhere = Files([("/other", names, [1, 10, 11, 2, 20, 21, 3, 30, 31])])
    assert certified_now(before, elsewhere) == {1, 2, 3}


def test_times_beyond_64_bits_are_certified_as_text() -> None:
    far = 2**64  # no 64-bit word holds it: the key's text is stored, as before
    names = ["0001_a.sql", "0002_b.sql"]
    before = Files([("/m", names, [1, far, 11, 2, 20, 21])])
    key = Key(before, "1 2", "a\nb", "applied\napplied")
    assert key.certificate() == key.text()
    assert certified_now(before, before) == set()
    assert certified_now(before, Files([("/m", names, [1, far + 1, 11, 2, 20, 21])])) == {1}
    # Certified packed, examined now with a time beyond 64 bits: compared as integers.
    packed = Files([("/m", names, [1, 10, 11, 2, 20, 21])])
    assert certified_now(packed, Files([("/m", names, [1, far, 11, 2, 20, 21])])) == {1}


# --- discovery takes the quick check's listing -------------------------------------------------


def test_a_pending_start_examines_the_folder_once(
    folder: str, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    examined: list[str] = []
    real = fingerprint.examine_folder

    def counted(path: str) -> t.Any:
        examined.append(path)
        return real(path)

    def not_again(path: str) -> t.Any:
        raise AssertionError(f"discovery listed {path} again")

    monkeypatch.setattr(fingerprint, "examine_folder", counted)
    monkeypatch.setattr("selfmigrate.core.registry.examine_folder", not_again)
    monkeypatch.setattr("selfmigrate.core.registry.list_folder", not_again)
    report = selfmigrate.migrate(db_path, folder)
    assert [r.version for r in report.applied] == [4]
    assert examined == [folder]  # by the quick check; discovery took its listing
    assert selfmigrate.migrate(db_path, folder).applied == []  # and certified what it applied


def test_a_listing_of_other_folders_is_not_taken(make_migrations: MigrationsFactory) -> None:
    ours = make_migrations({"0001_a.sql": "SELECT 1;"}, package=False)
    other = make_migrations({"0007_b.sql": "SELECT 7;"}, package=False)
    seen = examine_all([other])
    assert seen is not None
    assert [m.version for m in MigrationRegistry(ours, seen=seen).migrations] == [1]
    assert [m.version for m in MigrationRegistry([ours, other], seen=seen).migrations] == [1, 7]


def test_a_nested_migration_is_named_on_a_start_that_takes_the_listing(
    folder: str, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (Path(folder) / "sub").mkdir()
    (Path(folder) / "sub" / "0009_nested.sql").write_text("SELECT 1;\n")
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    with caplog.at_level(logging.WARNING, logger="selfmigrate.registry"):
        selfmigrate.migrate(db_path, folder)
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "selfmigrate.registry"]
    assert os.path.join("sub", "0009_nested.sql") in warning


def test_a_name_holding_a_newline_is_refused(make_migrations: MigrationsFactory) -> None:
    location = make_migrations({"0001_a.sql": "SELECT 1;"}, package=False)
    (Path(location) / "0002_b.sql\n0003_c.sql").write_text("SELECT 2;")
    with pytest.raises(DiscoveryError, match="naming rule"):
        _ = MigrationRegistry(location).migrations


def test_bad_names_in_two_locations_are_listed_together(make_migrations: MigrationsFactory) -> None:
    first = make_migrations({"0001_a.sql": "SELECT 1;", "1-bad.sql": "SELECT 1;"}, package=False)
    second = make_migrations({"0002_b.sql": "SELECT 2;", "2-bad.sql": "SELECT 2;"}, package=False)
    with pytest.raises(DiscoveryError) as raised:
        _ = MigrationRegistry([first, second]).migrations
    assert "1-bad.sql" in str(raised.value) and "2-bad.sql" in str(raised.value)


def test_the_digest_a_run_stores_is_the_one_the_quick_check_computes(folder: str, db_path: Path) -> None:
    from selfmigrate.core.quick import up_to_date

    assert up_to_date(db_path, folder, "schema_migrations", 5.0) == 3
    (Path(folder) / ADDED[0]).write_text(ADDED[1])
    assert up_to_date(db_path, folder, "schema_migrations", 5.0) is None
    Runner(db_path, folder).apply()
    assert up_to_date(db_path, folder, "schema_migrations", 5.0) == 4


def test_versions_of_names_follow_the_naming_rule() -> None:
    assert versions_of(["0001_a.sql", "0010_b.py"]) == [1, 10]
    assert versions_of(["0001_a.sql", "1-bad.sql", "0003_c.SQL", "0004_d.py"]) == [1, None, None, 4]
    assert versions_of(["0002_b.sql\n0003_c.sql"]) == [None] and versions_of([]) == []
