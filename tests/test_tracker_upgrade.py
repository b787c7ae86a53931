"""Upgrading the tracker of a database made by selfmigrate 0.1.0 (issue 14).

The input is ``tests/data/release_0_1_0/database.sqlite``, made by the released
code (see tests/data/README.md): tracker layout 1, four migrations applied, a
few rows, a fingerprint table. Each test works on a copy.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import connected, dump

import selfmigrate
from selfmigrate.cli import cli
from selfmigrate.core.fingerprint import fingerprint, fingerprint_key
from selfmigrate.core.tracker import COLUMNS, LAYOUT
from selfmigrate.errors import LockTimeout, StateError, TrackerError

DATA = Path(__file__).resolve().parent / "data" / "release_0_1_0"
#: The commit whose code made the test database (tests/data/README.md).
RELEASE = "f71705979ec7d9d83412d98cf33c01fa4cba0922"


class Old:
    """A copy of the 0.1.0 database and its migrations."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "app.sqlite"
        self.migrations = tmp_path / "migrations"
        shutil.copyfile(DATA / "database.sqlite", self.db)
        shutil.copytree(DATA / "migrations", self.migrations)

    def tables(self) -> set[str]:
        with connected(self.db) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def rows(self) -> list[tuple[t.Any, ...]]:
        with connected(self.db) as conn:
            return conn.execute("SELECT * FROM schema_migrations ORDER BY version").fetchall()


@pytest.fixture
def old(tmp_path: Path) -> Old:
    return Old(tmp_path)


def test_the_committed_database_is_layout_1(old: Old) -> None:
    # Guard: the test data is what the released code made, not something newer.
    assert old.tables() == {"schema_migrations", "schema_migrations_fingerprint", "note", "tag"}
    assert [row[0] for row in old.rows()] == [1, 2, 3, 4]


