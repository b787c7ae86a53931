"""The no-op start reads no migration file when their fingerprint is unchanged,
and still catches every edit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from helpers import dump

import selfmigrate
from selfmigrate import ChecksumMismatch, ConfigError, Runner

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

FILES = {
    "0001_note.sql": "CREATE TABLE note (body TEXT);\n",
    "0002_seed.py": "def up(conn):\n    conn.execute(\"INSERT INTO note VALUES ('kept')\")\n",
}


def files_read(runner: Runner) -> list[str]:
    """The migrations whose checksum the runner had to read from disk."""
    return [m.filename for m in runner.registry.migrations if "checksum" in m.__dict__]


def test_no_op_start_after_apply_reads_no_file(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(FILES, package=False)
    first = Runner(db_path, location)
    assert [r.version for r in first.apply().applied] == [1, 2]
    before = dump(db_path)

    again = Runner(db_path, location)
    report = again.apply()

    assert report.applied == [] and report.current_version == 2
    assert files_read(again) == []
    assert dump(db_path) == before


def test_same_size_edit_with_mtime_set_back_is_still_caught(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    before = dump(db_path)
    path = Path(location) / "0001_note.sql"
    stat = path.stat()
    path.write_text("CREATE TABLE note (text BODY);\n")  # same length, other meaning
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the change time cannot be set back

    with pytest.raises(ChecksumMismatch, match="0001_note.sql"):
        Runner(db_path, location).apply()
    assert dump(db_path) == before


def test_changed_files_are_read_and_the_no_op_start_writes_nothing(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    (Path(location) / "_helper.py").write_text("")  # not a migration: fingerprint unchanged
    assert files_read(runner := Runner(db_path, location)) == [] and runner.apply().applied == []
    assert files_read(runner) == []

    path = Path(location) / "0002_seed.py"
    path.write_text(path.read_text() + "\n# a comment\n")  # an edit: every file is checked
    before = dump(db_path)
    with pytest.raises(ChecksumMismatch, match="0002_seed.py"):
        Runner(db_path, location).apply()
    assert dump(db_path) == before  # the check never takes the write lock


def test_applying_a_new_migration_stores_the_new_fingerprint(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    Runner(db_path, location).apply()
    (Path(location) / "0003_more.sql").write_text("INSERT INTO note VALUES ('more');\n")

    upgrade = Runner(db_path, location)
    assert [r.version for r in upgrade.apply().applied] == [3]
    # The files the stored fingerprint still certifies are not read again (issue 10).
    assert files_read(upgrade) == ["0003_more.sql"]

    after = Runner(db_path, location)
    assert after.apply().applied == [] and files_read(after) == []


# --- the quick check of selfmigrate.migrate() -----------------------------------------


def test_up_to_date_start_takes_the_quick_path_in_a_fresh_process(
    make_migrations: MigrationsFactory, db_path: Path
) -> None:
    location = make_migrations(FILES, package=False)
    selfmigrate.migrate(db_path, location)
    code = (
        "import sys, selfmigrate\n"
        f"report = selfmigrate.migrate({str(db_path)!r}, {location!r})\n"
        "assert report.applied == [] and report.current_version == 2, report\n"
        "print(sorted(m for m in sys.modules if m in ('selfmigrate.core.runner', 'selfmigrate.core.registry',"
        " 'dataclasses', 'logging')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_quick_path_logs_up_to_date(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = make_migrations(FILES, package=False)
    selfmigrate.migrate(db_path, location)
    with caplog.at_level(logging.INFO, logger="selfmigrate"):
        report = selfmigrate.migrate(db_path, location)
    assert report.current_version == 2 and report.ok
    assert [r.getMessage() for r in caplog.records] == [f"Database {db_path} is up to date at version 2."]


def test_quick_path_still_sees_an_edit(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(FILES, package=False)
    selfmigrate.migrate(db_path, location)
    before = dump(db_path)
    (Path(location) / "0001_note.sql").write_text("CREATE TABLE note (body TEXT, extra TEXT);\n")
    with pytest.raises(ChecksumMismatch, match="0001_note.sql"):
        selfmigrate.migrate(db_path, location)
    assert dump(db_path) == before


def test_missing_file_is_warned_at_every_start(
    make_migrations: MigrationsFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The fingerprint is stored only in the state that means "up to date"; a database
    # ahead of the code never takes the quick path, so the warning is never skipped.
    location = make_migrations(FILES, package=False)
    selfmigrate.migrate(db_path, location)
    (Path(location) / "0002_seed.py").unlink()
    (Path(location) / "0003_more.sql").write_text("INSERT INTO note VALUES ('more');\n")
    with caplog.at_level(logging.WARNING, logger="selfmigrate"):
        assert [r.version for r in selfmigrate.migrate(db_path, location).applied] == [3]
        for _ in range(2):
            assert selfmigrate.migrate(db_path, location).applied == []
    warnings = [r for r in caplog.records if "0002_seed" in r.getMessage()]
    assert len(warnings) == 3


def test_a_target_skips_the_quick_path(make_migrations: MigrationsFactory, db_path: Path) -> None:
    location = make_migrations(FILES, package=False)
    selfmigrate.migrate(db_path, location)
    assert selfmigrate.migrate(db_path, location, target=2).current_version == 2
    with pytest.raises(ConfigError, match="below"):  # checked by the full run, not answered "up to date"
        selfmigrate.migrate(db_path, location, target=1)


# --- the digest a start computes without building the key's text (issue 10) -------------------

ROWS = [(1, "a" * 64, "applied"), (2, "b" * 64, "applied"), (3, "c" * 64, "started")]


def columns(rows: list[tuple[int, str, str]]) -> tuple[str, str, str]:
    """The rows as the quick reader gives them: versions, checksums, states."""
    return (
        " ".join(str(v) for v, _, _ in rows),
        "\n".join(c for _, c, _ in rows),
        "\n".join(s for _, _, s in rows),
    )


def test_the_start_digest_equals_the_stored_digest_of_the_key(tmp_path: Path) -> None:
    from selfmigrate.core.fingerprint import digest, fingerprint, fingerprint_key, quick_digest

    first, second = tmp_path / "one", tmp_path / "two"
    for folder, names in ((first, ["0001_a.sql", "0003_c.py", "_helper.py"]), (second, ["0002_b.sql"])):
        folder.mkdir()
        for name in names:
            (folder / name).write_text(name)
    (second / "notes.txt").write_text("not a migration")
    folders = [str(first), str(second)]
    key = fingerprint_key(fingerprint(folders), ROWS)

    assert quick_digest(folders, *columns(ROWS)) == digest(key)
    # A key made from a listing (as the runner makes it) keeps its content; its plain
    # text, read back, has the same digest.
    from selfmigrate.core.fingerprint import fingerprint_of
    from selfmigrate.core.locations import list_folder

    made = fingerprint_key(fingerprint_of((f, ((n, s) for n, _, s in list_folder(f))) for f in folders), ROWS)
    assert made == key and digest(made) == digest(str(made)) == digest(key)
    assert type(str(made)) is str
    # The digest of the same key given in parts, as the quick check used to pass it.
    assert digest(*key.split("\n", 5)) == digest(key)
    # Empty folders and no rows give a key too.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert quick_digest([str(empty)], "", "", "") == digest(fingerprint_key(fingerprint([str(empty)]), []))


@pytest.mark.parametrize(
    "change",
    ["edit", "add", "remove", "rename", "other folder", "checksum", "state", "version", "row removed"],
)
def test_any_change_to_files_or_rows_changes_the_start_digest(tmp_path: Path, change: str) -> None:
    from selfmigrate.core.fingerprint import digest, fingerprint, fingerprint_key, quick_digest

    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("0001_a.sql", "0002_b.sql", "0003_c.py"):
        (folder / name).write_text("SELECT 1;\n")
    stored = digest(fingerprint_key(fingerprint([str(folder)]), ROWS))
    rows = list(ROWS)
    where = [str(folder)]
    target = folder / "0002_b.sql"
    if change == "edit":  # same size, mtime set back: only the change time tells
        before = target.stat()
        target.write_text("SELECT 2;\n")
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif change == "add":
        (folder / "0004_d.sql").write_text("SELECT 1;\n")
    elif change == "remove":
        target.unlink()
    elif change == "rename":
        target.rename(folder / "0002_bb.sql")
    elif change == "other folder":
        other = tmp_path / "n"
        folder.rename(other)
        where = [str(other)]
    elif change == "checksum":
        rows[1] = (2, "d" * 64, "applied")
    elif change == "state":
        rows[2] = (3, "c" * 64, "applied")
    elif change == "version":
        rows[2] = (4, "c" * 64, "started")
    else:
        del rows[1]
    now = quick_digest(where, *columns(rows))
    assert now is not None and now != stored
    assert now == digest(fingerprint_key(fingerprint(where), rows))


def test_the_start_digest_looks_properly_at_what_the_registry_refuses(tmp_path: Path) -> None:
    from selfmigrate.core.fingerprint import quick_digest

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("SELECT 1;\n")
    assert quick_digest([str(folder)], *columns(ROWS)) is not None
    (folder / "0002_dir.sql").mkdir()  # named like a migration, not a file
    assert quick_digest([str(folder)], *columns(ROWS)) is None
    (folder / "0002_dir.sql").rmdir()
    (folder / "0002_link.sql").symlink_to(folder / "missing.sql")  # dangling
    assert quick_digest([str(folder)], *columns(ROWS)) is None
    assert quick_digest([str(tmp_path / "absent")], *columns(ROWS)) is None


def test_a_text_that_is_not_a_key_gets_a_digest_no_start_computes(tmp_path: Path) -> None:
    from selfmigrate.core.fingerprint import FORMAT, digest, fingerprint, fingerprint_key, quick_digest

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("SELECT 1;\n")
    key = fingerprint_key(fingerprint([str(folder)]), ROWS)
    start = quick_digest([str(folder)], *columns(ROWS))
    for text in (key.replace(FORMAT, "selfmigrate fingerprint 4"), key + "\nnot a row", key.replace("\0", "\0x", 1)):
        assert digest(text) != start


def test_candidate_names_accepts_what_is_candidate_accepts() -> None:
    from selfmigrate.core.locations import candidate_names, is_candidate

    names = [
        "0001_a.sql", "0002_b.py", "0003_C.SQL", "0004_d.Py", "_helper.py", ".hidden.sql", "__init__.py",
        "notes.txt", "0005_e.sql~", "0006_f.pyc", "", "x.sql", "0007_İ.SQL", "0008_ſ.sql", ".", "_", "a.PY",
    ]
    assert candidate_names(names) == [name for name in names if is_candidate(name)]


def test_times_are_packed_the_same_way_at_any_count() -> None:
    from selfmigrate.core import fingerprint

    for count in (0, 3, fingerprint._ARRAY_FROM - 1, fingerprint._ARRAY_FROM, 3 * fingerprint._ARRAY_FROM):
        numbers = [(-1) ** i * (1_700_000_000_000_000_000 + i) for i in range(count)]
        expected = b"".join(n.to_bytes(8, "little", signed=True) for n in numbers)
        assert fingerprint._packed(numbers) == expected
    for numbers in ([2**63], [0] * fingerprint._ARRAY_FROM + [-(2**63) - 1]):
        with pytest.raises(OverflowError):
            fingerprint._packed(numbers)


def test_the_start_digest_is_the_same_where_folders_cannot_be_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfmigrate.core.fingerprint import digest, fingerprint, fingerprint_key, quick_digest

    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("0001_a.sql", "0002_b.py", "_helper.py"):
        (folder / name).write_text(name)
    key = fingerprint_key(fingerprint([str(folder)]), ROWS)
    monkeypatch.setattr(os, "supports_fd", set())  # as on Windows: scandir by path
    assert quick_digest([str(folder)], *columns(ROWS)) == digest(key)
    (folder / "0003_dir.sql").mkdir()
    assert quick_digest([str(folder)], *columns(ROWS)) is None