def test_first_start_upgrades_atomically_and_keeps_every_row(old: Old, caplog: pytest.LogCaptureFixture) -> None:
    rows, data = old.rows(), [line for line in dump(old.db) if "schema_migrations" not in line]
    with caplog.at_level(logging.INFO, logger="selfmigrate"):
        report = selfmigrate.migrate(old.db, str(old.migrations))
    assert report.ok and report.applied == [] and report.current_version == 4
    assert f"from layout 1 to {LAYOUT}" in caplog.text
    assert old.rows() == rows  # every row, byte for byte
    assert [line for line in dump(old.db) if "schema_migrations" not in line] == data
    assert old.tables() >= {"schema_migrations_layout", "schema_migrations_rollback"}
    with connected(old.db) as conn:
        assert conn.execute("SELECT layout, readable_by FROM schema_migrations_layout").fetchall() == [(2, 1)]
        assert conn.execute("SELECT count(*) FROM schema_migrations_rollback").fetchone() == (0,)
        columns = [row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")]
    assert tuple(columns) == COLUMNS  # the tracker table itself is never altered
    # The upgrade certified the files for the quick check: the next start is the no-op one.
    with connected(old.db) as conn:
        # Row 1 is the digest the quick check compares (row 2 the certificate, issue 10).
        assert conn.execute("SELECT count(*) FROM schema_migrations_fingerprint WHERE id = 1").fetchone() == (1,)
    before = dump(old.db)
    assert selfmigrate.migrate(old.db, str(old.migrations)).applied == []
    assert dump(old.db) == before


def test_history_says_down_not_stored_for_what_was_applied_before(old: Old) -> None:
    selfmigrate.migrate(old.db, str(old.migrations))
    (old.migrations / "0005_add_tag_weight.sql").write_text(
        "ALTER TABLE tag ADD COLUMN weight INTEGER;\n-- migrate:down\nALTER TABLE tag DROP COLUMN weight;\n"
    )
    selfmigrate.migrate(old.db, str(old.migrations))
    rows = {row.version: row for row in selfmigrate.Runner(old.db, str(old.migrations)).history()}
    assert [rows[v].down for v in (1, 2, 3, 4, 5)] == ["not stored"] * 4 + ["stored"]
    result = CliRunner().invoke(cli, ["-d", str(old.db), "history"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert lines["0002_add_note_author"].endswith("[down not stored]")
    assert "down not stored" not in lines["0005_add_tag_weight"]


def test_migrations_applied_before_the_upgrade_roll_back_with_their_files(old: Old) -> None:
    selfmigrate.migrate(old.db, str(old.migrations))
    report = selfmigrate.Runner(old.db, str(old.migrations), backup=False).rollback(target=3)
    assert [r.version for r in report.applied] == [4]
    with connected(old.db) as conn:
        assert "pinned" not in [row[1] for row in conn.execute("PRAGMA table_info(note)")]
        assert conn.execute("SELECT body, author FROM note ORDER BY id").fetchall() == [
            ("first note", "ann"),
            ("second note", "bob"),
        ]


def test_without_its_file_a_migration_from_before_cannot_be_undone(old: Old) -> None:
    selfmigrate.migrate(old.db, str(old.migrations))
    (old.migrations / "0004_add_note_pinned.sql").unlink()
    before = dump(old.db)
    with pytest.raises(StateError, match=r"0004_add_note_pinned .*down not stored") as raised:
        selfmigrate.Runner(old.db, str(old.migrations)).rollback(target=3)
    assert "Restore the file" in str(raised.value)
    with pytest.raises(selfmigrate.AheadError, match=r"0004_add_note_pinned was applied before the tracker stored"):
        selfmigrate.migrate(old.db, str(old.migrations), ahead="rollback")
    assert dump(old.db) == before


def test_a_valid_old_fingerprint_does_not_skip_the_upgrade(old: Old) -> None:
    # As 0.1.0 would have certified these very files: its fingerprint format was 4.
    files = fingerprint([str(old.migrations)])
    old_files = "selfmigrate fingerprint 4" + files[files.index("\n") :]
    with connected(old.db) as conn:
        rows = conn.execute("SELECT version, checksum, state FROM schema_migrations ORDER BY version").fetchall()
        conn.execute("UPDATE schema_migrations_fingerprint SET fingerprint = ?", (fingerprint_key(old_files, rows),))
    selfmigrate.migrate(old.db, str(old.migrations))
    assert "schema_migrations_layout" in old.tables()


def test_the_upgrade_waits_for_the_write_lock(old: Old) -> None:
    before = dump(old.db)
    holder = sqlite3.connect(old.db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockTimeout):
            selfmigrate.migrate(old.db, str(old.migrations), lock_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert dump(old.db) == before and "schema_migrations_layout" not in old.tables()


def test_a_failed_upgrade_changes_nothing(old: Old) -> None:
    # A table of the layout table's name that selfmigrate did not make: the upgrade
    # stops before it changes anything, and says so.
    with connected(old.db) as conn:
        conn.execute("CREATE TABLE schema_migrations_rollback (id INTEGER, note TEXT)")
    before = dump(old.db)
    with pytest.raises(TrackerError, match="schema_migrations_rollback that selfmigrate did not create"):
        selfmigrate.migrate(old.db, str(old.migrations))
    assert dump(old.db) == before


def test_a_tracker_from_a_newer_release_it_must_not_write_is_refused(old: Old) -> None:
    selfmigrate.migrate(old.db, str(old.migrations))
    with connected(old.db) as conn:
        conn.execute("UPDATE schema_migrations_layout SET layout = 9, readable_by = 9")
    (old.migrations / "0005_x.sql").write_text("CREATE TABLE x (y);\n")
    before = dump(old.db)
    with pytest.raises(TrackerError, match="layout 9, written by a newer selfmigrate"):
        selfmigrate.migrate(old.db, str(old.migrations))
    assert dump(old.db) == before


def test_the_released_code_still_starts_on_an_upgraded_database(old: Old, tmp_path: Path) -> None:
    """The image rolled back to may carry selfmigrate 0.1.0 itself: it must start (with its warning)."""
    git = shutil.which("git")
    root = Path(__file__).resolve().parents[1]
    if git is None or subprocess.run([git, "-C", str(root), "cat-file", "-e", RELEASE], capture_output=True).returncode:
        pytest.skip(f"needs git and the commit {RELEASE} (the release that made the test data)")
    released = tmp_path / "released"
    released.mkdir()
    archive = subprocess.run(
        [git, "-C", str(root), "archive", RELEASE, "src/selfmigrate"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(released)], input=archive, check=True)
    (old.migrations / "0005_add_tag_weight.sql").write_text(
        "ALTER TABLE tag ADD COLUMN weight INTEGER;\n-- migrate:down\nALTER TABLE tag DROP COLUMN weight;\n"
    )
    selfmigrate.migrate(old.db, str(old.migrations), backup=False)  # upgraded, 5 applied with its down stored
    (old.migrations / "0005_add_tag_weight.sql").unlink()  # the older image has no file 5
    script = (
        "import sys, logging, selfmigrate\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "assert selfmigrate.__file__.startswith(sys.argv[3]), selfmigrate.__file__\n"
        "print(selfmigrate.migrate(sys.argv[1], sys.argv[2], backup=False).current_version)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(old.db), str(old.migrations), str(released)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(released / "src"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5" and "ahead of this code" in result.stderr
    # The stored down survived the older release; the newer code can still use it.
    report = selfmigrate.Runner(old.db, str(old.migrations), backup=False).rollback(target=4)
    assert [r.version for r in report.applied] == [5]
